"""Webhook endpoints for admins, their signing secrets, and the payloads they receive.

An endpoint names the event kinds it wants and a role; every payload carries ids and only
the fields that role may read (the same ``PermissionView`` as a GraphQL request of that
role), rendered when it is sent, so a revoked permission applies to retries and replays too.
Requests are signed like Stripe's and GitHub's: HMAC-SHA256 over ``timestamp + "." + body``
(see docs/integrations/webhooks.md, whose verification snippet a test runs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core.authz.defaults import Scope
from core.authz.roles import known_roles
from core.authz.view import PermissionView
from core.clock import Clock
from core.db import Database
from core.domain import (
    Customer,
    DeliveryState,
    WebhookDelivery,
    WebhookEndpoint,
    WorkflowEventRecord,
)
from core.errors import BadUserInput, FieldError, NotFound
from core.ids import PREFIXES, new_id
from core.notify import addresses
from core.notify.risk import readable_payload
from core.services import events
from core.services import validation as v
from core.services.audit import Actor, AuditWriter, audit_value, to_camel

EVENT_TYPES = (
    events.HANDOVER_OPENED,
    events.STEP_DONE,
    events.DUE_SOON,
    events.OVERDUE,
    events.COMPLETED,
    events.CANCELLED,
    events.RISK_WARNING_RAISED,
    events.RISK_WARNING_CLEARED,
)
SIGNATURE_HEADER = "Baton-Signature"
EVENT_ID_HEADER = "Baton-Event-Id"
DELIVERY_ID_HEADER = "Baton-Delivery-Id"
SECRET_PREFIX = "whsec_"
# After a rotation the old secret signs too for this long, so receivers can switch over.
ROTATION_OVERLAP = timedelta(hours=24)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Customer columns a payload may carry, each under its GraphQL name and read permission.
CUSTOMER_COLUMNS = (
    "name",
    "kind",
    "industry",
    "territory",
    "product_lines",
    "lifecycle_stage",
    "value_tier",
    "needs_tier",
    "loyalty_tier",
    "annual_revenue",
    "profit_contribution",
    "growth_potential",
    "strategic_fit",
    "payment_terms_days",
    "payment_method",
    "invoice_requirements",
    "communication_preference",
    "contacts",
    "first_contact_at",
    "created_at",
    "updated_at",
)
# References (``owner { id }``) read under their own permission.
CUSTOMER_REFERENCES = {
    "firstContact": "first_contact_id",
    "backupOwner": "backup_owner_id",
}
ENDPOINT_FIELDS = ("url", "eventTypes", "role", "description", "active")


def event_id(event: WorkflowEventRecord) -> str:
    """The event's public id (as in ``workflowEvents``): the receiver's idempotency key."""
    return f"{PREFIXES['WorkflowEvent']}_{event.id}"


def delivery_id(delivery: WebhookDelivery) -> str:
    return f"{PREFIXES['WebhookDelivery']}_{delivery.id}"


def parse_delivery_id(text: str) -> int:
    """``whd_12`` → 12; anything else is NOT_FOUND."""
    number = text.removeprefix(f"{PREFIXES['WebhookDelivery']}_")
    if not number.isdigit():
        raise NotFound("WebhookDelivery", text)
    return int(number)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}." + body`` under ``secret``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex>[,v1=<hex>]``: one ``v1`` per secret in force."""
    return ",".join(
        [f"t={timestamp}", *(f"v1={sign(s, timestamp, body)}" for s in signing_secrets)]
    )


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        found.append(endpoint.previous_secret)
    return found


def _customer_fields(customer: Customer, view: PermissionView) -> dict[str, Any]:
    """The customer's id and every field ``view`` may read; nothing else."""
    fields: dict[str, Any] = {"id": customer.id, "version": customer.version}
    for column in CUSTOMER_COLUMNS:
        name = to_camel(column)
        if view.can_read("Customer", name):
            fields[name] = audit_value(getattr(customer, column))
    owner = customer.active_ownership
    if view.can_read("Customer", "owner"):
        fields["owner"] = {"id": owner.owner_id} if owner and owner.owner_id else None
    for name, column in CUSTOMER_REFERENCES.items():
        if view.can_read("Customer", name):
            ref = getattr(customer, column)
            fields[name] = {"id": ref} if ref else None
    return fields


