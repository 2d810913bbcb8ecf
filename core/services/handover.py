"""The handover workflow: each step checks state, actor and version, records its time (the
deadlines derive from those times), and is one transaction with its audit entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from core.calendar import WorkingCalendar
from core.clock import Clock
from core.db import Database, after_commit
from core.domain import (
    AssignedBy,
    Handover,
    HandoverMeeting,
    HandoverStatus,
    MeetingKind,
    Ownership,
)
from core.errors import BadUserInput, Conflict, FieldError, Forbidden, InvalidState
from core.services import validation as v
from core.services.audit import Actor, AuditWriter, audit_value, diff
from core.services.customers import EVERYTHING, CustomerScope, load_customer
from core.services.events import (
    CANCELLED,
    COMPLETED,
    DUE_SOON,
    OVERDUE,
    STEP_DONE,
    Outbox,
    insert_deadline_events,
)
from core.services.parties import actor_roles
from core.services.reassignment import (
    HANDOVER_FIELDS,
    SENSITIVE_TIERS,
    load_handover_with_manager,
    snapshot,
)

S = HandoverStatus
FINAL = (S.CLOSED, S.CANCELLED)
HANDBOOK_SECTIONS = ("profileSummary", "openItems", "strategyAdvice", "riskWarnings")
FEEDBACK_SECTIONS = ("clearItems", "pendingItems", "helpNeeded")
NOTICE_BEFORE_COMPLETION = timedelta(days=7)
# Steps whose event says more than STEP_DONE.
STEP_EVENTS = {"completeHandover": COMPLETED, "cancelHandover": CANCELLED}


class Party(Enum):
    """Who may take a step."""

    OUTGOING = "the outgoing owner"
    INCOMING = "the new owner"
    MANAGER = "the outgoing owner's manager, a sales director or an admin"


@dataclass(frozen=True)
class Deadline:
    step: str
    due_at: datetime | None
    done_at: datetime | None


def deadlines(h: Handover, calendar: WorkingCalendar) -> list[Deadline]:
    """Every dated step of the handover, from the times recorded on it."""
    done = h.completed_at
    return [
        Deadline(
            "submitHandbook", calendar.add_working_days(h.opened_at, 3), h.handbook_submitted_at
        ),
        Deadline(
            "reviewHandbook",
            h.handbook_submitted_at and calendar.add_working_days(h.handbook_submitted_at, 1),
            h.handbook_approved_at,
        ),
        Deadline(
            "submitHandoverFeedback", done and calendar.add_working_days(done, 5), h.feedback_at
        ),
        Deadline("recordSatisfaction", done and done + timedelta(days=30), h.satisfaction_at),
    ]


# The step whose deadline ``due_at`` shows, per state.
PENDING_STEP = {
    S.HANDBOOK_PENDING: "submitHandbook",
    S.HANDBOOK_SUBMITTED: "reviewHandbook",
    S.COMPLETED: "submitHandoverFeedback",
    S.FEEDBACK_RECEIVED: "recordSatisfaction",
}


def _sections(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    errors = [
        FieldError(n, r)
        for n in names
        if (r := v.text(values.get(n), max_length=10_000, required=True))
    ]
    if errors:
        raise BadUserInput(errors)
    return {n: str(values[n]).strip() for n in names}


Apply = Callable[[AsyncSession, Handover, datetime, AuditWriter], Awaitable[None]]


class HandoverService:
    """The handover steps of CONTRACT.md, "Reassignment and handover"."""

    def __init__(
        self, db: Database, clock: Clock, calendar: WorkingCalendar, outbox: Outbox
    ) -> None:
        self.db = db
        self.clock = clock
        self.calendar = calendar
        self.outbox = outbox

    async def _step(
        self,
        actor: Actor,
        handover_id: str,
        expected_version: int,
        name: str,
        allowed: tuple[HandoverStatus, ...],
        party: Party,
        target: HandoverStatus | None,
        apply: Apply,
        scope: CustomerScope,
        reason: str | None = None,
    ) -> Handover:
        now = self.clock.now()
        async with self.db.transaction() as session:
            # Who, then which version, then when: someone who cannot see the handover gets
            # NOT_FOUND, a viewer who is not the step's party FORBIDDEN, the party a stale
            # version CONFLICT and a step out of order INVALID_STATE.
            handover, manager = await load_handover_with_manager(session, handover_id, scope)
            await self._check_party(session, actor, handover, manager, party, name)
            if handover.version != expected_version:
                raise Conflict(
                    f"Handover {handover_id!r} is at version {handover.version}, not "
                    f"{expected_version}; reload and retry",
                    currentVersion=handover.version,
                )
            if handover.status not in allowed:
                raise InvalidState(
                    f"{name} is not allowed while the handover is {handover.status}",
                    state=handover.status.value,
                )
            before = snapshot(handover, HANDOVER_FIELDS)
            audit = AuditWriter(session, actor, now)
            await apply(session, handover, now, audit)
            if target is not None:
                handover.status = target
            step = PENDING_STEP.get(handover.status)
            handover.due_at = next(
                (d.due_at for d in deadlines(handover, self.calendar) if d.step == step), None
            )
            handover.updated_at = now
            # Every step is a new version, also one that changes no column of the handover
            # itself (a meeting) at a time equal to the last step's.
            flag_modified(handover, "updated_at")
            await session.flush()
            audit.record(
                name,
                "Handover",
                handover.id,
                diff(before, snapshot(handover, HANDOVER_FIELDS)),
                reason,
            )
            kind = STEP_EVENTS.get(name, STEP_DONE)
            self.outbox.add(session, kind, handover, now, {"step": name})
            return handover

    async def sweep_deadlines(self) -> dict[str, int]:
        """Record DUE_SOON (due within a working day) and OVERDUE once per deadline of every
        open handover: two statements whatever their number. Returns new events per kind."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            candidates = (
                await session.execute(
                    select(
                        Handover.id, Handover.customer_id, Handover.status, Handover.due_at
                    ).where(
                        Handover.status.not_in(FINAL),
                        Handover.due_at <= self.calendar.add_working_days(now, 1),
                    )
                )
            ).all()
            rows = []
            for hid, cid, status, due_at in candidates:
                due = cast(datetime, due_at)  # not null: the query compared it
                kind, step = OVERDUE if due < now else DUE_SOON, PENDING_STEP[status]
                rows.append(
                    {
                        "kind": kind,
                        "at": now,
                        "handover_id": hid,
                        "customer_id": cid,
                        "payload": {"status": status.value, "step": step, "dueAt": due.isoformat()},
                        "dedupe_key": f"{kind}:{hid}:{step}:{due.isoformat()}",
                    }
                )
            inserted = await insert_deadline_events(session, rows) if rows else []
            after_commit(session, lambda: self.outbox.deliver(inserted))
        return {k: sum(1 for r in inserted if r.kind == k) for k in (DUE_SOON, OVERDUE)}

    @staticmethod
    async def _check_party(
        session: AsyncSession,
        actor: Actor,
        h: Handover,
        manager: str | None,
        party: Party,
        name: str,
    ) -> None:
        """``manager``: the outgoing owner's manager, read with the handover."""
        roles = await actor_roles(session, actor)
        if actor.user_id is None or "admin" in roles:
            return
        if party is Party.OUTGOING and actor.user_id == h.from_owner_id:
            return
        if party is Party.INCOMING and actor.user_id == h.to_owner_id:
            return
        if party is Party.MANAGER and ("sales_director" in roles or actor.user_id == manager):
            return
        raise Forbidden(f"only {party.value} may {name}")

    async def submit_handbook(
        self,
        actor: Actor,
        hid: str,
        version: int,
        sections: dict[str, Any],
        scope: CustomerScope = EVERYTHING,
    ) -> Handover:
        """The outgoing owner's handbook: all four sections are required."""
        handbook = _sections(sections, HANDBOOK_SECTIONS)

        async def apply(_s: AsyncSession, h: Handover, now: datetime, _a: AuditWriter) -> None:
            h.handbook, h.handbook_submitted_at = handbook, now

        return await self._step(
            actor,
            hid,
            version,
            "submitHandbook",
            (S.HANDBOOK_PENDING,),
            Party.OUTGOING,
            S.HANDBOOK_SUBMITTED,
            apply,
            scope,
        )

    async def review_handbook(
        self,
        actor: Actor,
        hid: str,
        version: int,
        approve: bool,
        comment: str | None,
        scope: CustomerScope = EVERYTHING,
    ) -> Handover:
        """Approve the handbook, or send it back to the outgoing owner (a reason is needed)."""
        if not approve and not (comment or "").strip():
            raise BadUserInput.one("comment", "sending a handbook back needs a reason")

        async def apply(_s: AsyncSession, h: Handover, now: datetime, _a: AuditWriter) -> None:
            if approve:
                h.handbook_approved_at = now
            else:
                h.handbook_submitted_at = None

        return await self._step(
            actor,
            hid,
            version,
            "reviewHandbook",
            (S.HANDBOOK_SUBMITTED,),
            Party.MANAGER,
            S.HANDBOOK_APPROVED if approve else S.HANDBOOK_PENDING,
            apply,
            scope,
            comment,
        )

    async def record_meeting(
        self,
        actor: Actor,
        hid: str,
        version: int,
        kind: MeetingKind,
        held_at: datetime,
        notes: str | None,
        scope: CustomerScope = EVERYTHING,
    ) -> Handover:
        """A briefing, simulation or three-party meeting, from handbook approval to completion."""

        async def apply(s: AsyncSession, h: Handover, _now: datetime, a: AuditWriter) -> None:
            s.add(
                HandoverMeeting(
                    handover_id=h.id,
                    kind=kind,
                    held_at=held_at,
                    notes=notes,
                    recorded_by_id=actor.user_id,
                )
            )
            # The handover's own columns do not change: the meeting is the audited change.
            meeting = {"kind": kind, "heldAt": held_at, "notes": notes}
            change = {"field": "meetings", "before": None, "after": audit_value(meeting)}
            a.record("recordHandoverMeeting", "Handover", h.id, [change])

        return await self._step(
            actor,
            hid,
            version,
            "recordHandoverMeeting",
            (S.HANDBOOK_APPROVED, S.CUSTOMER_NOTIFIED),
            Party.OUTGOING,
            None,
            apply,
            scope,
            f"{kind} meeting",
        )

    async def notify_customer(
        self, actor: Actor, hid: str, version: int, scope: CustomerScope = EVERYTHING
    ) -> Handover:
        async def apply(_s: AsyncSession, h: Handover, now: datetime, _a: AuditWriter) -> None:
            h.customer_notified_at = now

        return await self._step(
            actor,
            hid,
            version,
            "notifyCustomer",
            (S.HANDBOOK_APPROVED,),
            Party.OUTGOING,
            S.CUSTOMER_NOTIFIED,
            apply,
            scope,
        )

    async def complete(
        self, actor: Actor, hid: str, version: int, scope: CustomerScope = EVERYTHING
    ) -> Handover:
        """Switch ownership, once at least two meetings were held (for STRATEGIC and HIGH
        customers also a three-party meeting, and the customer was told 7 days before)."""

        async def apply(s: AsyncSession, h: Handover, now: datetime, a: AuditWriter) -> None:
            kinds = list(
                await s.scalars(
                    select(HandoverMeeting.kind).where(HandoverMeeting.handover_id == h.id)
                )
            )
            customer = await load_customer(s, h.customer_id, lock=True)
            missing = []
            if len(kinds) < 2:
                missing.append("at least two handover meetings")
            if customer.value_tier in SENSITIVE_TIERS:
                if MeetingKind.THREE_PARTY not in kinds:
                    missing.append("a three-party meeting")
                notified = h.customer_notified_at
                if notified is None or now - notified < NOTICE_BEFORE_COMPLETION:
                    missing.append("a customer notice at least 7 days before completion")
            if missing:
                raise InvalidState(
                    f"cannot complete yet: needs {'; '.join(missing)}", state=h.status.value
                )
            active = customer.active_ownership
            if active is not None:
                active.valid_to = now
                await s.flush()  # the old row closes before the new one opens (unique index)
            s.add(
                Ownership(
                    customer_id=h.customer_id,
                    owner_id=h.to_owner_id,
                    assigned_by=AssignedBy.HANDOVER,
                    reason=f"handover {h.id}",
                    actor_id=actor.user_id,
                    valid_from=now,
                )
            )
            customer.updated_at = now
            h.completed_at = now
            a.record(
                "completeHandover",
                "Customer",
                customer.id,
                [{"field": "owner", "before": h.from_owner_id, "after": h.to_owner_id}],
            )

        return await self._step(
            actor,
            hid,
            version,
            "completeHandover",
            (S.CUSTOMER_NOTIFIED,),
            Party.MANAGER,
            S.COMPLETED,
            apply,
            scope,
        )

    async def submit_feedback(
        self,
        actor: Actor,
        hid: str,
        version: int,
        sections: dict[str, Any],
        scope: CustomerScope = EVERYTHING,
    ) -> Handover:
        feedback = _sections(sections, FEEDBACK_SECTIONS)

        async def apply(_s: AsyncSession, h: Handover, now: datetime, _a: AuditWriter) -> None:
            h.feedback, h.feedback_at = feedback, now

        return await self._step(
            actor,
            hid,
            version,
            "submitHandoverFeedback",
            (S.COMPLETED,),
            Party.INCOMING,
            S.FEEDBACK_RECEIVED,
            apply,
            scope,
        )

    async def record_satisfaction(
        self, actor: Actor, hid: str, version: int, score: int, scope: CustomerScope = EVERYTHING
    ) -> Handover:
        if reason := v.int_range(score, 1, 5):
            raise BadUserInput.one("score", reason)

        async def apply(_s: AsyncSession, h: Handover, now: datetime, _a: AuditWriter) -> None:
            h.satisfaction, h.satisfaction_at = score, now

        return await self._step(
            actor,
            hid,
            version,
            "recordSatisfaction",
            (S.FEEDBACK_RECEIVED,),
            Party.MANAGER,
            S.CLOSED,
            apply,
            scope,
        )

    async def cancel(
        self,
        actor: Actor,
        hid: str,
        version: int,
        reason: str | None,
        scope: CustomerScope = EVERYTHING,
    ) -> Handover:
        async def apply(_s: AsyncSession, h: Handover, now: datetime, _a: AuditWriter) -> None:
            h.cancelled_at = now

        return await self._step(
            actor,
            hid,
            version,
            "cancelHandover",
            (S.HANDBOOK_PENDING, S.HANDBOOK_SUBMITTED, S.HANDBOOK_APPROVED, S.CUSTOMER_NOTIFIED),
            Party.MANAGER,
            S.CANCELLED,
            apply,
            scope,
            reason,
        )
