"""Reassignment requests and their review; an approval opens the handover."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnExpressionArgument, ScalarSelect, Select, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.calendar import WorkingCalendar
from core.clock import Clock
from core.db import Database
from core.domain import (
    AssignedBy,
    Customer,
    Handover,
    HandoverStatus,
    Ownership,
    ReassignmentRequest,
    ReassignmentTrigger,
    RequestStatus,
    User,
    ValueTier,
)
from core.errors import BadUserInput, Conflict, Forbidden, InvalidState, NotFound
from core.ids import new_id
from core.services.audit import Actor, AuditWriter, audit_value, diff, to_camel
from core.services.customers import (
    EVERYTHING,
    CustomerFilter,
    CustomerScope,
    customers_query,
    load_customer,
)
from core.services.events import HANDOVER_OPENED, Outbox
from core.services.ownership import check_eligible_owner
from core.services.parties import actor_roles

HANDBOOK_WORKING_DAYS = 3
SENSITIVE_TIERS = (ValueTier.STRATEGIC, ValueTier.HIGH)


def snapshot(obj: ReassignmentRequest | Handover, fields: tuple[str, ...]) -> dict[str, object]:
    """An entity's fields keyed by GraphQL name (``to_owner_id`` → ``toOwner``), for audit."""
    return {to_camel(f.removesuffix("_id")): audit_value(getattr(obj, f)) for f in fields}


REQUEST_FIELDS = (
    "customer_id",
    "from_owner_id",
    "to_owner_id",
    "trigger",
    "status",
    "reviewed_by_id",
    "review_comment",
)
HANDOVER_FIELDS = ("customer_id", "from_owner_id", "to_owner_id", "trigger", "status", "due_at")


def manager_of(owner_id: ColumnExpressionArgument[str | None]) -> ScalarSelect[str | None]:
    """The manager of the user ``owner_id`` names (a column of the enclosing statement): the
    outgoing owner's manager reviews, so it is read with the request or handover, as a
    correlated primary-key lookup rather than a statement of its own."""
    return select(User.manager_id).where(User.id == owner_id).scalar_subquery()


def request_by_id(
    request_id: str, scope: CustomerScope
) -> Select[Customer, ReassignmentRequest, str | None]:
    """The request's customer (with its active ownership) if in scope, the request, and its
    outgoing owner's manager (who reviews it): one statement, by keys."""
    return (
        customers_query(CustomerFilter(), scope)
        .add_columns(ReassignmentRequest, manager_of(ReassignmentRequest.from_owner_id))
        .join(ReassignmentRequest, ReassignmentRequest.customer_id == Customer.id)
        .where(ReassignmentRequest.id == request_id)
        .execution_options(populate_existing=True)
    )


async def load_request_for_review(
    session: AsyncSession, request_id: str, scope: CustomerScope, *, lock: bool = False
) -> tuple[ReassignmentRequest, str | None, Customer]:
    """The request with its outgoing owner's manager and its customer (with the active
    ownership), in one statement, if the customer is in scope: else NOT_FOUND, like a missing
    one (FORBIDDEN for a customer the viewer only reads, under a scope for writing, as
    ``load_customer`` says). ``lock``: the request row, on PostgreSQL."""
    stmt = request_by_id(request_id, scope)
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=ReassignmentRequest)
    row = (await session.execute(stmt)).unique().first()
    if row is not None:
        customer, request, manager = row
        return request, manager, customer
    # Absent, out of scope, or only readable: the answer depends on which (reads on errors only).
    found = await session.get(ReassignmentRequest, request_id)
    if found is None:
        raise NotFound("ReassignmentRequest", request_id)
    try:
        await load_customer(session, found.customer_id, scope)
    except NotFound:
        raise NotFound("ReassignmentRequest", request_id) from None
    raise Conflict(f"Request {request_id!r} changed meanwhile; retry")