def render(
    event: WorkflowEventRecord, customer: Customer | None, view: PermissionView, endpoint_id: str
) -> bytes:
    """The JSON body for one event as the endpoint's role may see it.

    Ids, the event type and time are always there (the admin chose the types); the event's
    details are what ``core.notify.risk.readable_payload`` lets the role read; the customer's
    fields need their own read permissions and a role whose customer scope is ALL (an
    endpoint is nobody's owner or manager, so OWN and TEAM reach no customer).
    """
    data: dict[str, Any] = {"handoverId": event.handover_id, "customerId": event.customer_id}
    if (details := readable_payload(view, event.kind, event.payload)) is not None:
        data["details"] = audit_value(details)
    if customer is not None and view.scope is Scope.ALL:
        data["customer"] = _customer_fields(customer, view)
    body = {
        "id": event_id(event),
        "type": event.kind,
        "createdAt": event.at.isoformat(),
        "endpointId": endpoint_id,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


async def load_customers(session: AsyncSession, ids: set[str]) -> dict[str, Customer]:
    stmt = (
        select(Customer)
        .where(Customer.id.in_(ids))
        .options(selectinload(Customer.active_ownership))
    )
    return {c.id: c for c in await session.scalars(stmt)}


@dataclass(frozen=True)
class EndpointInput:
    """What an admin gives for an endpoint; every field optional on update."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    role: str | None = None
    description: str | None = None
    active: bool | None = None


def _url_error(url: str) -> str | None:
    if len(url) > 2000:
        return "must be at most 2000 characters"
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        return "must be an absolute https URL"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return "must use https (plain http only to localhost)"
    if parts.username or parts.password:
        return "must not carry credentials (the signature authenticates Baton)"
    return None


async def last_event_id(session: AsyncSession) -> int:
    """The id of the newest outbox event (0: none)."""
    last = select(WorkflowEventRecord.id).order_by(WorkflowEventRecord.id.desc()).limit(1)
    return await session.scalar(last) or 0


def _snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "eventTypes": list(endpoint.event_types),
        "role": endpoint.role,
        "description": endpoint.description,
        "active": endpoint.active,
    }


class WebhookService:
    """Endpoint administration and replays; each change one transaction with its audit."""

    def __init__(self, db: Database, clock: Clock, *, allow_private: bool = False) -> None:
        self.db = db
        self.clock = clock
        self.allow_private = allow_private

    async def _validate(
        self, session: AsyncSession, given: EndpointInput, *, creating: bool
    ) -> None:
        errors: list[FieldError] = []
        if given.url is not None or creating:
            reason = "is required" if given.url is None else _url_error(given.url)
            if reason is None and given.url is not None:
                reason = await addresses.url_refusal(given.url, self.allow_private)
            if reason:
                errors.append(FieldError("url", reason))
        if given.event_types is not None or creating:
            kinds = list(given.event_types or [])
            unknown = sorted(set(kinds) - set(EVENT_TYPES))
            if not kinds:
                errors.append(FieldError("eventTypes", f"name at least one of {EVENT_TYPES}"))
            elif unknown:
                errors.append(FieldError("eventTypes", f"unknown event type(s) {unknown}"))
        if (given.role is not None or creating) and (
            given.role is None or given.role not in await known_roles(session)
        ):
            errors.append(FieldError("role", "is not a role"))
        reason = v.text(given.description, max_length=500)
        if reason:
            errors.append(FieldError("description", reason))
        if errors:
            raise BadUserInput(errors)

    async def create(self, actor: Actor, given: EndpointInput) -> tuple[WebhookEndpoint, str]:
        """Register an endpoint; returns it and its signing secret (shown this once). It
        receives events written from now on."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            await self._validate(session, given, creating=True)
            last_event = await last_event_id(session)
            secret = SECRET_PREFIX + secrets.token_urlsafe(32)
            endpoint = WebhookEndpoint(
                id=new_id("WebhookEndpoint"),
                url=given.url,
                event_types=sorted(set(given.event_types or [])),
                role=given.role,
                description=given.description,
                active=True if given.active is None else given.active,
                secret=secret,
                cursor=last_event,
                created_at=now,
                created_by_id=actor.user_id,
            )
            session.add(endpoint)
            AuditWriter(session, actor, now).record(
                "createWebhookEndpoint",
                "WebhookEndpoint",
                endpoint.id,
                [
                    {"field": k, "before": None, "after": val}
                    for k, val in _snapshot(endpoint).items()
                ],
            )
        return endpoint, secret

    async def _load(self, session: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if endpoint is None:
            raise NotFound("WebhookEndpoint", endpoint_id)
        return endpoint

    async def update(self, actor: Actor, endpoint_id: str, given: EndpointInput) -> WebhookEndpoint:
        """Change an endpoint's URL, event types, role, description or active flag (an
        inactive endpoint is sent nothing; what it missed is not queued for it)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            endpoint = await self._load(session, endpoint_id)
            await self._validate(session, given, creating=False)
            before = _snapshot(endpoint)
            if given.active and not endpoint.active:
                endpoint.cursor = await last_event_id(session)  # what it missed stays missed
            for attr in ("url", "role", "description", "active"):
                value = getattr(given, attr)
                if value is not None:
                    setattr(endpoint, attr, value)
            if given.event_types is not None:
                endpoint.event_types = sorted(set(given.event_types))
            changes = [
                {"field": k, "before": before[k], "after": val}
                for k, val in _snapshot(endpoint).items()
                if before[k] != val
            ]
            AuditWriter(session, actor, now).record(
                "updateWebhookEndpoint", "WebhookEndpoint", endpoint.id, changes
            )
        return endpoint

    async def rotate_secret(self, actor: Actor, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
        """A new signing secret (returned this once); the old one keeps signing alongside
        it for ``ROTATION_OVERLAP``."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            endpoint = await self._load(session, endpoint_id)
            secret = SECRET_PREFIX + secrets.token_urlsafe(32)
            endpoint.previous_secret = endpoint.secret
            endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
            endpoint.secret = secret
            # The audit records that and when, never a secret.
            AuditWriter(session, actor, now).record(
                "rotateWebhookSecret",
                "WebhookEndpoint",
                endpoint.id,
                [{"field": "secretRotatedAt", "before": None, "after": now.isoformat()}],
            )
        return endpoint, secret

    async def replay(
        self,
        actor: Actor,
        *,
        delivery_ids: Sequence[int] = (),
        endpoint_id: str | None = None,
        state: DeliveryState | None = None,
    ) -> list[WebhookDelivery]:
        """Send deliveries again at the next run, with the same event id: the named ones,
        or every one of ``endpoint_id`` in ``state`` (e.g. DEAD). Attempts start over."""
        if not delivery_ids and endpoint_id is None:
            raise BadUserInput([FieldError("deliveryIds", "name deliveries or an endpoint")])
        now = self.clock.now()
        async with self.db.transaction() as session:
            stmt = select(WebhookDelivery).order_by(WebhookDelivery.id).with_for_update()
            if delivery_ids:
                stmt = stmt.where(WebhookDelivery.id.in_(delivery_ids))
            if endpoint_id is not None:
                await self._load(session, endpoint_id)
                stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
            if state is not None:
                stmt = stmt.where(WebhookDelivery.state == state)
            found = list(await session.scalars(stmt))
            missing = sorted(set(delivery_ids) - {d.id for d in found})
            if missing:
                raise NotFound("WebhookDelivery", f"{PREFIXES['WebhookDelivery']}_{missing[0]}")
            audit = AuditWriter(session, actor, now)
            for delivery in found:
                audit.record(
                    "replayWebhookDelivery",
                    "WebhookDelivery",
                    delivery_id(delivery),
                    [{"field": "state", "before": delivery.state.value, "after": "PENDING"}],
                )
            if found:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_([d.id for d in found]))
                    .values(state=DeliveryState.PENDING, attempts=0, next_attempt_at=now)
                )
            for delivery in found:
                await session.refresh(delivery)
        return found
