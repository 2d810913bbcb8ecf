"""Reassignment requests and handovers over GraphQL."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, cast

import strawberry
from sqlalchemy import Select, select
from strawberry.scalars import JSON
from strawberry.types import Info

from core import domain
from core.api.assignment import ReassignmentRequest
from core.api.connection import Connection, connection
from core.api.context import context_of
from core.api.types import Customer, Node, User, customer_in_scope, user_or_none
from core.calendar import WorkingCalendar
from core.domain.enums import HandoverStatus, MeetingKind, ReassignmentTrigger, RequestStatus
from core.ids import PREFIXES
from core.services import customers as customer_service
from core.services.handover import FINAL, deadlines
from core.services.pagination import DEFAULT_PAGE_SIZE, SortKey

strawberry.enum(HandoverStatus, description="Where a handover stands; CLOSED and CANCELLED end it.")
strawberry.enum(MeetingKind, description="Kinds of handover meeting.")


@strawberry.type(description="What the outgoing owner hands over.")
class Handbook:
    authz_exempt: ClassVar[bool] = True  # authorised by ``Handover.handbook``

    profile_summary: str
    open_items: str = strawberry.field(description="Pending contracts, complaints in progress.")
    strategy_advice: str
    risk_warnings: str


@strawberry.type(description="The new owner's view after taking over.")
class HandoverFeedback:
    authz_exempt: ClassVar[bool] = True

    clear_items: str
    pending_items: str
    help_needed: str


@strawberry.type
class HandoverMeetingRecord:
    authz_exempt: ClassVar[bool] = True  # authorised by ``Handover.meetings``

    kind: MeetingKind
    held_at: datetime
    notes: str | None


@strawberry.type(description="A dated step: when it is due and when it was done.")
class HandoverDeadline:
    authz_exempt: ClassVar[bool] = True

    step: str
    due_at: datetime | None
    done_at: datetime | None


@strawberry.type(description="Ownership moving to a new owner through tracked, dated steps.")
class Handover(Node):
    version: int
    trigger: ReassignmentTrigger | None
    status: HandoverStatus | None
    due_at: datetime | None = strawberry.field(description="Deadline of the step now pending.")
    opened_at: datetime | None
    overdue: bool | None = strawberry.field(description="The pending step is past its deadline.")
    handbook: Handbook | None
    feedback: HandoverFeedback | None
    satisfaction: int | None = strawberry.field(description="1 (poor) to 5 (excellent).")
    deadlines: list[HandoverDeadline] | None
    customer_id: strawberry.Private[str]
    from_owner_id: strawberry.Private[str | None]
    to_owner_id: strawberry.Private[str]

    @strawberry.field(description="Meetings held for the handover, oldest first.")
    async def meetings(self, info: Info) -> list[HandoverMeetingRecord] | None:
        rows = await context_of(info).meetings.load(str(self.id))
        return [HandoverMeetingRecord(kind=m.kind, held_at=m.held_at, notes=m.notes) for m in rows]

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        return await customer_in_scope(info, self.customer_id)

    @strawberry.field
    async def from_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.from_owner_id)

    @strawberry.field
    async def to_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.to_owner_id)

    @classmethod
    def from_model(cls, m: domain.Handover, now: datetime, calendar: WorkingCalendar) -> Handover:
        book, feedback = m.handbook, m.feedback
        return cls(
            id=strawberry.ID(m.id),
            version=m.version,
            trigger=m.trigger,
            status=m.status,
            due_at=m.due_at,
            opened_at=m.opened_at,
            overdue=m.status not in FINAL and m.due_at is not None and m.due_at < now,
            handbook=Handbook(
                profile_summary=book["profileSummary"],
                open_items=book["openItems"],
                strategy_advice=book["strategyAdvice"],
                risk_warnings=book["riskWarnings"],
            )
            if book
            else None,
            feedback=HandoverFeedback(
                clear_items=feedback["clearItems"],
                pending_items=feedback["pendingItems"],
                help_needed=feedback["helpNeeded"],
            )
            if feedback
            else None,
            satisfaction=m.satisfaction,
            deadlines=[
                HandoverDeadline(step=d.step, due_at=d.due_at, done_at=d.done_at)
                for d in deadlines(m, calendar)
            ],
            customer_id=m.customer_id,
            from_owner_id=m.from_owner_id,
            to_owner_id=m.to_owner_id,
        )


@strawberry.input
class RequestReassignmentInput:
    customer_id: strawberry.ID
    to_owner_id: strawberry.ID
    trigger: ReassignmentTrigger
    reason: str | None = None


@strawberry.enum
class ReviewDecision(Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


@strawberry.input
class ReviewReassignmentInput:
    request_id: strawberry.ID
    decision: ReviewDecision
    comment: str | None = strawberry.field(default=None, description="Required to reject.")
    to_owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="The new owner, when the request names none (OWNER_LEFT)."
    )


@strawberry.input
class ReassignmentRequestFilter:
    status: RequestStatus | None = None
    customer_id: strawberry.ID | None = None
    trigger: ReassignmentTrigger | None = None

    authz_entity: ClassVar[str] = "ReassignmentRequest"

    def authz_read_fields(self) -> set[str]:
        given = {"status": self.status, "customer": self.customer_id, "trigger": self.trigger}
        return {name for name, value in given.items() if value is not None}


@strawberry.input
class HandoverFilter:
    status: HandoverStatus | None = None
    customer_id: strawberry.ID | None = None
    overdue: bool | None = None

    authz_entity: ClassVar[str] = "Handover"

    def authz_read_fields(self) -> set[str]:
        given = {"status": self.status, "customer": self.customer_id, "overdue": self.overdue}
        return {name for name, value in given.items() if value is not None}


@strawberry.type
class RequestPayload:
    authz_exempt: ClassVar[bool] = True

    request: ReassignmentRequest


@strawberry.type
class ReviewPayload:
    authz_exempt: ClassVar[bool] = True

    request: ReassignmentRequest
    handover: Handover | None


def _equal(stmt: Select[Any], *given: tuple[Any, object]) -> Select[Any]:
    """``stmt`` narrowed to ``column == value`` for each filter value given (not None)."""
    for column, value in given:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


async def _in_scope(info: Info, stmt: Select[Any], customer_column: Any) -> Select[Any]:
    scope = await context_of(info).scope()
    if scope.clause() is None:
        return stmt
    visible = customer_service.customers_query(customer_service.CustomerFilter(), scope)
    return stmt.where(customer_column.in_(visible.with_only_columns(domain.Customer.id)))


@strawberry.type(description="A handover workflow event from the outbox, oldest first.")
class WorkflowEvent(Node):
    kind: str | None = strawberry.field(
        description="HANDOVER_OPENED, STEP_DONE, DUE_SOON, OVERDUE, COMPLETED or CANCELLED."
    )
    at: datetime | None
    handover_id: strawberry.ID | None
    customer_id: strawberry.ID | None
    payload: JSON | None = strawberry.field(
        description="status, and per kind: step, dueAt (deadlines), trigger (opened)."
    )

    @strawberry.field(description="The customer, read under your own field rules.")
    async def customer(self, info: Info) -> Customer | None:
        return await customer_in_scope(info, str(self.customer_id))

    @classmethod
    def from_model(cls, m: domain.WorkflowEventRecord) -> WorkflowEvent:
        return cls(
            id=strawberry.ID(f"{PREFIXES['WorkflowEvent']}_{m.id}"),
            kind=m.kind,
            at=m.at,
            handover_id=strawberry.ID(m.handover_id),
            customer_id=strawberry.ID(m.customer_id),
            payload=cast(JSON, m.payload),
        )


@strawberry.input
class WorkflowEventFilter:
    kind: str | None = None
    handover_id: strawberry.ID | None = None
    customer_id: strawberry.ID | None = None

    authz_entity: ClassVar[str] = "WorkflowEvent"

    def authz_read_fields(self) -> set[str]:
        given = {"kind": self.kind, "handoverId": self.handover_id, "customerId": self.customer_id}
        return {name for name, value in given.items() if value is not None}


async def events_in_scope(info: Info, f: WorkflowEventFilter) -> Select[Any]:
    """Outbox events matching ``f`` of customers in the viewer's scope (the query and the
    subscription read events through this one statement)."""
    model = domain.WorkflowEventRecord
    stmt = _equal(
        select(model),
        (model.kind, f.kind),
        (model.handover_id, f.handover_id),
        (model.customer_id, f.customer_id),
    )
    return await _in_scope(info, stmt, model.customer_id)


@strawberry.type
class HandoverQuery:
    @strawberry.field(description="Reassignment requests in your scope, newest first.")
    async def reassignment_requests(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: ReassignmentRequestFilter | None = None,
    ) -> Connection[ReassignmentRequest] | None:
        f = filter or ReassignmentRequestFilter()
        model = domain.ReassignmentRequest
        stmt = _equal(
            select(model),
            (model.status, f.status),
            (model.customer_id, f.customer_id),
            (model.trigger, f.trigger),
        )
        stmt = await _in_scope(info, stmt, model.customer_id)
        key = SortKey(model.created_at, model.id, descending=True)
        return await connection(
            info, stmt, key, first, after, ReassignmentRequest.from_model, datetime
        )

    @strawberry.field(description="Handovers in your scope, most urgent deadline first.")
    async def handovers(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: HandoverFilter | None = None,
    ) -> Connection[Handover] | None:
        ctx = context_of(info)
        f = filter or HandoverFilter()
        now = ctx.services.clock.now()
        calendar = ctx.services.handover.calendar
        model = domain.Handover
        stmt = select(model)
        if f.status is not None:
            stmt = stmt.where(model.status == f.status)
        if f.customer_id is not None:
            stmt = stmt.where(model.customer_id == f.customer_id)
        if f.overdue is not None:
            late = model.status.not_in(FINAL) & (model.due_at < now)
            stmt = stmt.where(late if f.overdue else ~late)
        stmt = await _in_scope(info, stmt, model.customer_id)
        key = SortKey(model.due_at, model.id)
        return await connection(
            info, stmt, key, first, after, lambda m: Handover.from_model(m, now, calendar), datetime
        )

    @strawberry.field(
        description="Workflow events of customers in your scope in delivery order, for "
        "integrations: page with `after` from the last cursor you saw."
    )
    async def workflow_events(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: WorkflowEventFilter | None = None,
    ) -> Connection[WorkflowEvent] | None:
        stmt = await events_in_scope(info, filter or WorkflowEventFilter())
        key = SortKey(domain.WorkflowEventRecord.id, domain.WorkflowEventRecord.id)
        return await connection(info, stmt, key, first, after, WorkflowEvent.from_model, int)


@strawberry.type
class HandoverMutation:
    @strawberry.mutation(description="Ask for a customer to move to another owner.")
    async def request_reassignment(
        self, info: Info, input: RequestReassignmentInput
    ) -> RequestPayload | None:
        ctx = context_of(info)
        request = await ctx.services.reassignment.request(
            ctx.actor,
            input.customer_id,
            input.to_owner_id,
            input.trigger,
            input.reason,
            scope=await ctx.scope(),
        )
        return RequestPayload(request=ReassignmentRequest.from_model(request))

    @strawberry.mutation(description="Approve (opening the handover) or reject a request.")
    async def review_reassignment(
        self, info: Info, input: ReviewReassignmentInput
    ) -> ReviewPayload | None:
        ctx = context_of(info)
        request, handover = await ctx.services.reassignment.review(
            ctx.actor,
            input.request_id,
            input.decision is ReviewDecision.APPROVE,
            input.comment,
            scope=await ctx.scope(),
            to_owner_id=input.to_owner_id,
        )
        return ReviewPayload(
            request=ReassignmentRequest.from_model(request),
            handover=_handover(info, handover) if handover else None,
        )


def _handover(info: Info, m: domain.Handover) -> Handover:
    services = context_of(info).services
    return Handover.from_model(m, services.clock.now(), services.handover.calendar)


@strawberry.input
class HandoverStepInput:
    handover_id: strawberry.ID
    expected_version: int


@strawberry.input
class SubmitHandbookInput(HandoverStepInput):
    profile_summary: str
    open_items: str
    strategy_advice: str
    risk_warnings: str


@strawberry.input
class ReviewHandbookInput(HandoverStepInput):
    decision: ReviewDecision
    comment: str | None = strawberry.field(default=None, description="Required to send back.")


@strawberry.input
class RecordHandoverMeetingInput(HandoverStepInput):
    kind: MeetingKind
    held_at: datetime
    notes: str | None = None


@strawberry.input
class SubmitHandoverFeedbackInput(HandoverStepInput):
    clear_items: str
    pending_items: str
    help_needed: str


@strawberry.input
class RecordSatisfactionInput(HandoverStepInput):
    score: int = strawberry.field(description="1 (poor) to 5 (excellent).")


@strawberry.input
class CancelHandoverInput(HandoverStepInput):
    reason: str | None = None


@strawberry.type
class HandoverPayload:
    authz_exempt: ClassVar[bool] = True

    handover: Handover


@strawberry.type
class HandoverStepMutation:
    @strawberry.mutation(description="The outgoing owner submits the handbook (all sections).")
    async def submit_handbook(
        self, info: Info, input: SubmitHandbookInput
    ) -> HandoverPayload | None:
        ctx = context_of(info)
        sections = {
            "profileSummary": input.profile_summary,
            "openItems": input.open_items,
            "strategyAdvice": input.strategy_advice,
            "riskWarnings": input.risk_warnings,
        }
        h = await ctx.services.handover.submit_handbook(
            ctx.actor, input.handover_id, input.expected_version, sections, await ctx.scope()
        )
        return HandoverPayload(handover=_handover(info, h))

    @strawberry.mutation(description="The outgoing owner's manager approves or sends it back.")
    async def review_handbook(
        self, info: Info, input: ReviewHandbookInput
    ) -> HandoverPayload | None:
        ctx = context_of(info)
        h = await ctx.services.handover.review_handbook(
            ctx.actor,
            input.handover_id,
            input.expected_version,
            input.decision is ReviewDecision.APPROVE,
            input.comment,
            await ctx.scope(),
        )
        return HandoverPayload(handover=_handover(info, h))

    @strawberry.mutation(description="Record a briefing, simulation or three-party meeting.")
    async def record_handover_meeting(
        self, info: Info, input: RecordHandoverMeetingInput
    ) -> HandoverPayload | None:
        ctx = context_of(info)
        h = await ctx.services.handover.record_meeting(
            ctx.actor,
            input.handover_id,
            input.expected_version,
            input.kind,
            input.held_at,
            input.notes,
            await ctx.scope(),
        )
        return HandoverPayload(handover=_handover(info, h))

    @strawberry.mutation(description="The customer has been told who will look after them.")
    async def notify_customer(self, info: Info, input: HandoverStepInput) -> HandoverPayload | None:
        ctx = context_of(info)
        h = await ctx.services.handover.notify_customer(
            ctx.actor, input.handover_id, input.expected_version, await ctx.scope()
        )
        return HandoverPayload(handover=_handover(info, h))

    @strawberry.mutation(description="Switch ownership to the new owner, once its conditions hold.")
    async def complete_handover(
        self, info: Info, input: HandoverStepInput
    ) -> HandoverPayload | None:
        ctx = context_of(info)
        h = await ctx.services.handover.complete(
            ctx.actor, input.handover_id, input.expected_version, await ctx.scope()
        )
        return HandoverPayload(handover=_handover(info, h))

    @strawberry.mutation(description="The new owner's feedback after taking over.")
    async def submit_handover_feedback(
        self, info: Info, input: SubmitHandoverFeedbackInput
    ) -> HandoverPayload | None:
        ctx = context_of(info)
        sections = {
            "clearItems": input.clear_items,
            "pendingItems": input.pending_items,
            "helpNeeded": input.help_needed,
        }
        h = await ctx.services.handover.submit_feedback(
            ctx.actor, input.handover_id, input.expected_version, sections, await ctx.scope()
        )
        return HandoverPayload(handover=_handover(info, h))

    @strawberry.mutation(description="The customer's satisfaction with the handover (closes it).")
    async def record_satisfaction(
        self, info: Info, input: RecordSatisfactionInput
    ) -> HandoverPayload | None:
        ctx = context_of(info)
        h = await ctx.services.handover.record_satisfaction(
            ctx.actor, input.handover_id, input.expected_version, input.score, await ctx.scope()
        )
        return HandoverPayload(handover=_handover(info, h))

    @strawberry.mutation(description="Stop a handover before it completes.")
    async def cancel_handover(
        self, info: Info, input: CancelHandoverInput
    ) -> HandoverPayload | None:
        ctx = context_of(info)
        h = await ctx.services.handover.cancel(
            ctx.actor, input.handover_id, input.expected_version, input.reason, await ctx.scope()
        )
        return HandoverPayload(handover=_handover(info, h))
