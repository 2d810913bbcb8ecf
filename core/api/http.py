"""``/graphql`` over HTTP: limits, authentication, execution under a deadline, idempotent
retries, error formatting."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
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
from core.api.request import (
    HASH_FIELD,
    UNRESOLVED,
    BadRequest,
    BodyTooLarge,
    HashMismatch,
    RequestLimits,
    read_payload,
    reads_only,
)
from core.api.schema import BatonSchema
from core.authz.view import PermissionView
from core.config import Settings
from core.db import database_unavailable
from core.domain import User
from core.errors import BadUserInput, Conflict, ErrorCode, Forbidden
from core.identity import Authenticator, InvalidToken
from core.logs import current_request_id
from core.services import Services
from core.web.pages import graphiql_html

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# "See as" (core.services.see_as): ``role:<name>`` or ``user:<id>``, for viewers allowed to.
SEE_AS_HEADER = "x-baton-see-as"
# Outcomes that say nothing about the request itself: its retry should run, not replay them.
# A persisted query not known here: the client sends the text next, under the same key.
_RETRYABLE = frozenset(
    {
        ErrorCode.TIMEOUT,
        ErrorCode.INTERNAL,
        ErrorCode.PERSISTED_QUERY_NOT_FOUND,
        ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED,
    }
)
# Apollo's messages, which clients match (Apollo Client by the message, others by the code).
_UNRESOLVED_MESSAGES = {
    ErrorCode.PERSISTED_QUERY_NOT_FOUND: "PersistedQueryNotFound",
    ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED: "PersistedQueryNotSupported",
}
# On an answer to an unknown persisted query: a cache in between must not keep it.
_NOT_CACHED = {"Cache-Control": "private, no-cache, must-revalidate"}


def json_response(
    body: Any,
    status: int = 200,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = {"X-Request-Id": request_id} if request_id else {}
    all_headers.update(headers or {})
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=all_headers
    )


def error_response(
    message: str, code: ErrorCode, status: int, request_id: str | None, **extensions: Any
) -> Response:
    """An HTTP-level error: the status and the contract's error body."""
    return json_response(http_error(message, code, **extensions), status, request_id)


