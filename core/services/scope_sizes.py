"""How a customer list page writes the viewer's scope: walked in sort order, or scope first.

Walking its sort order's index, a page keeps the rows in scope until it has enough: it reads
about ``rows * total / in_scope`` customers. Written scope first (``CustomerScope.first``), it
reads the scope's ``in_scope`` customers by their indexes and sorts them. PostgreSQL cannot
switch between the two at run time (the scope spans two tables, and list statements run as
prepared generic plans), so the page chooses, from the scope's size: counted once, then
remembered per scope for a while in this process. A stale size costs speed, never rows: both
forms return the same ones.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.defaults import Scope
from core.domain import Customer
from core.lru import LRU
from core.services.customers import CustomerScope

T = TypeVar("T")
Read = Callable[[Callable[[AsyncSession], Awaitable[T]]], Awaitable[T]]

# What a customer read scope first costs against one the walk skips, per database: a branch's
# index lookup, the join back by key, the sort. Where the two forms' first pages (50 rows)
# cost the same, at 50,000 and 200,000 customers: ~750 and ~1,250 in scope on PostgreSQL,
# ~1,400 and ~2,600 on SQLite (benchmarks/README.md, "Scoped pages").
SCOPE_FIRST_COST = {"postgresql": 5.0, "sqlite": 1.5}
# How long a scope's size is trusted (seconds).
SIZE_TTL = 60.0


@dataclass(frozen=True)
class ScopeSize:
    """How many customers a scope reaches, of how many."""

    in_scope: int
    total: int

    def scope_first(self, rows: int, cost: float) -> bool:
        """Whether a page of ``rows`` costs less read scope first than walked."""
        return self.in_scope * cost < rows * self.total / max(self.in_scope, 1)


async def scope_size(
    session: AsyncSession, scope: CustomerScope, total: int | None = None
) -> ScopeSize:
    """Count the scope's customers (each branch through its index) and, unless ``total`` is
    known, all customers (a scan: shared by every scope, see ``ScopeSizes``)."""
    in_scope = select(func.count()).select_from(scope.ids().subquery()).scalar_subquery()
    if total is not None:
        return ScopeSize(int(await session.scalar(select(in_scope)) or 0), total)
    counted = select(func.count()).select_from(Customer).scalar_subquery()
    found = (await session.execute(select(in_scope, counted))).one()
    return ScopeSize(int(found[0]), int(found[1]))


class ScopeSizes:
    """Scope sizes remembered for ``ttl`` seconds, and the form they choose for a page.

    ``cost`` is the database's ``SCOPE_FIRST_COST``; 0 always walks (the form before
    scope-first pages).
    """

    def __init__(
        self, cost: float, ttl: float = SIZE_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.cost = cost
        self._clock = clock
        self._sizes: LRU[CustomerScope, tuple[float, ScopeSize]] = LRU(1024)
        self._total: tuple[float, int] | None = None  # when counted, and how many customers

    async def for_page(
        self, read: Read[ScopeSize], scope: CustomerScope, rows: int
    ) -> CustomerScope:
        """``scope`` as a page of ``rows`` reads it best: walked, or ``scope_first()``. Costs
        one statement when the scope's size is unknown or stale, none otherwise."""
        if scope.level == Scope.ALL or self.cost <= 0:
            return scope
        now = self._clock()
        found = self._sizes.get(scope)
        if found is None or now - found[0] > self.ttl:
            total = self._total[1] if self._total and now - self._total[0] <= self.ttl else None
            size = await read(lambda s: scope_size(s, scope, total))
            if total is None:
                self._total = (now, size.total)
            found = self._sizes.put(scope, (now, size))
        return scope.scope_first() if found[1].scope_first(rows, self.cost) else scope