async def load_request(
    session: AsyncSession, request_id: str, scope: CustomerScope, *, lock: bool = False
) -> ReassignmentRequest:
    """The request, if its customer is in scope (else NOT_FOUND, like a missing one)."""
    return (await load_request_for_review(session, request_id, scope, lock=lock))[0]


def handover_by_id(handover_id: str, scope: CustomerScope) -> Select[Handover, str | None]:
    """The handover, if the scope sees it (``CustomerScope.handovers`` checked for this row
    only), with its outgoing owner's manager (who reviews it): one statement."""
    stmt = select(Handover, manager_of(Handover.from_owner_id)).where(Handover.id == handover_id)
    if (visible := scope.handovers(by_id=True)) is not None:
        stmt = stmt.where(visible)
    return stmt.execution_options(populate_existing=True)


async def load_handover_with_manager(
    session: AsyncSession, handover_id: str, scope: CustomerScope
) -> tuple[Handover, str | None]:
    """The handover and its outgoing owner's manager, if the scope sees it: its customer is
    in scope, or the viewer takes part in it. Else NOT_FOUND, like a missing one."""
    row = (await session.execute(handover_by_id(handover_id, scope))).first()
    if row is None:
        raise NotFound("Handover", handover_id)
    handover, manager = row
    return handover, manager


async def load_handover(session: AsyncSession, handover_id: str, scope: CustomerScope) -> Handover:
    """The handover, if the scope sees it (``load_handover_with_manager``); else NOT_FOUND."""
    return (await load_handover_with_manager(session, handover_id, scope))[0]


async def open_requests(
    session: AsyncSession,
    actor: Actor,
    customers: Sequence[Customer],
    to_owner_id: str,
    trigger: ReassignmentTrigger,
    reason: str | None,
    now: datetime,
) -> list[ReassignmentRequest]:
    """Inside the caller's transaction: a pending request for each owned customer (loaded
    with its ownership and locked) to move to ``to_owner_id`` (checked eligible); one open
    request per customer, audited. Set-based: one query for open requests and one INSERT
    however many customers; the first customer that cannot have a request refuses them all."""
    owners: list[str] = []
    for customer in customers:
        current = customer.active_ownership
        if current is None:
            raise InvalidState(
                f"Customer {customer.id!r} has no owner; use assignOwner", state="UNOWNED"
            )
        if current.owner_id == to_owner_id:
            raise BadUserInput.one("toOwnerId", "is already the owner")
        owners.append(current.owner_id)
    await check_eligible_owner(session, to_owner_id, "toOwnerId")
    pending = dict(
        (
            await session.execute(
                select(ReassignmentRequest.customer_id, ReassignmentRequest.id).where(
                    ReassignmentRequest.customer_id.in_([c.id for c in customers]),
                    ReassignmentRequest.status == RequestStatus.PENDING,
                )
            )
        ).all()
    )
    for customer in customers:
        if (open_id := pending.get(customer.id)) is not None:
            raise InvalidState(
                f"Customer {customer.id!r} has an open request {open_id!r}",
                state="REQUEST_PENDING",
            )
    requests = [
        ReassignmentRequest(
            id=new_id("ReassignmentRequest"),
            customer_id=customer.id,
            from_owner_id=owner_id,
            to_owner_id=to_owner_id,
            trigger=trigger,
            reason=reason,
            status=RequestStatus.PENDING,
            requested_by_id=actor.user_id,
            created_at=now,
        )
        for customer, owner_id in zip(customers, owners, strict=True)
    ]
    await add_requests(session, actor, requests, now, reason)
    return requests


async def add_requests(
    session: AsyncSession,
    actor: Actor,
    requests: Sequence[ReassignmentRequest],
    now: datetime,
    reason: str | None,
) -> None:
    """Insert new ``requests`` (one flush for all) and audit each."""
    session.add_all(requests)
    await session.flush()
    audit = AuditWriter(session, actor, now)
    for request in requests:
        audit.record(
            "requestReassignment",
            "ReassignmentRequest",
            request.id,
            diff({}, snapshot(request, REQUEST_FIELDS)),
            reason,
        )


