"""The workflow-event outbox: written inside the use case's transaction, delivered after it.

Integrations read the outbox (``workflowEvents``, ``baton events list``) in id order; plugins
get each event through ``baton_workflow_event`` once its transaction committed. A subscriber
that fails is logged and never undoes or fails the step that produced the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import after_commit
from core.domain import Handover, WorkflowEventRecord
from sdk.specs import WorkflowEvent

log = logging.getLogger("baton.events")

HANDOVER_OPENED = "HANDOVER_OPENED"
STEP_DONE = "STEP_DONE"
DUE_SOON = "DUE_SOON"
OVERDUE = "OVERDUE"
COMPLETED = "COMPLETED"
CANCELLED = "CANCELLED"
TEAM_MEMBER_REMOVED = "TEAM_MEMBER_REMOVED"
# Written by the health sweep (core.notify.risk), without a handover.
RISK_WARNING_RAISED = "RISK_WARNING_RAISED"
RISK_WARNING_CLEARED = "RISK_WARNING_CLEARED"
RISK_KINDS = (RISK_WARNING_RAISED, RISK_WARNING_CLEARED)

Subscriber = Callable[[WorkflowEvent], object]


def to_event(record: WorkflowEventRecord) -> WorkflowEvent:
    """The frozen view plugins and integrations get of an outbox row."""
    return WorkflowEvent(
        id=record.id,
        kind=record.kind,
        at=record.at,
        handover_id=record.handover_id,
        customer_id=record.customer_id,
        payload=dict(record.payload),
    )


class Outbox:
    """Writes workflow events and hands them to the subscribers after commit."""

    def __init__(self, subscribers: Sequence[Subscriber] = ()) -> None:
        self.subscribers = tuple(subscribers)

    def add(
        self,
        session: AsyncSession,
        kind: str,
        handover: Handover,
        at: datetime,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Record ``kind`` for ``handover`` in the session's transaction."""
        self.add_record(
            session,
            WorkflowEventRecord(
                kind=kind,
                at=at,
                handover_id=handover.id,
                customer_id=handover.customer_id,
                payload={"status": handover.status.value, **(payload or {})},
            ),
        )

    def add_record(self, session: AsyncSession, record: WorkflowEventRecord) -> None:
        """Record an event (of a handover, or of a customer only) in the session's
        transaction; it is delivered after commit."""
        session.add(record)
        after_commit(session, lambda: self.deliver([record]))

    def deliver(self, records: Sequence[WorkflowEventRecord]) -> None:
        """Call every subscriber once per event, in id order."""
        for record in sorted(records, key=lambda r: r.id):
            event = to_event(record)
            for subscriber in self.subscribers:
                try:
                    subscriber(event)
                except Exception:  # a subscriber's failure is its own, never the step's
                    log.exception(
                        "workflow event subscriber %r failed on event %s", subscriber, event.id
                    )


async def insert_deadline_events(
    session: AsyncSession, rows: list[dict[str, Any]]
) -> list[WorkflowEventRecord]:
    """Insert deadline events in one statement, skipping those recorded already (same
    ``dedupe_key``); returns the new ones."""
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    stmt = (
        dialect.insert(WorkflowEventRecord)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(WorkflowEventRecord)
    )
    return list(await session.scalars(stmt))


async def list_events(
    session: AsyncSession, after: int | None = None, limit: int = 100
) -> list[WorkflowEvent]:
    """Outbox events after id ``after``, oldest first (for polling integrations)."""
    stmt = select(WorkflowEventRecord).order_by(WorkflowEventRecord.id).limit(limit)
    if after is not None:
        stmt = stmt.where(WorkflowEventRecord.id > after)
    return [to_event(r) for r in await session.scalars(stmt)]
