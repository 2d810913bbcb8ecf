"""Per-request observation: one access log line and the metrics of every HTTP request.

The ``Observe`` middleware is the one place that records; along the way the GraphQL
extension notes each operation (and the viewer), and the error formatter each error code,
on the request's ``Exchange``.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from core import metrics

log = logging.getLogger("baton.access")


@dataclass
class Operation:
    """One GraphQL operation of the request, with its metric labels."""

    name: str
    type: str
    seconds: float


@dataclass
class Exchange:
    """What one HTTP request did, filled in while it is served."""

    user_id: str | None = None
    operations: list[Operation] = field(default_factory=list)
    error_codes: list[str] = field(default_factory=list)


_current: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "baton_exchange", default=None
)


def note_error(code: str) -> None:
    """Count an error code returned to the client of the current request."""
    exchange = _current.get()
    if exchange is not None:
        exchange.error_codes.append(code)


class OperationObserver(SchemaExtension):
    """Notes each GraphQL operation's (bounded) name, type and duration, and the viewer."""

    def on_operation(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        exchange = _current.get()
        if exchange is None:
            return
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except RuntimeError:  # the document did not parse, or names no such operation
            kind = "unknown"
        exchange.user_id = context.context.viewer.id
        exchange.operations.append(
            Operation(
                metrics.operation_label(context.operation_name),
                kind,
                time.perf_counter() - start,
            )
        )


class Observe:
    """ASGI middleware: metrics and an access log line for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange()
        token = _current.set(exchange)
        start = time.perf_counter()
        status, request_id = 500, None  # unless a response starts

        async def observed_send(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", ()))
                request_id = headers.get(b"x-request-id", b"").decode() or None
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            _current.reset(token)
            seconds = time.perf_counter() - start
            path = metrics.path_label(scope["path"])
            metrics.HTTP_RESPONSES.labels(path, str(status)).inc()
            metrics.HTTP_DURATION.labels(path).observe(seconds)
            for op in exchange.operations:
                metrics.OPERATION_DURATION.labels(op.name, op.type).observe(op.seconds)
            for code in exchange.error_codes:
                metrics.ERRORS.labels(code).inc()
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                    "operation": ",".join(op.name for op in exchange.operations) or None,
                    "request_id": request_id,
                    "user": exchange.user_id,
                },
            )
