"""Group use cases: moving a unit (the seed's REORGANIZATION trigger), naming a group's
account director, and reassigning a group with the units that share its owner. Each is one
transaction with its audit entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.domain import (
    Customer,
    ReassignmentRequest,
    ReassignmentTrigger,
    RequestStatus,
)
from core.errors import BadUserInput, Conflict, FieldError
from core.services import hierarchy
from core.services.audit import Actor, AuditWriter
from core.services.customers import (
    EVERYTHING,
    CustomerFilter,
    CustomerScope,
    check_users_active,
    check_version,
    customers_query,
    load_customer,
)
from core.services.reassignment import open_requests

# Applies the live rules to customers after a reorganisation, opening REORGANIZATION
# requests where the outcome differs: (session, actor, customer ids, now).
Reorganize = Callable[[AsyncSession, Actor, Sequence[str], datetime], Awaitable[Any]]


async def cascading_units(
    session: AsyncSession, customer: Customer, scope: CustomerScope, *, lock: bool = False
) -> list[Customer]:
    """The units below ``customer`` that share its owner, that ``scope`` reaches and that
    have no open request: those a group reassignment moves along (one statement), by path."""
    active = customer.active_ownership
    if active is None:
        return []
    pending = select(ReassignmentRequest.customer_id).where(
        ReassignmentRequest.status == RequestStatus.PENDING
    )
    stmt = (
        customers_query(CustomerFilter(owner_id=active.owner_id), scope)
        .where(
            and_(
                Customer.root_id == customer.root_id,
                hierarchy.within(Customer.path, customer.path),
                Customer.id != customer.id,
                Customer.id.not_in(pending),
            )
        )
        .order_by(Customer.path)
    )
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Customer)
    return list((await session.scalars(stmt)).unique())


class GroupService:
    """Writes to the account hierarchy."""

    def __init__(self, db: Database, clock: Clock, reorganize: Reorganize) -> None:
        self.db = db
        self.clock = clock
        self.reorganize = reorganize

    async def move(
        self,
        actor: Actor,
        customer_id: str,
        expected_version: int,
        parent_id: str | None,
        *,
        reason: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Put a customer (and its units) under ``parent_id``, or make it top-level (None).

        The customer must be in the writer's ``scope``, the parent in its reading scope. The
        move is audited and, as a reorganisation, re-applies the live rules to the moved
        accounts: unowned ones are assigned, owned ones whose outcome differs get a
        REORGANIZATION request.
        """
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            check_version(customer, expected_version)
            before = customer.parent_id
            if before == parent_id:
                return customer
            await hierarchy.place(session, customer, parent_id, scope.for_reading().clause())
            customer.updated_at = now
            await session.flush()
            AuditWriter(session, actor, now).record(
                "moveCustomer",
                "Customer",
                customer.id,
                [{"field": "parent", "before": before, "after": parent_id}],
                reason,
            )
            await self.reorganize(
                session, actor, await hierarchy.subtree_ids(session, customer), now
            )
            return await load_customer(session, customer.id)

    async def set_group_director(
        self,
        actor: Actor,
        customer_id: str,
        director_id: str | None,
        *,
        reason: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Name (or clear, with None) the group account director of a top-level account."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            if customer.parent_id is not None:
                raise BadUserInput(
                    [FieldError("customerId", "only a top-level account has a group director")]
                )
            await check_users_active(session, {"director_id": director_id})
            before = customer.group_director_id
            if before == director_id:
                return customer
            customer.group_director_id = director_id
            customer.updated_at = now
            await session.flush()
            AuditWriter(session, actor, now).record(
                "setGroupDirector",
                "Customer",
                customer.id,
                [{"field": "groupDirector", "before": before, "after": director_id}],
                reason,
            )
            return await load_customer(session, customer.id)

    async def reassign_group(
        self,
        actor: Actor,
        customer_id: str,
        to_owner_id: str,
        trigger: ReassignmentTrigger,
        reason: str | None,
        unit_ids: Sequence[str],
        *,
        scope: CustomerScope = EVERYTHING,
    ) -> list[ReassignmentRequest]:
        """Request the account's move to ``to_owner_id`` and, with it, the move of each unit
        that shares its owner: ``unit_ids`` must be exactly those the preview showed
        (``cascading_units``), else CONFLICT and nothing is written. Each unit gets its own
        request, reviewed and handed over under the rules of its own tier."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            units = await cascading_units(session, customer, scope, lock=True)
            if {u.id for u in units} != set(unit_ids):
                raise Conflict(
                    f"The units of {customer_id!r} that share its owner changed since the "
                    "preview; preview again",
                    currentUnitIds=[u.id for u in units],
                )
            # The group first, then its units by path: each one's own request, reviewed and
            # handed over under its own tier's rules.
            return await open_requests(
                session, actor, [customer, *units], to_owner_id, trigger, reason, now
            )
