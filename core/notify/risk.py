"""The health sweep: risk warnings recorded as workflow events when they are raised and when
they clear, once each.

The scheduler's ``health_sweep`` job walks every customer in id order, ``BATCH`` at a time,
and asks the insight service for their health (``TieringService.health``, its batch API).
Per batch it compares the warnings found with ``risk_warning_states`` (what the sweep saw
raised before) and, in one short transaction, writes a ``RISK_WARNING_RAISED`` event for each new
warning and a ``RISK_WARNING_CLEARED`` event for each that went, with the state rows: a fixed
number of statements per batch, whatever its size. A sweep stopped at any moment leaves each
batch either done or not, so the next run neither misses nor repeats a change.

Everything that tells people about warnings reads these events: ``Subscription.riskWarnings``,
webhooks (the two event types) and the RED e-mail to managers (``core.notify.email_plan``).
Each shows a warning only to whoever may read it: ``CustomerHealth.warnings``, and the
indicator that raised it (``HealthIndicator.<name>``), as ``Customer.health`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, or_, select, true, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.view import PermissionView
from core.db import after_commit
from core.domain import Customer, RiskWarningState, WorkflowEventRecord
from core.insight.health import Health
from core.insight.indicators import registry as indicator_registry
from core.plugins import PluginRegistry, camel
from core.services import Services
from core.services.events import RISK_KINDS, RISK_WARNING_CLEARED, RISK_WARNING_RAISED

HEALTH_SWEEP = "health_sweep"
BATCH = 500


def warning_visible(view: PermissionView, payload: Mapping[str, Any]) -> bool:
    """May ``view`` read the warning of a risk event (its ``payload``)?"""
    indicator = payload.get("indicator")
    return view.can_read("CustomerHealth", "warnings") and (
        indicator is None or view.can_read("HealthIndicator", str(indicator))
    )


# A risk event's payload fields that are another object's value, and that object.
_PAYLOAD_OBJECTS = {
    "healthScore": ("CustomerHealth", "score"),
    "healthLevel": ("CustomerHealth", "level"),
    "message": ("RiskWarning", "message"),
}


def readable_payload(
    view: PermissionView, kind: str, payload: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The payload of an outbox event as ``view`` may read it (``WorkflowEvent.payload``): for
    a risk warning only if the warning is visible, without the score, band and message
    unless their own fields are readable. None: nothing of it. The one rule for the query,
    the subscriptions, webhooks and e-mail."""
    if not view.can_read("WorkflowEvent", "payload"):
        return None
    if kind not in RISK_KINDS:
        return dict(payload)
    if not warning_visible(view, payload):
        return None
    return {
        key: value
        for key, value in payload.items()
        if key not in _PAYLOAD_OBJECTS or view.can_read(*_PAYLOAD_OBJECTS[key])
    }


def visible_events(view: PermissionView, plugins: PluginRegistry) -> ColumnElement[bool]:
    """``warning_visible`` in SQL, over outbox rows: any event but a risk warning the viewer
    may not read (the query and both subscriptions filter with it)."""
    kind, model = WorkflowEventRecord.kind, WorkflowEventRecord
    if not view.can_read("CustomerHealth", "warnings"):
        return kind.not_in(RISK_KINDS)
    names = (camel(i.name) for i in indicator_registry(plugins))
    hidden = [n for n in names if not view.can_read("HealthIndicator", n)]
    if not hidden:
        return true()
    indicator = model.payload["indicator"].as_string()
    return or_(kind.not_in(RISK_KINDS), indicator.is_(None), indicator.not_in(hidden))


async def sweep_health(services: Services, now: datetime) -> int:
    """Record every raised and cleared warning since the last sweep; returns the events."""
    written = 0
    after = ""
    while True:
        # Health is computed outside the write transaction (SQLite's lock is not held for it).
        async with services.db.reader() as session:
            customers = list(
                await session.scalars(
                    select(Customer).where(Customer.id > after).order_by(Customer.id).limit(BATCH)
                )
            )
            if not customers:
                return written
            healths = await services.tiering.health(session, customers)
        async with services.db.transaction() as session:
            events = await _record(session, customers, healths, now)
            after_commit(session, partial(services.handover.outbox.deliver, events))
        written += len(events)
        after = customers[-1].id
        if len(customers) < BATCH:
            return written


def _payload(health: Health, **warning: Any) -> dict[str, Any]:
    return {**warning, "healthScore": health.score, "healthLevel": health.level}


async def _record(
    session: AsyncSession, customers: Sequence[Customer], healths: Sequence[Health], now: datetime
) -> list[WorkflowEventRecord]:
    """The state rows and events of one batch: four statements."""
    ids = [c.id for c in customers]
    health_of = dict(zip(ids, healths, strict=True))
    found = {}
    for customer_id, health in health_of.items():
        indicators = {camel(r.indicator.name) for r in health.readings}
        for w in health.warnings:
            found[(customer_id, w.code)] = (w, w.signal if w.signal in indicators else None)
    known = {
        (s.customer_id, s.code): s
        for s in await session.scalars(
            select(RiskWarningState).where(RiskWarningState.customer_id.in_(ids))
        )
    }
    events: list[dict[str, Any]] = []
    new = [key for key in found if key not in known]
    if new:
        dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
        rows = [
            {
                "customer_id": customer_id,
                "code": code,
                "level": found[(customer_id, code)][0].level,
                "signal": found[(customer_id, code)][0].signal,
                "indicator": found[(customer_id, code)][1],
                "raised_at": now,
            }
            for customer_id, code in new
        ]
        inserted = await session.execute(
            dialect.insert(RiskWarningState)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(RiskWarningState.customer_id, RiskWarningState.code)
        )
        for customer_id, code in inserted.all():  # a concurrent sweep's rows are its own
            w, indicator = found[(customer_id, code)]
            since = w.since.isoformat() if w.since else None
            payload = _payload(
                health_of[customer_id],
                code=code,
                level=w.level,
                message=w.message,
                signal=w.signal,
                indicator=indicator,
                since=since,
            )
            events.append({"kind": RISK_WARNING_RAISED, "customer_id": customer_id, **payload})
    gone = [key for key in known if key not in found]
    if gone:
        cleared = await session.execute(
            delete(RiskWarningState)
            .where(tuple_(RiskWarningState.customer_id, RiskWarningState.code).in_(gone))
            .returning(RiskWarningState)
        )
        for state in cleared.scalars():
            payload = _payload(
                health_of[state.customer_id],
                code=state.code,
                level=state.level,
                signal=state.signal,
                indicator=state.indicator,
                raisedAt=state.raised_at.isoformat(),
            )
            events.append(
                {"kind": RISK_WARNING_CLEARED, "customer_id": state.customer_id, **payload}
            )
    if not events:
        return []
    records = [
        {
            "kind": e.pop("kind"),
            "at": now,
            "handover_id": None,
            "customer_id": e.pop("customer_id"),
            "payload": e,
        }
        for e in events
    ]
    stmt = insert(WorkflowEventRecord).values(records).returning(WorkflowEventRecord)
    return list(await session.scalars(stmt))
