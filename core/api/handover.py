"""Reassignment requests and handovers over GraphQL."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

import strawberry
from sqlalchemy import Select, select
from strawberry.types import Info

from core import domain
from core.api.assignment import ReassignmentRequest
from core.api.connection import Connection, connection
from core.api.context import context_of
from core.api.types import Customer, Node, User, user_or_none
from core.domain.enums import HandoverStatus, ReassignmentTrigger, RequestStatus
from core.services import customers as customer_service
from core.services.pagination import DEFAULT_PAGE_SIZE, SortKey

strawberry.enum(HandoverStatus, description="Where a handover stands; CLOSED and CANCELLED end it.")
FINAL = (HandoverStatus.CLOSED, HandoverStatus.CANCELLED)


@strawberry.type(description="Ownership moving to a new owner through tracked, dated steps.")
class Handover(Node):
    version: int
    trigger: ReassignmentTrigger | None
    status: HandoverStatus | None
    due_at: datetime | None = strawberry.field(description="Deadline of the step now pending.")
    opened_at: datetime | None
    overdue: bool | None = strawberry.field(description="The pending step is past its deadline.")
    customer_id: strawberry.Private[str]
    from_owner_id: strawberry.Private[str | None]
    to_owner_id: strawberry.Private[str]

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        ctx = context_of(info)
        scope = await ctx.scope()
        return Customer.from_model(
            await ctx.read(lambda s: customer_service.load_customer(s, self.customer_id, scope))
        )

    @strawberry.field
    async def from_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.from_owner_id)

    @strawberry.field
    async def to_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.to_owner_id)

    @classmethod
    def from_model(cls, m: domain.Handover, now: datetime) -> Handover:
        return cls(
            id=strawberry.ID(m.id),
            version=m.version,
            trigger=m.trigger,
            status=m.status,
            due_at=m.due_at,
            opened_at=m.opened_at,
            overdue=m.status not in FINAL and m.due_at is not None and m.due_at < now,
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


async def _in_scope(info: Info, stmt: Select[Any], customer_column: Any) -> Select[Any]:
    scope = await context_of(info).scope()
    if scope.clause() is None:
        return stmt
    visible = customer_service.customers_query(customer_service.CustomerFilter(), scope)
    return stmt.where(customer_column.in_(visible.with_only_columns(domain.Customer.id)))


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
        stmt = select(model)
        for column, value in (
            (model.status, f.status),
            (model.customer_id, f.customer_id),
            (model.trigger, f.trigger),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
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
            info, stmt, key, first, after, lambda m: Handover.from_model(m, now), datetime
        )


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
        )
        now = ctx.services.clock.now()
        return ReviewPayload(
            request=ReassignmentRequest.from_model(request),
            handover=Handover.from_model(handover, now) if handover else None,
        )
