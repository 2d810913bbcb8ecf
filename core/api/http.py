"""``/graphql`` over HTTP: limits, authentication, execution under a deadline, idempotent
retries, error formatting."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
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
from core.api.idempotency import (
    HEADER,
    IdempotencyKeys,
    KeyInFlight,
    KeyReused,
    StoredResponse,
    fingerprint,
    is_valid_key,
)
from core.api.schema import BatonSchema
from core.auth import InvalidToken, user_id_from_header
from core.authz.view import PermissionView
from core.config import Settings
from core.db import database_unavailable
from core.domain import User
from core.errors import Conflict
from core.logs import current_request_id
from core.services import Services

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Outcomes that say nothing about the request itself: its retry should run, not replay them.
_RETRYABLE = frozenset({"TIMEOUT", "INTERNAL"})


class BodyTooLarge(Exception):
    pass


def json_response(body: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = {"X-Request-Id": request_id} if request_id else None
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(message: str, code: str, status: int, request_id: str | None) -> Response:
    """An HTTP-level error: the status and the contract's error body."""
    return json_response(http_error(message, code), status, request_id)


class GraphQLEndpoint:
    """The ASGI endpoint behind ``/graphql``."""

    def __init__(self, schema: BatonSchema, services: Services, settings: Settings) -> None:
        self.schema = schema
        self.services = services
        self.settings = settings
        self.ide_html = get_graphql_ide_html("graphiql")
        self.idempotency = IdempotencyKeys(
            services.db,
            services.clock,
            ttl=timedelta(seconds=settings.idempotency_ttl),
            # Storing the answer takes a moment after the deadline; a minute is ample.
            runs_for=timedelta(seconds=settings.execution_timeout + 60),
        )

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
            return error_response(down.message, down.code, 503, request_id)
        finally:
            current_request_id.reset(token)

    async def _handle(self, request: Request, request_id: str) -> Response:
        if request.method == "GET" and "query" not in request.query_params:
            if self.settings.graphiql:
                return HTMLResponse(self.ide_html)
            return error_response("GraphiQL is disabled", "NOT_FOUND", 404, None)
        if request.method not in ("GET", "POST"):
            return error_response("use GET or POST", "METHOD_NOT_ALLOWED", 405, None)
        try:
            viewer = await self._authenticate(request)
        except InvalidToken as exc:
            return error_response(str(exc), "UNAUTHENTICATED", 401, request_id)
        try:
            payload = await self._payload(request)
        except BodyTooLarge:
            return error_response(
                f"request body over {self.settings.max_body_bytes} bytes",
                "PAYLOAD_TOO_LARGE",
                413,
                request_id,
            )
        except ValueError as exc:
            return error_response(str(exc), "BAD_REQUEST", 400, request_id)
        if isinstance(payload, list) and len(payload) > self.settings.max_batch_size:
            return error_response(
                f"at most {self.settings.max_batch_size} operations per batch",
                "BAD_REQUEST",
                400,
                request_id,
            )
        allowed = (
            {OperationType.QUERY}
            if request.method == "GET"
            else {OperationType.QUERY, OperationType.MUTATION}
        )
        key = request.headers.get(HEADER) if request.method == "POST" else None
        if key is None:
            response, _ = await self._answer(viewer, payload, allowed, request_id)
            return response
        return await self._answer_once(key, viewer, payload, allowed, request_id)

    async def _answer(
        self, viewer: User, payload: Any, allowed: set[OperationType], request_id: str
    ) -> tuple[Response, bool]:
        """The response, and whether it may be retried: an operation timed out or failed
        unexpectedly, so its transaction was rolled back."""
        permissions = (
            await self.services.authz.view_for(viewer.id)
            if self.settings.authorization
            else PermissionView.allow_all()
        )
        context = RequestContext(self.services, viewer, permissions, request_id)
        deadline = asyncio.get_running_loop().time() + self.settings.execution_timeout
        operations = payload if isinstance(payload, list) else [payload]
        try:
            results = [await self._execute(op, context, allowed, deadline) for op in operations]
        except InvalidOperationTypeError:
            refused = error_response("mutations need POST", "METHOD_NOT_ALLOWED", 405, request_id)
            return refused, False
        finally:
            await context.close()
        retryable = any(
            error["extensions"]["code"] in _RETRYABLE
            for result in results
            for error in result.get("errors", ())
        )
        body = results if isinstance(payload, list) else results[0]
        return json_response(body, request_id=request_id), retryable

    async def _answer_once(
        self,
        key: str,
        viewer: User,
        payload: Any,
        allowed: set[OperationType],
        request_id: str,
    ) -> Response:
        """Answer a request with an ``Idempotency-Key``: the first time for real, then from
        the stored response."""
        if not is_valid_key(key):
            return error_response(
                f"{HEADER} must be 1 to 128 visible ASCII characters",
                "BAD_REQUEST",
                400,
                request_id,
            )
        try:
            stored = await self.idempotency.reserve(viewer.id, key, fingerprint(payload))
        except KeyReused:
            return error_response(
                f"this {HEADER} was used with a different request; use a new key",
                "IDEMPOTENCY_KEY_REUSED",
                422,
                request_id,
            )
        except (KeyInFlight, Conflict):
            return error_response(
                f"a request with this {HEADER} is still running", "CONFLICT", 409, request_id
            )
        if stored is not None:
            return Response(
                stored.body,
                status_code=stored.status,
                media_type="application/json",
                headers={"X-Request-Id": request_id, "Idempotent-Replayed": "true"},
            )
        try:
            response, retryable = await self._answer(viewer, payload, allowed, request_id)
        except BaseException:
            await self.idempotency.release(viewer.id, key)  # it crashed: let a retry run
            raise
        if retryable and not await self.idempotency.wrote(request_id):
            await self.idempotency.release(viewer.id, key)
        else:
            await self.idempotency.finish(
                viewer.id, key, StoredResponse(response.status_code, bytes(response.body))
            )
        return response

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
        self,
        operation: dict[str, Any],
        context: RequestContext,
        allowed: set[OperationType],
        deadline: float,
    ) -> dict[str, Any]:
        query = operation.get("query")
        variables = operation.get("variables")
        if not isinstance(query, str) or not query.strip():
            return http_error("`query` must be a non-empty string", "BAD_REQUEST")
        if variables is not None and not isinstance(variables, dict):
            return http_error("`variables` must be an object", "BAD_REQUEST")
        try:
            # Cancelling unwinds the running transaction, which rolls it back.
            async with asyncio.timeout_at(deadline):
                result = await self.schema.execute(
                    query,
                    variable_values=variables,
                    context_value=context,
                    operation_name=operation.get("operationName"),
                    allowed_operation_types=allowed,
                )
        except TimeoutError:
            return {
                "data": None,
                **http_error(
                    f"the request ran over {self.settings.execution_timeout:g} s and was "
                    "cancelled; the operation's unfinished writes were rolled back",
                    "TIMEOUT",
                ),
            }
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [format_error(e, context.request_id) for e in result.errors]
        return body