class ReassignmentService:
    """Who should own a customer next, and who may decide it."""

    def __init__(
        self, db: Database, clock: Clock, calendar: WorkingCalendar, outbox: Outbox
    ) -> None:
        self.db = db
        self.clock = clock
        self.calendar = calendar
        self.outbox = outbox

    async def request(
        self,
        actor: Actor,
        customer_id: str,
        to_owner_id: str,
        trigger: ReassignmentTrigger,
        reason: str | None,
        scope: CustomerScope = EVERYTHING,
    ) -> ReassignmentRequest:
        """Ask for an owned customer to move to ``to_owner_id``; one open request per customer."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            (request,) = await open_requests(
                session, actor, [customer], to_owner_id, trigger, reason, now
            )
            return request

    async def review(
        self,
        actor: Actor,
        request_id: str,
        approve: bool,
        comment: str | None,
        scope: CustomerScope = EVERYTHING,
        to_owner_id: str | None = None,
    ) -> tuple[ReassignmentRequest, Handover | None]:
        """Approve (opening the handover) or reject a pending request. A request that names no
        new owner (OWNER_LEFT) is approved with ``to_owner_id``.

        STRATEGIC and HIGH customers need a sales director; others the current owner's manager
        (a sales director or an admin may always decide).
        """
        now = self.clock.now()
        async with self.db.transaction() as session:
            request, manager, customer = await load_request_for_review(
                session, request_id, scope, lock=True
            )
            if request.status != RequestStatus.PENDING:
                raise InvalidState(
                    f"Request {request_id!r} is {request.status}", state=request.status.value
                )
            if not approve and not (comment or "").strip():
                raise BadUserInput.one("comment", "a rejection needs a reason")
            if approve and (to_owner_id or request.to_owner_id) is None:
                raise BadUserInput.one("toOwnerId", "the request names no new owner: choose one")
            await self._check_reviewer(session, actor, manager, customer.value_tier)
            before = snapshot(request, REQUEST_FIELDS)
            if approve and to_owner_id is not None:
                await check_eligible_owner(session, to_owner_id, "toOwnerId")
                request.to_owner_id = to_owner_id
            request.status = RequestStatus.APPROVED if approve else RequestStatus.REJECTED
            request.reviewed_by_id = actor.user_id
            request.review_comment = comment
            request.decided_at = now
            audit = AuditWriter(session, actor, now)
            audit.record(
                "reviewReassignment",
                "ReassignmentRequest",
                request.id,
                diff(before, snapshot(request, REQUEST_FIELDS)),
                comment,
            )
            handover = None
            if approve:
                current = customer.active_ownership  # an interim owner hands over, if any
                handover = Handover(
                    id=new_id("Handover"),
                    version=1,
                    customer_id=request.customer_id,
                    request_id=request.id,
                    from_owner_id=current.owner_id if current else None,
                    to_owner_id=request.to_owner_id,
                    trigger=request.trigger,
                    status=HandoverStatus.HANDBOOK_PENDING,
                    opened_at=now,
                    updated_at=now,
                    due_at=self.calendar.add_working_days(now, HANDBOOK_WORKING_DAYS),
                )
                session.add(handover)
                await session.flush()
                audit.record(
                    "openHandover",
                    "Handover",
                    handover.id,
                    diff({}, snapshot(handover, HANDOVER_FIELDS)),
                    comment,
                )
                self.outbox.add(
                    session, HANDOVER_OPENED, handover, now, {"trigger": request.trigger.value}
                )
            return request, handover

    @staticmethod
    async def _check_reviewer(
        session: AsyncSession, actor: Actor, manager: str | None, tier: ValueTier | None
    ) -> None:
        """``manager``: the outgoing owner's manager, read with the request."""
        roles = await actor_roles(session, actor)
        if actor.user_id is None or roles & {"admin", "sales_director"}:
            return
        if tier in SENSITIVE_TIERS:
            raise Forbidden(f"a {tier} customer's reassignment needs a sales director")
        if manager != actor.user_id:
            raise Forbidden("only the current owner's manager may review this request")


