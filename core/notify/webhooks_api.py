"""GraphQL for webhooks: endpoints, their delivery history, and the admin mutations.

Every operation is authorised like any other (``Mutation.createWebhookEndpoint`` … ``call``;
only admins by default) and every field through ``WebhookEndpoint.*``/``WebhookDelivery.*``.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from core import domain
from core.api.connection import Connection, connection
from core.api.context import context_of
from core.api.types import Node
from core.notify import webhooks as w
from core.services.pagination import DEFAULT_PAGE_SIZE, SortKey

strawberry.enum(
    domain.DeliveryState,
    name="WebhookDeliveryState",
    description="PENDING (queued or retrying), DELIVERED (a 2xx answer), DEAD (gave up).",
)


@strawberry.type(description="One attempt to deliver: when, the HTTP status, what went wrong.")
class WebhookAttempt:
    authz_exempt: ClassVar[bool] = True  # read through WebhookDelivery.history

    at: datetime
    status: int | None
    error: str | None
    duration_ms: int


@strawberry.type(description="One event owed to one endpoint, retried until delivered or dead.")
class WebhookDelivery(Node):
    endpoint_id: strawberry.ID | None
    event_id: strawberry.ID | None = strawberry.field(
        description="The event's id, sent as `Baton-Event-Id`: the receiver's idempotency key."
    )
    state: domain.DeliveryState | None
    attempts: int | None = strawberry.field(description="Attempts since queued or replayed.")
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime | None
    history: list[WebhookAttempt] | None = strawberry.field(
        description="The latest attempts, oldest first (at most 20)."
    )

    @classmethod
    def from_model(cls, m: domain.WebhookDelivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(w.delivery_id(m)),
            endpoint_id=strawberry.ID(m.endpoint_id),
            event_id=strawberry.ID(f"{w.PREFIXES['WorkflowEvent']}_{m.event_id}"),
            state=m.state,
            attempts=m.attempts,
            next_attempt_at=m.next_attempt_at,
            last_attempt_at=m.last_attempt_at,
            last_status=m.last_status,
            last_error=m.last_error,
            delivered_at=m.delivered_at,
            created_at=m.created_at,
            history=[
                WebhookAttempt(
                    at=datetime.fromisoformat(h["at"]),
                    status=h["status"],
                    error=h["error"],
                    duration_ms=h["durationMs"],
                )
                for h in m.history
            ],
        )


@strawberry.type(description="A URL that receives signed workflow events (see the webhooks guide).")
class WebhookEndpoint(Node):
    url: str | None
    event_types: list[str] | None
    role: str | None = strawberry.field(
        description="The role whose field permissions shape the payloads."
    )
    description: str | None
    active: bool | None
    created_at: datetime | None

    @strawberry.field(description="The endpoint's deliveries, newest first.")
    async def deliveries(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        state: domain.DeliveryState | None = None,
    ) -> Connection[WebhookDelivery] | None:
        model = domain.WebhookDelivery
        stmt = select(model).where(model.endpoint_id == self.id)
        if state is not None:
            stmt = stmt.where(model.state == state)
        key = SortKey(model.id, model.id, descending=True)
        return await connection(info, stmt, key, first, after, WebhookDelivery.from_model, int)

    @classmethod
    def from_model(cls, m: domain.WebhookEndpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(m.id),
            url=m.url,
            event_types=list(m.event_types),
            role=m.role,
            description=m.description,
            active=m.active,
            created_at=m.created_at,
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https (plain http only to localhost).")
    event_types: list[str] = strawberry.field(
        description="HANDOVER_OPENED, STEP_DONE, DUE_SOON, OVERDUE, COMPLETED, CANCELLED."
    )
    role: str
    description: str | None = None

    def given(self) -> w.EndpointInput:
        return w.EndpointInput(self.url, self.event_types, self.role, self.description)


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[str] | None = None
    role: str | None = None
    description: str | None = None
    active: bool | None = strawberry.field(
        default=None, description="False: send nothing (and queue nothing) until set back."
    )

    def given(self) -> w.EndpointInput:
        return w.EndpointInput(self.url, self.event_types, self.role, self.description, self.active)


@strawberry.input
class RotateWebhookSecretInput:
    id: strawberry.ID


@strawberry.input(description="Name deliveries, or an endpoint (with a state, e.g. DEAD).")
class ReplayWebhookDeliveriesInput:
    delivery_ids: list[strawberry.ID] | None = None
    endpoint_id: strawberry.ID | None = None
    state: domain.DeliveryState | None = None


@strawberry.type
class WebhookEndpointPayload:
    authz_exempt: ClassVar[bool] = True

    endpoint: WebhookEndpoint


@strawberry.type
class WebhookSecretPayload:
    authz_exempt: ClassVar[bool] = True

    endpoint: WebhookEndpoint
    secret: str = strawberry.field(
        description="The signing secret, shown this once: store it with the receiver."
    )


@strawberry.type
class WebhookDeliveriesPayload:
    authz_exempt: ClassVar[bool] = True

    deliveries: list[WebhookDelivery]


def _service(info: Info) -> w.WebhookService:
    ctx = context_of(info)
    allow_private = ctx.settings.webhook_allow_private
    return w.WebhookService(ctx.services.db, ctx.services.clock, allow_private=allow_private)


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Registered webhook endpoints, oldest first.")
    async def webhook_endpoints(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[WebhookEndpoint] | None:
        model = domain.WebhookEndpoint
        key = SortKey(model.created_at, model.id)
        return await connection(
            info, select(model), key, first, after, WebhookEndpoint.from_model, datetime
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="Register a webhook endpoint; the payload carries its signing secret, "
        "shown this once. It receives the events written from now on."
    )
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> WebhookSecretPayload | None:
        endpoint, secret = await _service(info).create(context_of(info).actor, input.given())
        return WebhookSecretPayload(endpoint=WebhookEndpoint.from_model(endpoint), secret=secret)

    @strawberry.mutation(description="Change an endpoint; `active: false` pauses it.")
    async def update_webhook_endpoint(
        self, info: Info, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointPayload | None:
        endpoint = await _service(info).update(context_of(info).actor, input.id, input.given())
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_model(endpoint))

    @strawberry.mutation(
        description="A new signing secret (shown this once); the old one also signs for 24 h."
    )
    async def rotate_webhook_secret(
        self, info: Info, input: RotateWebhookSecretInput
    ) -> WebhookSecretPayload | None:
        endpoint, secret = await _service(info).rotate_secret(context_of(info).actor, input.id)
        return WebhookSecretPayload(endpoint=WebhookEndpoint.from_model(endpoint), secret=secret)

    @strawberry.mutation(
        description="Send deliveries again (same event ids, attempts start over): those named, "
        "or an endpoint's, optionally only those in a state such as DEAD."
    )
    async def replay_webhook_deliveries(
        self, info: Info, input: ReplayWebhookDeliveriesInput
    ) -> WebhookDeliveriesPayload | None:
        found = await _service(info).replay(
            context_of(info).actor,
            delivery_ids=[w.parse_delivery_id(i) for i in input.delivery_ids or []],
            endpoint_id=input.endpoint_id,
            state=input.state,
        )
        return WebhookDeliveriesPayload(deliveries=[WebhookDelivery.from_model(d) for d in found])
