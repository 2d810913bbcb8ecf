"""Who is told what: e-mail notices planned from the workflow-event outbox.

Planning renders each notice for its recipient, with only the customer fields that recipient's
roles may read (the same ``PermissionView`` the API consults), and stores it under a unique
key, so a notice is planned once however often the job runs or how many workers run it.

- ``STEP_DONE`` of ``submitHandbook`` → ``handbook_submitted`` to the outgoing owner's manager
  (the reviewer);
- ``DUE_SOON`` / ``OVERDUE`` → ``step_due_soon`` / ``step_overdue`` to the outgoing and incoming
  owners, and to the outgoing owner's manager for the manager's own steps;
- ``STEP_DONE`` of ``reviewHandbook`` approved → ``customer_notice_draft`` to the outgoing owner
  (the incoming one when there is none), to send to the customer;
- ``RISK_WARNING_RAISED`` while health is RED (the health sweep, ``core.notify.risk``) →
  ``health_red`` to every manager up the owner's chain, with the warnings they may read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.view import PermissionView
from core.domain import (
    LOCALES,
    Customer,
    EmailCursor,
    EmailNotice,
    Handover,
    NoticeStatus,
    User,
    WorkflowEventRecord,
)
from core.notify.email_templates import LABELS, EmailTemplates
from core.notify.risk import warning_visible
from core.notify.webhooks import load_customers
from core.services import Services
from core.services.events import DUE_SOON, OVERDUE, RISK_WARNING_RAISED, STEP_DONE
from core.services.reassignment import SENSITIVE_TIERS

# Events older than this when first seen are not mailed (e.g. when e-mail is first switched
# on): a reminder a week late helps nobody. The cursor still moves past them.
MAX_EVENT_AGE = timedelta(days=7)
BATCH = 500
# Steps whose pending party is the outgoing owner's manager (they hear of their deadlines too).
MANAGER_STEPS = ("reviewHandbook", "recordSatisfaction")
# Customer.<field> → model attribute, for the facts a notice may show.
FACT_COLUMNS = {
    "valueTier": "value_tier",
    "industry": "industry",
    "territory": "territory",
    "annualRevenue": "annual_revenue",
    "profitContribution": "profit_contribution",
    "paymentTermsDays": "payment_terms_days",
}


@dataclass(frozen=True)
class Planned:
    """One notice to render: what, to whom, about which customer, with which extra values."""

    key: str
    template: str
    recipient: User
    customer: Customer
    event_id: int | None
    values: Mapping[str, Any]


class Planner:
    """Renders and stores notices; ``default_locale`` serves users who chose none."""

    def __init__(self, services: Services, templates: EmailTemplates, default_locale: str):
        self.services = services
        self.templates = templates
        self.default_locale = default_locale

    async def from_outbox(self, session: AsyncSession, now: datetime) -> int:
        """Plan the notices of outbox events after the cursor; returns how many were new."""
        cursor = await session.get(EmailCursor, 1, with_for_update=True)
        if cursor is None:
            cursor = EmailCursor(id=1, last_event_id=0)
            session.add(cursor)
        events = list(
            await session.scalars(
                select(WorkflowEventRecord)
                .where(WorkflowEventRecord.id > cursor.last_event_id)
                .order_by(WorkflowEventRecord.id)
                .limit(BATCH)
            )
        )
        if not events:
            return 0
        cursor.last_event_id = events[-1].id
        fresh = [e for e in events if e.at >= now - MAX_EVENT_AGE]
        # Handover events, and risk warnings raised while the customer's health is RED; team
        # changes have no e-mail notice yet.
        steps = [e for e in fresh if e.handover_id is not None]
        red = [
            e
            for e in fresh
            if e.kind == RISK_WARNING_RAISED and e.payload.get("healthLevel") == "RED"
        ]
        handovers = {
            h.id: h
            for h in await session.scalars(
                select(Handover).where(Handover.id.in_({e.handover_id for e in steps}))
            )
        }
        customers = await load_customers(session, {e.customer_id for e in steps + red})
        users = _Users(session)
        planned: list[Planned] = []
        for event in steps:
            handover = handovers[str(event.handover_id)]
            customer = customers[event.customer_id]
            for template, recipient_id, values in await self._for_event(event, handover, users):
                recipient = await users.get(recipient_id)
                if recipient is not None:
                    key = f"event:{event.id}:{recipient.id}:{template}"
                    planned.append(Planned(key, template, recipient, customer, event.id, values))
        planned += await self._red(red, customers, users)
        return await self._store(session, planned, now)

    async def _red(
        self,
        events: Sequence[WorkflowEventRecord],
        customers: Mapping[str, Customer],
        users: _Users,
    ) -> list[Planned]:
        """A ``health_red`` notice to each manager up the owner's chain per customer whose
        warnings were raised while its health is RED (the health sweep's events of one
        planning batch together: one notice listing them). A warning that clears and is
        raised again is a new event, so a relapse is a new notice."""
        by_customer: dict[str, list[WorkflowEventRecord]] = {}
        for event in events:
            by_customer.setdefault(event.customer_id, []).append(event)
        planned = []
        for customer_id, raised in by_customer.items():
            customer = customers[customer_id]
            owner_id = customer.active_ownership.owner_id if customer.active_ownership else None
            if owner_id is None:
                continue
            values = {"owner": await users.get(owner_id), "raised": raised}
            for manager in await users.managers_of(owner_id):
                key = f"health:{customer_id}:{raised[0].id}:{manager.id}"
                planned.append(Planned(key, "health_red", manager, customer, raised[0].id, values))
        return planned

    async def _for_event(
        self, event: WorkflowEventRecord, handover: Handover, users: _Users
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(template, recipient id, values) for each notice the event calls for."""
        step = event.payload.get("step")
        outgoing, incoming = handover.from_owner_id, handover.to_owner_id
        manager = await users.manager_of(outgoing)
        parties = {"from_owner": await users.get(outgoing), "to_owner": await users.get(incoming)}
        values: dict[str, Any] = {"handover": handover, **parties}
        if event.kind == STEP_DONE and step == "submitHandbook" and manager is not None:
            due = self.services.handover.calendar.add_working_days(event.at, 1)
            return [("handbook_submitted", manager.id, {**values, "due_at": due})]
        if event.kind == STEP_DONE and step == "reviewHandbook":
            if event.payload.get("status") != "HANDBOOK_APPROVED":
                return []
            return [("customer_notice_draft", outgoing or incoming, values)]
        if event.kind in (DUE_SOON, OVERDUE):
            template = "step_due_soon" if event.kind == DUE_SOON else "step_overdue"
            recipients = [r for r in (outgoing, incoming) if r is not None]
            if step in MANAGER_STEPS and manager is not None:
                recipients.append(manager.id)
            due = datetime.fromisoformat(str(event.payload.get("dueAt")))
            extra = {**values, "due_at": due, "step": step}
            return [(template, r, extra) for r in dict.fromkeys(recipients)]
        return []

    async def _store(self, session: AsyncSession, planned: Sequence[Planned], now: datetime) -> int:
        rows = []
        await self.services.authz.catch_up(session)  # a worker has no request to refresh it
        for p in planned:
            if not p.recipient.active or not p.recipient.email:
                continue
            view = await self.services.authz.view_for(p.recipient.id)
            if "raised" in p.values and not any(
                warning_visible(view, e.payload) for e in p.values["raised"]
            ):
                continue  # nothing of it that they may read
            locale = p.recipient.locale if p.recipient.locale in LOCALES else self.default_locale
            text = self.templates.render(
                p.template, locale, _values(view, locale, p.recipient, p.customer, p.values)
            )
            rows.append(
                {
                    "key": p.key,
                    "event_id": p.event_id,
                    "customer_id": p.customer.id,
                    "recipient_id": p.recipient.id,
                    "address": p.recipient.email,
                    "template": p.template,
                    "locale": locale,
                    "subject": text.subject,
                    "body": text.body,
                    "status": NoticeStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        if not rows:
            return 0
        dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
        stmt = (
            dialect.insert(EmailNotice)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(EmailNotice.id)
        )
        return len(list(await session.scalars(stmt)))


class _Users:
    """Users read once per planning run."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.cache: dict[str, User | None] = {}

    async def get(self, user_id: str | None) -> User | None:
        if user_id is None:
            return None
        if user_id not in self.cache:
            self.cache[user_id] = await self.session.get(User, user_id)
        return self.cache[user_id]

    async def manager_of(self, user_id: str | None) -> User | None:
        user = await self.get(user_id)
        return await self.get(user.manager_id) if user is not None else None

    async def managers_of(self, user_id: str) -> list[User]:
        """Each manager above the user, nearest first (a cycle stops the walk)."""
        chain: list[User] = []
        manager = await self.manager_of(user_id)
        while manager is not None and manager not in chain:
            chain.append(manager)
            manager = await self.manager_of(manager.id)
        return chain


def _user_name(view: PermissionView, user: User | None) -> str:
    if user is None:
        return "—"
    return user.name if view.can_read("User", "name") else user.id


def _format(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return str(getattr(value, "value", value))


def _values(
    view: PermissionView,
    locale: str,
    recipient: User,
    customer: Customer,
    extra: Mapping[str, Any],
) -> dict[str, str]:
    """The template values, each customer or user field only if the recipient may read it."""
    labels = LABELS[locale]
    facts = [
        f"{labels.facts[name]}: {_format(getattr(customer, column))}"
        for name, column in FACT_COLUMNS.items()
        if view.can_read("Customer", name) and getattr(customer, column) is not None
    ]
    values = {
        "recipient_name": recipient.name,
        "customer_id": customer.id,
        "customer_name": customer.name if view.can_read("Customer", "name") else customer.id,
        "customer_facts": "\n".join(facts),
    }
    if (handover := extra.get("handover")) is not None:
        values["handover_id"] = handover.id
    for role in ("from_owner", "to_owner", "owner"):
        if role in extra:
            values[f"{role}_name"] = _user_name(view, extra[role])
    if "to_owner" in extra:
        to_owner = extra["to_owner"]
        readable = to_owner is not None and view.can_read("User", "email") and to_owner.email
        values["to_owner_email"] = to_owner.email if readable else "—"
    if "due_at" in extra:
        values["due_at"] = extra["due_at"].strftime("%Y-%m-%d %H:%M UTC")
    if "step" in extra:
        values["step"] = labels.steps.get(extra["step"], str(extra["step"]))
    if handover is not None:
        contacts = customer.contacts if view.can_read("Customer", "contacts") else []
        names = [str(c.get("name")) for c in contacts or [] if c.get("name")]
        values["contact_names"] = "、".join(names) if locale == "zh" else ", ".join(names)
        values["contact_names"] = values["contact_names"] or values["customer_name"]
        # Which rule applies tells the tier: only to a reader of the tier.
        sensitive = (
            view.can_read("Customer", "valueTier") and customer.value_tier in SENSITIVE_TIERS
        )
        values["notice_rule"] = labels.notice_rule["key_account" if sensitive else "other"]
    if (raised := extra.get("raised")) is not None:
        values.update(_health_values(view, raised))
    return values


def _health_values(view: PermissionView, raised: Sequence[WorkflowEventRecord]) -> dict[str, str]:
    """The score as the sweep found it and the warnings raised, those ``view`` may read."""
    score = raised[-1].payload.get("healthScore")
    readable = view.can_read("RiskWarning", "message")
    lines = [
        f"- [{e.payload.get('level')}] {e.payload.get('message' if readable else 'code')}"
        for e in raised
        if warning_visible(view, e.payload)
    ]
    shown = str(score) if view.can_read("CustomerHealth", "score") and score is not None else "—"
    return {"health_score": shown, "warnings": "\n".join(lines)}
