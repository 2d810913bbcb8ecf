"""``/graphql`` over HTTP: limits, authentication, execution, error formatting."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from core.api.context import RequestContext
from core.api.errors import format_error, http_error
from core.api.schema import BatonSchema
from core.auth import InvalidToken, user_id_from_header
from core.authz.view import PermissionView
from core.config import Settings
from core.db import database_unavailable
from core.domain import User
from core.services import Services
from core.services.audit import current_request_id

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(Exception):
    pass


def json_response(body: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = {"X-Request-Id": request_id} if request_id else None
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


class GraphQLEndpoint:
    """The ASGI endpoint behind ``/graphql``."""

    def __init__(self, schema: BatonSchema, services: Services, settings: Settings) -> None:
        self.schema = schema
        self.services = services
        self.settings = settings
        self.ide_html = get_graphql_ide_html("graphiql")

    async def handle(self, request: Request) -> Response:
        """Serve one HTTP request to `/graphql`."""
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = current_request_id.set(request_id)
        try:
            return await self._handle(request, request_id)
        except Exception as exc:  # the database failing before execution (authentication)
            down = database_unavailable(exc)
            if down is None:
                raise
            return json_response(http_error(down.message, down.code), 503, request_id)
        finally:
            current_request_id.reset(token)

    async def _handle(self, request: Request, request_id: str) -> Response:
        if request.method == "GET" and "query" not in request.query_params:
            if self.settings.graphiql:
                return HTMLResponse(self.ide_html)
            return json_response(http_error("GraphiQL is disabled", "NOT_FOUND"), 404)
        if request.method not in ("GET", "POST"):
            return json_response(http_error("use GET or POST", "METHOD_NOT_ALLOWED"), 405)
        try:
            viewer = await self._authenticate(request)
        except InvalidToken as exc:
            return json_response(http_error(str(exc), "UNAUTHENTICATED"), 401, request_id)
        try:
            payload = await self._payload(request)
        except BodyTooLarge:
            return json_response(
                http_error(
                    f"request body over {self.settings.max_body_bytes} bytes", "PAYLOAD_TOO_LARGE"
                ),
                413,
                request_id,
            )
        except ValueError as exc:
            return json_response(http_error(str(exc), "BAD_REQUEST"), 400, request_id)
        allowed = (
            {OperationType.QUERY}
            if request.method == "GET"
            else {OperationType.QUERY, OperationType.MUTATION}
        )
        permissions = (
            await self.services.authz.view_for(viewer.id)
            if self.settings.authorization
            else PermissionView.allow_all()
        )
        context = RequestContext(self.services, viewer, permissions, request_id)
        try:
            if isinstance(payload, list):
                if len(payload) > self.settings.max_batch_size:
                    return json_response(
                        http_error(
                            f"at most {self.settings.max_batch_size} operations per batch",
                            "BAD_REQUEST",
                        ),
                        400,
                        request_id,
                    )
                results = [await self._execute(op, context, allowed) for op in payload]
                return json_response(results, request_id=request_id)
            return json_response(
                await self._execute(payload, context, allowed), request_id=request_id
            )
        except InvalidOperationTypeError:
            return json_response(
                http_error("mutations need POST", "METHOD_NOT_ALLOWED"), 405, request_id
            )
        finally:
            await context.close()

    async def _authenticate(self, request: Request) -> User:
        user_id = user_id_from_header(
            request.headers.get("authorization"), self.settings.jwt_secret
        )
        async with self.services.db.reader() as session:
            user = await session.scalar(select(User).where(User.id == user_id))
        if user is None or not user.active:
            raise InvalidToken("unknown or deactivated user")
        return user

    async def _payload(self, request: Request) -> Any:
        if request.method == "GET":
            params = request.query_params
            variables = params.get("variables")
            return {
                "query": params.get("query"),
                "variables": orjson.loads(variables) if variables else None,
                "operationName": params.get("operationName"),
            }
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise BodyTooLarge
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueError("request body is not valid JSON") from exc
        operations = payload if isinstance(payload, list) else [payload]
        if not operations or not all(isinstance(op, dict) for op in operations):
            raise ValueError("request body must be a JSON object {query, variables, operationName}")
        return payload

    async def _execute(
        self, operation: dict[str, Any], context: RequestContext, allowed: set[OperationType]
    ) -> dict[str, Any]:
        query = operation.get("query")
        variables = operation.get("variables")
        if not isinstance(query, str) or not query.strip():
            return http_error("`query` must be a non-empty string", "BAD_REQUEST")
        if variables is not None and not isinstance(variables, dict):
            return http_error("`variables` must be an object", "BAD_REQUEST")
        result = await self.schema.execute(
            query,
            variable_values=variables,
            context_value=context,
            operation_name=operation.get("operationName"),
            allowed_operation_types=allowed,
        )
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [format_error(e, context.request_id) for e in result.errors]
        return body
