"""Customer pages of a narrow scope read the scope first; they show what walked pages show."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.defaults import Scope
from core.clock import FixedClock
from core.db import Database
from core.domain import Customer, Ownership, TeamRole
from core.services import Actor, Services
from core.services.customers import CustomerFilter, CustomerScope, customers_query
from core.services.scope_sizes import SCOPE_FIRST_COST, ScopeSize
from tests.conftest import GraphQLClient
from tests.test_write_costs import plan_visits

T = TypeVar("T")
ADMIN = Actor("admin")
PAGES = """query($first: Int, $after: String, $filter: CustomerFilter, $orderBy: CustomerOrder) {
  customers(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    edges { cursor node { id name } } pageInfo { hasNextPage endCursor } } }"""
ORDERS = ("NAME", "CREATED_AT", "UPDATED_AT", "ENGAGEMENT_STAGE", "RFM_SCORE")
FILTERS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"valueTiers": ["HIGH"]},
    {"unassigned": True},
    {"territory": "CN/East"},
    {"search": "o"},
)
# Scope-first costs next to nothing: every page reads its scope first. 0: every page walks.
SCOPE_FIRST, WALKED = 1e-9, 0.0

# Per app (its database): each viewer's customers, and every customer.
_SEEDED: weakref.WeakKeyDictionary[Database, dict[str, set[str]]] = weakref.WeakKeyDictionary()


async def _seed(services: Services, clock: FixedClock) -> dict[str, set[str]]:
    """Customers that reach am.chen by every rule of the scope (owner, backup, first contact
    of an unowned one, team, group director), others that reach only am.wu or an outsider;
    names and times repeat, so that pages break ties by id."""
    if (found := _SEEDED.get(services.db)) is not None:
        return found
    await services.users.create(Actor.system(), "am.out", "Outsider", roles=["account_manager"])
    names = ("Acme", "Bolt", "Cove", "Acme", "Dune", "Bolt")
    reach: dict[str, set[str]] = {"am.chen": set(), "tm.li": set(), "all": set()}

    async def customer(n: int, chen: bool, team: bool, **data: Any) -> str:
        owner = data.pop("owner", None)
        created = await services.customers.create(
            ADMIN,
            {
                "name": names[n % len(names)],
                "value_tier": ("HIGH", "LOW", None)[n % 3],
                "territory": ("CN/East", "CN/North")[n % 2],
                **data,
            },
            owner_id=owner,
            auto_assign=False,
        )
        if n % 4 == 0:
            clock.advance(timedelta(minutes=1))
        for viewer, reached in (("am.chen", chen), ("tm.li", team or chen), ("all", True)):
            if reached:
                reach[viewer].add(created.id)
        return created.id

    for n in range(30):
        kind = n % 6
        if kind == 0:
            await customer(n, True, True, owner="am.chen")
        elif kind == 1:
            await customer(n, True, True, owner="am.wu", backup_owner_id="am.chen")
        elif kind == 2:
            await customer(n, True, True, first_contact_id="am.chen")
        elif kind == 3:
            await customer(n, False, True, owner="am.wu")
        elif kind == 4:
            await customer(n, False, True, first_contact_id="am.wu")
        else:
            await customer(n, False, False, owner="am.out", first_contact_id="am.out")
    team = await customer(30, True, False, owner="am.out")
    await services.teams.add(Actor("am.out"), team, "am.chen", TeamRole.SERVICE)  # its owner
    group = await customer(31, True, False, owner="am.out")
    await services.groups.set_group_director(ADMIN, group, "am.chen")
    unit = await services.customers.create(
        ADMIN, {"name": "Cove unit"}, owner_id="am.out", auto_assign=False, parent_id=group
    )
    for viewer in reach:
        reach[viewer].add(unit.id)
    await services.insight.refresh()  # the insight rows that ENGAGEMENT_STAGE and RFM_SCORE read
    _SEEDED[services.db] = reach
    return reach


async def _pages(
    gql: GraphQLClient, services: Services, viewer: str, cost: float, **variables: Any
) -> list[dict[str, Any]]:
    """Every page of the list, cursor after cursor, read with the scope-first ``cost``."""
    services.scope_sizes.cost = cost
    pages, after = [], None
    while True:
        data = await gql.data(viewer, PAGES, {**variables, "after": after})
        pages.append(data["customers"])
        if not data["customers"]["pageInfo"]["hasNextPage"]:
            return pages
        after = data["customers"]["pageInfo"]["endCursor"]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    viewer=st.sampled_from(["am.chen", "tm.li"]),
    field=st.sampled_from(ORDERS),
    direction=st.sampled_from(["ASC", "DESC"]),
    first=st.integers(1, 9),
    filter=st.sampled_from(FILTERS),
)
async def test_scope_first_pages_are_the_walked_pages(
    gql: GraphQLClient,
    services: Services,
    admin: str,
    clock: FixedClock,
    viewer: str,
    field: str,
    direction: str,
    first: int,
    filter: dict[str, Any] | None,
) -> None:
    """For a narrow (OWN) and a broad (TEAM) scope, every order, both directions, any page
    size and filter: the same pages, cursors included, read scope first or walked; and
    nothing outside the scope."""
    reach = await _seed(services, clock)
    variables = {
        "first": first,
        "filter": filter,
        "orderBy": {"field": field, "direction": direction},
    }
    walked = await _pages(gql, services, viewer, WALKED, **variables)
    scope_first = await _pages(gql, services, viewer, SCOPE_FIRST, **variables)
    assert scope_first == walked
    shown = [e["node"]["id"] for page in walked for e in page["edges"]]
    assert len(shown) == len(set(shown))
    assert set(shown) <= reach[viewer]
    if filter is None:
        assert set(shown) == reach[viewer]


async def _bulk(services: Services, prefix: str, owner: str, count: int, now: datetime) -> None:
    """``count`` customers of ``owner``, inserted in one go."""
    ids = [f"cus_{prefix}{n:05d}" for n in range(count)]
    rows = [
        {
            "id": cid,
            "version": 1,
            "name": f"{prefix} {n % 97:02d}",
            "kind": "ENTERPRISE",
            "lifecycle_stage": "ACTIVE",
            "product_lines": [],
            "contacts": [],
            "special_needs": {},
            "root_id": cid,
            "path": cid + "/",
            "depth": 0,
            "first_contact_id": owner,
            "created_at": now,
            "updated_at": now,
        }
        for n, cid in enumerate(ids)
    ]
    owned = [
        {"customer_id": cid, "owner_id": owner, "assigned_by": "MANUAL", "valid_from": now}
        for cid in ids
    ]
    async with services.db.transaction() as session:
        await session.execute(insert(Customer), rows)
        await session.execute(insert(Ownership), owned)


def _reader(services: Services) -> Callable[[Callable[[AsyncSession], Awaitable[T]]], Awaitable[T]]:
    async def read(query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with services.db.reader() as session:
            return await query(session)

    return read


NARROW = CustomerScope(Scope.OWN, frozenset({"am.chen"}), viewer="am.chen").for_reading()
BROAD = CustomerScope(Scope.TEAM, frozenset({"tm.li", "am.chen", "am.wu"}), viewer="tm.li")


async def test_a_narrow_scope_reads_its_customers_first_and_a_broad_one_walks(
    services: Services, admin: str, database_url: str
) -> None:
    """am.chen reaches 40 customers of 20,040: their page reads those, not the table (the walk
    in name order reads about 100 customers per customer of the page). tm.li's team reaches
    them all: its page walks, and stops after a page."""
    now = services.clock.now()
    await _bulk(services, "wu", "am.wu", 20_000, now)
    await _bulk(services, "zchen", "am.chen", 40, now)  # named after the rest
    read = _reader(services)
    narrow = await services.scope_sizes.for_page(read, NARROW, 21)
    broad = await services.scope_sizes.for_page(read, BROAD.for_reading(), 21)
    assert narrow == NARROW.scope_first() and broad == BROAD.for_reading()

    def page(scope: CustomerScope) -> Any:
        stmt = customers_query(CustomerFilter(), scope)
        return stmt.order_by(Customer.name, Customer.id).limit(21)

    async with services.db.transaction() as session:
        visits = {
            name: await plan_visits(session, page(scope))
            for name, scope in (("scope first", narrow), ("walked", NARROW), ("broad", broad))
        }
    if database_url.startswith("postgresql"):
        assert visits["scope first"]["customers"] <= 40  # each of them once
        assert visits["walked"]["customers"] >= 1000  # what the choice avoids
        assert visits["broad"]["customers"] <= 100
    else:  # SQLite's plan tells searches by key (1) from scans (a large number) only
        assert visits["scope first"]["customers"] == 1
        assert visits["walked"]["customers"] > 1


def test_the_choice_follows_the_rows_each_form_reads() -> None:
    """Walked, a page of 51 reads about 51 x total / in_scope rows; scope first, in_scope
    rows at a few times the cost each."""
    for cost in SCOPE_FIRST_COST.values():
        assert ScopeSize(500, 200_000).scope_first(51, cost)
        assert not ScopeSize(500, 2_000).scope_first(51, cost)
        assert ScopeSize(0, 2_000).scope_first(51, cost)
        assert not ScopeSize(50_000, 200_000).scope_first(51, cost)


async def test_the_scope_size_is_counted_once_then_remembered(
    gql: GraphQLClient, services: Services, admin: str, clock: FixedClock
) -> None:
    """A list costs two statements, as before; a third, the scope's size, only when it is
    unknown or stale."""
    await _seed(services, clock)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = services.db.engine.sync_engine
    query = {"first": 5}
    await gql.data("am.chen", PAGES, query)  # warm-up: the viewer, the policies, the size
    for stale, expected in ((False, 2), (True, 3), (False, 2)):
        if stale:
            services.scope_sizes.ttl = -1.0
        event.listen(engine, "before_cursor_execute", record)
        try:
            await gql.data("am.chen", PAGES, query)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        services.scope_sizes.ttl = 60.0
        assert len(statements) == expected, statements
        statements.clear()


async def test_the_customers_total_is_counted_once_for_every_scope(
    services: Services, admin: str
) -> None:
    """The first scope's size counts all customers too (a scan); the next scope's, within the
    time a size is trusted, counts only its own customers (by their indexes)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for scope in (NARROW, BROAD.for_reading(), NARROW):
            await services.scope_sizes.for_page(_reader(services), scope, 21)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [s.lower().count("count(") for s in statements] == [2, 1]
