"""Per-request state: the viewer, one read session, dataloaders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import BindParameter, Select, bindparam, case, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from core.authz.defaults import Scope
from core.authz.roles import roles_of
from core.authz.view import PermissionView
from core.config import Settings
from core.domain import (
    AssignmentRule,
    Customer,
    Handover,
    HandoverMeeting,
    Ownership,
    Survey,
    TeamMember,
    User,
)
from core.errors import BadUserInput
from core.insight.health import Health
from core.insight.overrides import Override
from core.insight.service import Rfm
from core.plugins import camel
from core.services import Actor, Services, hierarchy
from core.services.customers import CustomerFilter, CustomerScope, customers_query
from core.services.ownership import active_account_counts
from core.services.pagination import Page, count_rows_by, fetch_pages
from core.services.teams import members_of
from core.services.users import reports_of

T = TypeVar("T")


class RequestContext:
    """Everything a resolver may use; created once per GraphQL request."""

    def __init__(
        self,
        services: Services,
        viewer: User,
        permissions: PermissionView,
        request_id: str,
        settings: Settings | None = None,
        session: AsyncSession | None = None,
    ) -> None:
        """``session``: the read session to use (the caller's, e.g. the one that signed the
        viewer in); else one is opened on the first read."""
        self.services = services
        self.settings = settings or Settings()
        self.viewer = viewer
        self.permissions = permissions
        # The view was compiled from the viewer's assigned roles, read at this request's
        # policy version: the services decide who may review or complete from them instead of
        # reading the policy lines again. Not from a see-as (read-only) view, nor from the
        # allow-everything view of authorisation switched off: neither holds the user's roles.
        own_roles = self.settings.authorization and not permissions.read_only
        self.actor = Actor(viewer.id, frozenset(permissions.roles) if own_roles else None)
        self.request_id = request_id
        self._scope: CustomerScope | None = None
        self._session = session
        # Resolvers run concurrently; one AsyncSession must not, so reads take turns.
        self._lock = asyncio.Lock()
        self.users = DataLoader(self._load_users)
        self.roles = DataLoader(self._load_roles)
        self.account_counts = DataLoader(self._load_account_counts)
        self.ownership_history = DataLoader(self._load_ownership_history)
        self.rules = DataLoader(self._load_rules)
        self.meetings = DataLoader(self._load_meetings)
        self.health = DataLoader(self._load_health)
        self.customers = DataLoader(self._load_customers)
        self.handover_of_request = DataLoader(self._load_handover_of_request)
        self.surveys = DataLoader(self._load_surveys)
        self.overrides = DataLoader(self._load_overrides)
        self.segments = DataLoader(self._load_segments)
        self.teams = DataLoader(self._load_teams)
        self.children = DataLoader(self._load_children)
        self.child_counts = DataLoader(self._load_child_counts)
        self.rollups = DataLoader(self._load_rollups)
        self.rollup_health = DataLoader(self._load_rollup_health)

    async def read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``query`` on the request's read session."""
        async with self._lock:
            if self._session is None:
                self._session = self.services.db.reader()
            return await query(self._session)

    async def scope(self) -> CustomerScope:
        """The viewer's customer scope (TEAM costs one query, once per request)."""
        if self._scope is None:
            level = self.permissions.scope
            members = {self.viewer.id}
            if level == Scope.TEAM:
                members |= await self.read(lambda s: reports_of(s, self.viewer.id))
            self._scope = CustomerScope(level, frozenset(members), viewer=self.viewer.id)
        return self._scope

    async def scope_ids(self) -> Select[Any] | None:
        """The viewer's customers (``scope()``) as a query of their ids, for aggregates over
        them; None when the scope is everything."""
        scope = await self.scope()
        if scope.clause() is None:
            return None
        return customers_query(CustomerFilter(), scope).with_only_columns(Customer.id)

    async def read_scope(self) -> CustomerScope:
        """The scope for reads: ``scope()`` plus the customers the viewer is receiving."""
        return (await self.scope()).for_reading()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _load_users(self, ids: Sequence[str]) -> list[User | None]:
        async def query(session: AsyncSession) -> dict[str, User]:
            rows = await session.scalars(_USERS, {"ids": list(ids)})
            return {u.id: u for u in rows}

        found = await self.read(query)
        return [found.get(i) for i in ids]

    async def _load_ownership_history(self, ids: Sequence[str]) -> list[list[Ownership]]:
        async def query(session: AsyncSession) -> list[Ownership]:
            return list(await session.scalars(_OWNERSHIP_HISTORY, {"ids": list(ids)}))

        by_customer: dict[str, list[Ownership]] = {i: [] for i in ids}
        for row in await self.read(query):
            by_customer[row.customer_id].append(row)
        return [by_customer[i] for i in ids]

    async def _load_meetings(self, ids: Sequence[str]) -> list[list[HandoverMeeting]]:
        async def query(session: AsyncSession) -> list[HandoverMeeting]:
            return list(await session.scalars(_MEETINGS, {"ids": list(ids)}))

        by_handover: dict[str, list[HandoverMeeting]] = {i: [] for i in ids}
        for row in await self.read(query):
            by_handover[row.handover_id].append(row)
        return [by_handover[i] for i in ids]

    async def _load_handover_of_request(
        self, ids: Sequence[str]
    ) -> list[tuple[Handover, bool] | None]:
        """The handover each request opened (None: none), and whether the viewer sees it."""
        visible = (await self.scope()).handovers(by_id=True)  # checked on the page's rows only
        seen = true() if visible is None else case((visible, True), else_=False)
        stmt = select(Handover, seen.label("visible")).where(Handover.request_id.in_(ids))
        rows = (await self.read(lambda s: s.execute(stmt))).all()
        found = {h.request_id: (h, bool(v)) for h, v in rows}
        return [found.get(i) for i in ids]

    async def _load_rules(self, ids: Sequence[str]) -> list[AssignmentRule | None]:
        async def query(session: AsyncSession) -> dict[str, AssignmentRule]:
            rows = await session.scalars(select(AssignmentRule).where(AssignmentRule.id.in_(ids)))
            return {r.id: r for r in rows}

        found = await self.read(query)
        return [found.get(i) for i in ids]

    async def _load_customers(self, ids: Sequence[str]) -> list[Customer | None]:
        """Customers by id in the viewer's reading scope (None: absent or out of scope)."""
        stmt = _customers_by_id(await self.read_scope())
        found = {c.id: c for c in await self.read(lambda s: _unique(s, stmt, list(ids)))}
        return [found.get(i) for i in ids]

    async def _load_health(self, ids: Sequence[str]) -> list[Health]:
        async def query(session: AsyncSession) -> list[Health]:
            rows = await session.scalars(select(Customer).where(Customer.id.in_(ids)))
            by_id = {c.id: c for c in rows}
            customers = [by_id[i] for i in ids]
            return await self.services.tiering.health(session, customers)

        return await self.read(query)

    async def _load_surveys(self, ids: Sequence[str]) -> list[list[Survey]]:
        found = await self.read(lambda s: self.services.insight.surveys_of(s, list(ids)))
        return [found[i] for i in ids]

    async def _load_overrides(self, ids: Sequence[str]) -> list[dict[str, Override]]:
        found = await self.read(lambda s: self.services.insight.overrides_of(s, list(ids)))
        return [found.get(i, {}) for i in ids]

    async def _load_segments(self, ids: Sequence[str]) -> list[tuple[str | None, Rfm | None]]:
        found = await self.read(lambda s: self.services.insight.segments_of(s, list(ids)))
        return [found[i] for i in ids]

    async def _load_teams(self, ids: Sequence[str]) -> list[list[TeamMember]]:
        by_customer: dict[str, list[TeamMember]] = {i: [] for i in ids}
        for member in await self.read(lambda s: members_of(s, ids)):
            by_customer[member.customer_id].append(member)
        return [by_customer[i] for i in ids]

    async def _load_children(
        self, keys: Sequence[tuple[str, int, str | None]]
    ) -> list[Page[Customer] | BadUserInput]:
        """A page of each ``(parent, first, after)`` key's direct units in the viewer's reading
        scope: one windowed statement for all parents asking for the same page (a cursor that
        is not one fails only the fields that pass it)."""
        stmt = customers_query(CustomerFilter(), await self.read_scope())
        parents: dict[tuple[int, str | None], list[str]] = {}
        for parent, first, after in keys:
            parents.setdefault((first, after), []).append(parent)
        found: dict[tuple[str, int, str | None], Page[Customer] | BadUserInput] = {}
        for (first, after), ids in parents.items():

            async def pages(
                session: AsyncSession, ids: list[str] = ids, first: int = first, after: Any = after
            ) -> dict[Any, Page[Customer]]:
                key = hierarchy.UNIT_ORDER
                return await fetch_pages(session, stmt, key, Customer.parent_id, ids, first, after)

            try:
                read = await self.read(pages)
            except BadUserInput as refused:
                found.update({(p, first, after): refused for p in ids})
                continue
            found.update({(p, first, after): page for p, page in read.items()})
        return [found[k] for k in keys]

    async def _load_child_counts(self, ids: Sequence[str]) -> list[int]:
        """How many direct units of each account the viewer sees (one statement)."""
        stmt = customers_query(CustomerFilter(), await self.read_scope())
        found = await self.read(lambda s: count_rows_by(s, stmt, Customer.parent_id, ids))
        return [found[i] for i in ids]

    async def _load_rollups(self, nodes: Sequence[hierarchy.Node]) -> list[hierarchy.Totals]:
        """Roll-ups over the units the viewer sees (one aggregate statement for all nodes)."""
        visible = (await self.read_scope()).clause()
        now = self.services.clock.now()
        found = await self.read(lambda s: hierarchy.totals(s, nodes, visible, now))
        return [found[i] for i, _ in nodes]

    async def _load_rollup_health(
        self, nodes: Sequence[hierarchy.Node]
    ) -> list[hierarchy.MemberHealth]:
        """The health of each node's visible accounts (itself included), stored or assessed
        in bulk."""
        visible = (await self.read_scope()).clause()
        health, hidden = self.services.tiering.health, self.hidden_signals()
        found = await self.read(
            lambda s: hierarchy.member_health(s, nodes, visible, health, hidden)
        )
        return [found[i] for i, _ in nodes]

    def hidden_signals(self) -> list[str]:
        """The indicators (camelCase, as warnings name them) the viewer may not read: their
        warnings are left out wherever warnings are counted."""
        return [
            name
            for name in (camel(i.name) for i in self.services.insight.indicators)
            if not self.permissions.can_read("HealthIndicator", name)
        ]

    async def _load_roles(self, ids: Sequence[str]) -> list[list[str]]:
        found = await self.read(lambda s: roles_of(s, ids))
        return [found.get(i, []) for i in ids]

    async def _load_account_counts(self, ids: Sequence[str]) -> list[int]:
        found = await self.read(lambda s: active_account_counts(s, list(ids)))
        return [found[i] for i in ids]


async def _unique(session: AsyncSession, stmt: Any, ids: list[str]) -> list[Any]:
    return list((await session.scalars(stmt, {"ids": ids})).unique())


# The loaders' statements, built once with the ids as an expanding parameter: a statement
# built per batch costs SQLAlchemy a new cache key each time, more than running it.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_USERS = select(User).where(User.id.in_(_IDS))
_OWNERSHIP_HISTORY = (
    select(Ownership)
    .where(Ownership.customer_id.in_(_IDS))
    .order_by(Ownership.valid_from, Ownership.id)
)
_MEETINGS = (
    select(HandoverMeeting)
    .where(HandoverMeeting.handover_id.in_(_IDS))
    .order_by(HandoverMeeting.held_at)
)


@lru_cache(maxsize=256)
def _customers_by_id(scope: CustomerScope) -> Select[Customer]:
    """Customers with their active ownership in ``scope``, by the ``ids`` parameter."""
    return customers_query(CustomerFilter(), scope).where(Customer.id.in_(_IDS))


def context_of(info: Any) -> RequestContext:
    """The typed request context from a resolver's ``info``."""
    ctx = info.context
    assert isinstance(ctx, RequestContext)
    return ctx
