"""Reassignment requests and handovers over GraphQL."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, cast

import strawberry
from sqlalchemy import Select, and_, or_, select
from strawberry.scalars import JSON
from strawberry.types import Info

from core import domain
from core.api.assignment import ReassignmentRequest
from core.api.connection import Connection, connection
from core.api.context import context_of
from core.api.types import Customer, Node, User, customer_in_scope, user_or_none
from core.calendar import WorkingCalendar
from core.domain.enums import HandoverStatus, MeetingKind, ReassignmentTrigger, RequestStatus
from core.errors import NotFound
from core.ids import PREFIXES
from core.notify.risk import readable_payload, visible_events
from core.services import customers as customer_service
from core.services.handover import FINAL, deadlines
from core.services.pagination import DEFAULT_PAGE_SIZE, SortKey

if TYPE_CHECKING:
    from core.api.hierarchy import TeamMember

strawberry.enum(HandoverStatus, description="Where a handover stands; CLOSED and CANCELLED end it.")
strawberry.enum(MeetingKind, description="Kinds of handover meeting.")


@strawberry.type(description="What the outgoing owner hands over.")
class Handbook:
    authz_exempt: ClassVar[bool] = True  # authorised by ``Handover.handbook``

    profile_summary: str
    open_items: str = strawberry.field(description="Pending contracts, complaints in progress.")
    strategy_advice: str
    risk_warnings: str
    customer_id: strawberry.Private[str]

    @strawberry.field(
        description="The account team the new owner works with (it stays through the "
        "handover); as readable as `Customer.team`.",
        metadata={"authz": "Customer.team"},
    )
    async def team(
        self, info: Info
    ) -> list[Annotated[TeamMember, strawberry.lazy("core.api.hierarchy")]] | None:
        from core.api.hierarchy import TeamMember

        found = await context_of(info).teams.load(self.customer_id)
        return [TeamMember.from_model(m) for m in found]


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
                customer_id=m.customer_id,
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
    """``stmt`` narrowed to rows whose customer the viewer reads."""
    scope = await context_of(info).read_scope()
    if scope.clause() is None:
        return stmt
    visible = customer_service.customers_query(customer_service.CustomerFilter(), scope)
    return stmt.where(customer_column.in_(visible.with_only_columns(domain.Customer.id)))


@strawberry.type(description="A handover workflow event from the outbox, oldest first.")
class WorkflowEvent(Node):
    kind: str | None = strawberry.field(
        description="HANDOVER_OPENED, STEP_DONE, DUE_SOON, OVERDUE, COMPLETED, CANCELLED; "
        "without a handover: TEAM_MEMBER_REMOVED (a deactivated user left the customer's "
        "team), RISK_WARNING_RAISED and RISK_WARNING_CLEARED (the health sweep; shown only "
        "to viewers who may read the warning)."
    )
    at: datetime | None
    handover_id: strawberry.ID | None
    customer_id: strawberry.ID | None
    raw_payload: strawberry.Private[dict[str, Any]]

    @strawberry.field(
        description="status, and per kind: step, dueAt (deadlines), trigger (opened); for a "
        "risk warning its fields, each only if you may read it where it lives."
    )
    def payload(self, info: Info) -> JSON | None:
        found = readable_payload(context_of(info).permissions, str(self.kind), self.raw_payload)
        return cast(JSON, found)

    @strawberry.field(description="The customer, read under your own field rules.")
    async def customer(self, info: Info) -> Customer | None:
        return await customer_in_scope(info, str(self.customer_id))

    @classmethod
    def from_model(cls, m: domain.WorkflowEventRecord) -> WorkflowEvent:
        return cls(
            id=strawberry.ID(f"{PREFIXES['WorkflowEvent']}_{m.id}"),
            kind=m.kind,
            at=m.at,
            handover_id=strawberry.ID(m.handover_id) if m.handover_id else None,
            customer_id=strawberry.ID(m.customer_id),
            raw_payload=m.payload,
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
    """Outbox events matching ``f`` the viewer sees: those of handovers they see, and an event
    of no handover (a team change, a risk warning) with its customer, a risk warning only if
    they may read it (the query and the subscriptions read events through this statement)."""
    model = domain.WorkflowEventRecord
    stmt = _equal(
        select(model),
        (model.kind, f.kind),
        (model.handover_id, f.handover_id),
        (model.customer_id, f.customer_id),
    )
    ctx = context_of(info)
    # Risk warnings (the health sweep's) only where the viewer may read the warning.
    stmt = stmt.where(visible_events(ctx.permissions, ctx.services.plugins))
    visible = (await ctx.scope()).handovers()
    if visible is None:
        return stmt
    readable = customer_service.customers_query(
        customer_service.CustomerFilter(), await ctx.read_scope()
    ).with_only_columns(domain.Customer.id)
    return stmt.where(
        or_(
            model.handover_id.in_(select(domain.Handover.id).where(visible)),
            and_(model.handover_id.is_(None), model.customer_id.in_(readable)),
        )
    )


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

    @strawberry.field(
        description="Handovers of customers in your scope and those you take part in (outgoing "
        "owner, incoming owner, reviewer), most urgent deadline first."
    )
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
        if (visible := (await ctx.scope()).handovers()) is not None:
            stmt = stmt.where(visible)
        key = SortKey(model.due_at, model.id)
        return await connection(
            info, stmt, key, first, after, lambda m: Handover.from_model(m, now, calendar), datetime
        )

    @strawberry.field(
        description="Workflow events of the handovers you see in delivery order, for "
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
            handover=handover_of(info, handover) if handover else None,
        )


def handover_of(info: Info, m: domain.Handover) -> Handover:
    """The GraphQL handover of a loaded model, at the request's time."""
    services = context_of(info).services
    return Handover.from_model(m, services.clock.now(), services.handover.calendar)


async def opened_by(info: Info, request_id: str) -> Handover | None:
    """The handover an approved request opened, through the request's dataloader: NOT_FOUND
    when the viewer does not see it (``CustomerScope.handovers``), like any handover read."""
    found = await context_of(info).handover_of_request.load(request_id)
    if found is None:
        return None
    model, visible = found
    if not visible:
        raise NotFound("Handover", model.id)
    return handover_of(info, model)