@dataclass(frozen=True)
class Release:
    """What a user's deactivation does to one customer they own: its interim owner (their
    active backup, or None: it stays unowned) and whether it opens an OWNER_LEFT request
    (not when one is already pending)."""

    customer_id: str
    ownership_id: int
    interim_owner_id: str | None
    opens_request: bool


async def plan_release(session: AsyncSession, user_id: str) -> list[Release]:
    """What ``release_book`` would do for ``user_id``, read without writing anything."""
    rows = (
        await session.execute(
            select(Ownership.id, Ownership.customer_id, Customer.backup_owner_id)
            .join(Customer, Customer.id == Ownership.customer_id)
            .where(Ownership.owner_id == user_id, Ownership.valid_to.is_(None))
            .order_by(Ownership.customer_id)
        )
    ).all()
    if not rows:
        return []
    backups = {r.backup_owner_id for r in rows if r.backup_owner_id not in (None, user_id)}
    active = set(await session.scalars(select(User.id).where(User.id.in_(backups), User.active)))
    pending = set(
        await session.scalars(
            select(ReassignmentRequest.customer_id).where(
                ReassignmentRequest.customer_id.in_([r.customer_id for r in rows]),
                ReassignmentRequest.status == RequestStatus.PENDING,
            )
        )
    )
    return [
        Release(
            r.customer_id,
            r.id,
            r.backup_owner_id if r.backup_owner_id in active else None,
            r.customer_id not in pending,
        )
        for r in rows
    ]


async def release_book(
    session: AsyncSession,
    actor: Actor,
    user_id: str,
    plan: list[Release],
    now: datetime,
    reason: str | None,
) -> list[ReassignmentRequest]:
    """Inside a user's deactivation, carry out ``plan_release``'s ``plan``: every customer the
    user owns passes at once to its backup as INTERIM owner (or stays unowned when it has no
    active backup), and gets an OWNER_LEFT request for its next owner. Set-based: a constant
    number of statements for any book."""
    if not plan:
        return []
    interim = {r.customer_id: r.interim_owner_id for r in plan if r.interim_owner_id}
    customer_ids = [r.customer_id for r in plan]
    await session.execute(
        update(Ownership)
        .where(Ownership.id.in_([r.ownership_id for r in plan]))
        .values(valid_to=now)
        .execution_options(synchronize_session=False)
    )
    if interim:
        await session.execute(
            insert(Ownership),
            [
                {
                    "customer_id": cid,
                    "owner_id": backup,
                    "assigned_by": AssignedBy.INTERIM,
                    "reason": f"interim: {user_id} left",
                    "actor_id": actor.user_id,
                    "valid_from": now,
                }
                for cid, backup in interim.items()
            ],
        )
    await session.execute(
        update(Customer)
        .where(Customer.id.in_(customer_ids))
        .values(version=Customer.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    requests = [
        ReassignmentRequest(
            id=new_id("ReassignmentRequest"),
            customer_id=cid,
            from_owner_id=user_id,
            to_owner_id=None,
            trigger=ReassignmentTrigger.OWNER_LEFT,
            reason=reason,
            status=RequestStatus.PENDING,
            requested_by_id=actor.user_id,
            created_at=now,
        )
        for cid in (r.customer_id for r in plan if r.opens_request)
    ]
    audit = AuditWriter(session, actor, now)
    for cid in customer_ids:
        audit.record(
            "deactivateUser",
            "Customer",
            cid,
            [{"field": "owner", "before": user_id, "after": interim.get(cid)}],
            reason,
        )
    await add_requests(session, actor, requests, now, reason)
    return requests