class GraphQLEndpoint:
    """The ASGI endpoint behind ``/graphql``."""

    def __init__(
        self,
        schema: BatonSchema,
        services: Services,
        settings: Settings,
        authenticator: Authenticator,
    ) -> None:
        self.schema = schema
        self.authenticator = authenticator
        self.services = services
        self.settings = settings
        self.ide_html = graphiql_html()
        self.request_limits = RequestLimits(
            settings.max_body_bytes,
            settings.max_batch_size,
            settings.max_tokens,
            schema.documents,
            settings.persisted_queries,
        )
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
        if request.method == "GET" and not request.query_params and self.settings.graphiql:
            return HTMLResponse(self.ide_html)
        if request.method not in ("GET", "POST"):
            return error_response("use GET or POST", ErrorCode.METHOD_NOT_ALLOWED, 405, None)
        # One read session serves the sign-in and the request's reads: one pooled connection
        # checked out per request, not two.
        reader = self.services.db.reader()
        try:
            return await self._handle_signed(request, request_id, reader)
        finally:
            await reader.close()

    async def _handle_signed(
        self, request: Request, request_id: str, reader: AsyncSession
    ) -> Response:
        try:
            header = request.headers.get("authorization")
            viewer = (await self.authenticator.authenticate(header, reader)).user
        except InvalidToken as exc:
            return error_response(str(exc), ErrorCode.UNAUTHENTICATED, 401, request_id)
        try:
            payload = await read_payload(request, self.request_limits)
        except BodyTooLarge:
            return error_response(
                f"request body over {self.settings.max_body_bytes} bytes",
                ErrorCode.PAYLOAD_TOO_LARGE,
                413,
                request_id,
            )
        except BadRequest as exc:
            return error_response(str(exc), ErrorCode.BAD_REQUEST, 400, request_id)
        except HashMismatch as exc:
            reason = "is not the sha256 of the query text"
            return error_response(
                str(exc),
                ErrorCode.BAD_USER_INPUT,
                400,
                request_id,
                fields=[{"path": HASH_FIELD, "reason": reason}],
            )
        if not reads_only(payload, self.request_limits) or self.services.authz.reload_pending:
            # A mutation writes on a connection of its own, and a policy reload reads on
            # connections of its own: the read session gives its connection back meanwhile
            # (it checks one out again if a read follows).
            await reader.close()
        permissions = (
            await self.services.authz.view_for(viewer.id)
            if self.settings.authorization
            else PermissionView.allow_all()
        )
        target = request.headers.get(SEE_AS_HEADER)
        if target is not None:
            try:
                seen = await self.services.see_as.assume(
                    viewer, permissions, target.strip(), orjson.dumps(payload).decode()
                )
            except Forbidden as exc:
                return error_response(exc.message, ErrorCode.FORBIDDEN, 403, request_id)
            except BadUserInput as exc:
                return error_response(exc.message, ErrorCode.BAD_REQUEST, 400, request_id)
            viewer, permissions = seen.user, seen.permissions
        allowed = (
            {OperationType.QUERY}
            if request.method == "GET"
            else {OperationType.QUERY, OperationType.MUTATION}
        )
        # A see-as request is read-only: there is nothing to replay.
        key = request.headers.get(HEADER) if request.method == "POST" and not target else None
        if key is None:
            response, _ = await self._answer(
                viewer, permissions, payload, allowed, request_id, reader
            )
            return response
        return await self._answer_once(
            key, viewer, permissions, payload, allowed, request_id, reader
        )

    async def _answer(
        self,
        viewer: User,
        permissions: PermissionView,
        payload: Any,
        allowed: set[OperationType],
        request_id: str,
        reader: AsyncSession,
    ) -> tuple[Response, bool]:
        """The response, and whether it may be retried: an operation timed out or failed
        unexpectedly, so its transaction was rolled back."""
        context = RequestContext(
            self.services, viewer, permissions, request_id, self.settings, reader
        )
        deadline = asyncio.get_running_loop().time() + self.settings.execution_timeout
        operations = payload if isinstance(payload, list) else [payload]
        try:
            results = [await self._execute(op, context, allowed, deadline) for op in operations]
        except InvalidOperationTypeError:
            refused = error_response(
                "mutations need POST", ErrorCode.METHOD_NOT_ALLOWED, 405, request_id
            )
            return refused, False
        finally:
            await context.close()
        retryable = any(
            error["extensions"]["code"] in _RETRYABLE
            for result in results
            for error in result.get("errors", ())
        )
        body = results if isinstance(payload, list) else results[0]
        unresolved = any(UNRESOLVED in op for op in operations)
        headers = _NOT_CACHED if unresolved else None
        return json_response(body, request_id=request_id, headers=headers), retryable

    async def _answer_once(
        self,
        key: str,
        viewer: User,
        permissions: PermissionView,
        payload: Any,
        allowed: set[OperationType],
        request_id: str,
        reader: AsyncSession,
    ) -> Response:
        """Answer a request with an ``Idempotency-Key``: the first time for real, then from
        the stored response."""
        if not is_valid_key(key):
            return error_response(
                f"{HEADER} must be 1 to 128 visible ASCII characters",
                ErrorCode.BAD_REQUEST,
                400,
                request_id,
            )
        try:
            stored = await self.idempotency.reserve(viewer.id, key, fingerprint(payload))
        except KeyReused:
            return error_response(
                f"this {HEADER} was used with a different request; use a new key",
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                422,
                request_id,
            )
        except (KeyInFlight, Conflict):
            return error_response(
                f"a request with this {HEADER} is still running",
                ErrorCode.CONFLICT,
                409,
                request_id,
            )
        if stored is not None:
            return Response(
                stored.body,
                status_code=stored.status,
                media_type="application/json",
                headers={"X-Request-Id": request_id, "Idempotent-Replayed": "true"},
            )
        try:
            response, retryable = await self._answer(
                viewer, permissions, payload, allowed, request_id, reader
            )
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

    async def _execute(
        self,
        operation: dict[str, Any],
        context: RequestContext,
        allowed: set[OperationType],
        deadline: float,
    ) -> dict[str, Any]:
        if (code := operation.get(UNRESOLVED)) is not None:
            return http_error(_UNRESOLVED_MESSAGES[code], code)
        try:
            # Cancelling unwinds the running transaction, which rolls it back.
            async with asyncio.timeout_at(deadline):
                result = await self.schema.execute(
                    operation["query"],
                    variable_values=operation.get("variables"),
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
                    ErrorCode.TIMEOUT,
                ),
            }
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [format_error(e, context.request_id) for e in result.errors]
        return body
