"""Group use cases: moving a unit (the seed's REORGANIZATION trigger) and naming a group's
account director. Each is one transaction with its audit entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.domain import Customer
from core.errors import BadUserInput, Conflict, FieldError
from core.services import hierarchy
from core.services.audit import Actor, AuditWriter
from core.services.customers import EVERYTHING, CustomerScope, check_users_active, load_customer

# Applies the live rules to customers after a reorganisation, opening REORGANIZATION
# requests where the outcome differs: (session, actor, customer ids, now).
Reorganize = Callable[[AsyncSession, Actor, Sequence[str], datetime], Awaitable[Any]]


def _check_version(customer: Customer, expected_version: int) -> None:
    if customer.version != expected_version:
        raise Conflict(
            f"Customer {customer.id!r} is at version {customer.version}, "
            f"not {expected_version}; reload and retry",
            currentVersion=customer.version,
        )


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
            _check_version(customer, expected_version)
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
