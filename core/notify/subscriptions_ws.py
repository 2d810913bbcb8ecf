"""GraphQL over WebSocket at ``/graphql`` (the ``graphql-transport-ws`` protocol, strawberry's
handler), for subscriptions only.

The ``connection_init`` payload carries ``Authorization: Bearer …``, checked like an HTTP
request (``Authenticator.authenticate``, which also gives the token's expiry). Close codes:
``4401`` a missing, invalid or expired token, a deactivated user, and when the token expires
on an open connection; ``4429`` more than ``BATON_MAX_SUBSCRIPTIONS_PER_USER`` open connections
of one user (across every worker on PostgreSQL: ``core.notify.connections``); the protocol's
own (``4400``, ``4408``, ``4409``) otherwise. Documents pass the query limits before they run,
queries and mutations are refused (use HTTP), and errors carry the same ``extensions.code`` as
over HTTP.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from core.api.errors import format_error
from core.api.schema import BatonSchema
from core.config import Settings
from core.domain import User
from core.errors import BatonError
from core.identity import Authenticator, InvalidToken
from core.notify.connections import ConnectionLimit
from core.notify.subscriptions import EventHub
from core.notify.subscriptions_api import SubscriptionContext
from core.services import Services

UNAUTHORIZED = 4401
TOO_MANY = 4429
# Operations one connection may run at once.
PER_CONNECTION = 10


class _SubscriptionsOnly:
    """The schema as the WebSocket handler sees it: it streams subscriptions only."""

    def __init__(self, schema: BatonSchema) -> None:
        self.schema = schema

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["allowed_operation_types"] = {OperationType.SUBSCRIPTION}
        return self.schema.stream(*args, **kwargs)


class Handler(BaseGraphQLTransportWSHandler[Any, None]):
    """strawberry's handler, with Baton's authentication, limits and error format."""

    view: SubscriptionEndpoint

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.viewer: User | None = None
        self.lease: str | None = None
        self.expiry: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload") or {}
        if self.connection_init_received or not isinstance(payload, dict):
            await self.websocket.close(4400, "Invalid or repeated connection_init")
            return
        self.connection_init_received = True
        endpoint = self.view
        header = payload.get("Authorization")
        try:
            signed_in = await endpoint.authenticator.authenticate(
                header if isinstance(header, str) else None
            )
        except InvalidToken as exc:
            await self.websocket.close(UNAUTHORIZED, f"Unauthorized: {exc}")
            return
        user, expires = signed_in.user, signed_in.expires_at
        self.lease = await endpoint.limit.admit(user.id)
        if self.lease is None:
            limit = endpoint.limit.limit
            await self.websocket.close(TOO_MANY, f"At most {limit} connections per user")
            return
        self.viewer = user
        permissions = await endpoint.services.authz.view_for(user.id)
        self.context = SubscriptionContext(
            endpoint.services, user, permissions, uuid.uuid4().hex, endpoint.hub, endpoint.settings
        )
        if expires is not None:
            self.expiry = asyncio.create_task(self._close_at(expires))
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True

    async def _close_at(self, expires: datetime) -> None:
        await asyncio.sleep(max(0.0, expires.timestamp() - time.time()))
        await self.websocket.close(UNAUTHORIZED, "Unauthorized: token expired")

    async def shutdown(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        lease, self.lease = self.lease, None
        if lease is not None:
            await self.view.limit.release(lease)
        await super().shutdown()

    async def _send_result_stream(
        self, operation: Operation[Any, None], result_source: Any
    ) -> None:
        await super()._send_result_stream(operation, self._formatted(result_source))

    async def _formatted(self, results: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        """Results whose errors read as over HTTP: the contract's message and code. A check
        before execution that refuses the document (the query limits) ends the operation
        with an ``error`` message, as the protocol has it."""
        request_id = getattr(self.context, "request_id", "ws")
        try:
            async for result in results:
                if isinstance(result, ExecutionResult) and result.errors:
                    for error in result.errors:
                        _reformat(error, request_id)
                yield result
        except BatonError as exc:
            refused = GraphQLError(exc.message, original_error=exc)
            _reformat(refused, request_id)
            yield PreExecutionError(data=None, errors=[refused])


def _reformat(error: GraphQLError, request_id: str) -> None:
    formatted = format_error(error, request_id)
    error.message = formatted["message"]
    error.extensions = formatted["extensions"]


class SubscriptionEndpoint(GraphQL[Any, None]):
    """The ASGI app behind ``WebSocketRoute("/graphql")``."""

    graphql_transport_ws_handler_class = Handler

    def __init__(
        self,
        schema: BatonSchema,
        services: Services,
        settings: Settings,
        hub: EventHub,
        authenticator: Authenticator,
    ) -> None:
        super().__init__(
            _SubscriptionsOnly(schema),  # type: ignore[arg-type]
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=PER_CONNECTION,
        )
        self.services = services
        self.settings = settings
        self.hub = hub
        self.authenticator = authenticator
        self.limit = ConnectionLimit(
            services.db, settings.max_subscriptions_per_user, settings.subscription_lease
        )

    async def get_context(self, request: Any, response: Any) -> Any:
        return None  # set once the connection is authenticated (Handler)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.run(WebSocket(scope, receive=receive, send=send))
