"""What a reassignment or handover mutation costs the database, on both databases: a pinned
number of SQL statements per mutation (an upper bound: fewer is welcome, more fails), and
single-row scope checks whose plans visit only the row they check, however many customers
the viewer reaches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Select, delete, event, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.defaults import Scope
from core.authz.store import bump_policy_version
from core.clock import FixedClock
from core.domain import (
    AssignedBy,
    CasbinRule,
    Customer,
    CustomerKind,
    Handover,
    LifecycleStage,
    Ownership,
    RequestStatus,
    TeamRole,
)
from core.errors import Forbidden, NotFound
from core.services import Actor, Services
from core.services.customers import EVERYTHING, CustomerFilter, CustomerScope, customers_query
from core.services.hierarchy import top_level
from core.services.reassignment import handover_by_id, load_request, request_by_id
from tests.conftest import GraphQLClient, error_codes
from tests.test_handover import HANDBOOK
from tests.test_handover_workflow import FEEDBACK

ADMIN = Actor("admin")
# Statements per mutation over HTTP, sign-in included, as reached for issue 21 (the same on
# SQLite and PostgreSQL: the audit entries are one INSERT on both). The team manager's TEAM
# scope costs its one recursive query of reports; a meeting's audit entry is its own INSERT.
# An upper bound: lower it when a change saves a statement; a change that needs one more must
# say why here.
PINNED = {
    "requestReassignment": 6,
    "reviewReassignment": 7,
    "submitHandbook": 5,
    "reviewHandbook": 6,
    "recordHandoverMeeting": 6,
    "notifyCustomer": 5,
    "completeHandover": 11,
    "submitHandoverFeedback": 5,
    "recordSatisfaction": 6,
    "cancelHandover": 6,
}
REQUEST = """mutation($input: RequestReassignmentInput!) {
  requestReassignment(input: $input) { request { id } } }"""
REVIEW = """mutation($input: ReviewReassignmentInput!) {
  reviewReassignment(input: $input) { handover { id version } } }"""
STEP = "mutation($input: {type}!) {{ {name}(input: $input) {{ handover {{ id version }} }} }}"
# Who takes each step in the flow below, and its input type and values.
STEPS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("submitHandbook", "am.chen", "SubmitHandbookInput", HANDBOOK),
    ("reviewHandbook", "tm.li", "ReviewHandbookInput", {"decision": "APPROVE"}),
    (
        "recordHandoverMeeting",
        "am.chen",
        "RecordHandoverMeetingInput",
        {"kind": "BRIEFING", "heldAt": "2026-03-02T09:00:00+00:00"},
    ),
    (
        "recordHandoverMeeting",
        "am.chen",
        "RecordHandoverMeetingInput",
        {"kind": "SIMULATION", "heldAt": "2026-03-03T09:00:00+00:00"},
    ),
    ("notifyCustomer", "am.chen", "HandoverStepInput", {}),
    ("completeHandover", "tm.li", "HandoverStepInput", {}),
    ("submitHandoverFeedback", "am.wu", "SubmitHandoverFeedbackInput", FEEDBACK),
    ("recordSatisfaction", "tm.li", "RecordSatisfactionInput", {"score": 4}),
]


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements run inside the block, in order."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement != "BEGIN IMMEDIATE":  # SQLite's way to open a write transaction
            seen.append(" ".join(statement.split()))

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def counted(
    gql: GraphQLClient, services: Services, user: str, query: str, input_: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The data of a mutation that must succeed, and the statements it ran. Time moves on
    first, as it does between real steps: a step stamps the handover (and bumps its version)."""
    assert isinstance(services.clock, FixedClock)
    services.clock.advance(timedelta(minutes=1))
    with statements(services) as seen:
        data = await gql.data(user, query, {"input": input_})
    return data, seen


async def opened_by_tm_li(
    gql: GraphQLClient, services: Services, name: str, costs: dict[str, list[list[str]]]
) -> dict[str, Any]:
    """A customer of am.chen moving to am.wu: requested by am.chen, approved by tm.li over
    HTTP (their statements noted in ``costs``); the handover it opened."""
    customer = await services.customers.create(
        ADMIN, {"name": name, "value_tier": "MEDIUM"}, owner_id="am.chen"
    )
    data, seen = await counted(
        gql,
        services,
        "am.chen",
        REQUEST,
        {"customerId": customer.id, "toOwnerId": "am.wu", "trigger": "NEEDS_CHANGE"},
    )
    costs.setdefault("requestReassignment", []).append(seen)
    request_id = data["requestReassignment"]["request"]["id"]
    data, seen = await counted(
        gql, services, "tm.li", REVIEW, {"requestId": request_id, "decision": "APPROVE"}
    )
    costs.setdefault("reviewReassignment", []).append(seen)
    return data["reviewReassignment"]["handover"]  # type: ignore[no-any-return]


async def test_each_mutation_stays_within_its_pinned_statements(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    for user in ("am.chen", "am.wu", "tm.li"):  # signed in once: the policies are loaded
        await gql.data(user, "{ viewer { user { id } } }")
    costs: dict[str, list[list[str]]] = {}
    handover = await opened_by_tm_li(gql, services, "Pinned", costs)
    for name, user, input_type, values in STEPS:
        input_ = {"handoverId": handover["id"], "expectedVersion": handover["version"], **values}
        data, seen = await counted(
            gql, services, user, STEP.format(type=input_type, name=name), input_
        )
        costs.setdefault(name, []).append(seen)
        handover = data[name]["handover"]
    other = await opened_by_tm_li(gql, services, "Cancelled", costs)
    input_ = {"handoverId": other["id"], "expectedVersion": other["version"], "reason": "no"}
    data, seen = await counted(
        gql,
        services,
        "tm.li",
        STEP.format(type="CancelHandoverInput", name="cancelHandover"),
        input_,
    )
    costs["cancelHandover"] = [seen]
    over = {
        name: [len(s) for s in runs]
        for name, runs in costs.items()
        if max(len(s) for s in runs) > PINNED[name]
    }
    assert not over, json.dumps({n: costs[n] for n in over}, indent=1, ensure_ascii=False)
    # The role lookup comes from the request's permission view, not from the policy lines.
    every = [s for runs in costs.values() for seen in runs for s in seen]
    assert not [s for s in every if "casbin_rule" in s]


async def test_a_reviewer_role_taken_away_elsewhere_stops_counting_at_the_next_request(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    """The party checks use the roles of the request's permission view, which follows the
    policy version read at sign-in: a role another process takes away (its lines and the
    version change in the database; this process's store is not told) no longer counts, for
    a viewer who still sees the handover and may still call the step."""
    # Finance's scope is ALL: he sees every handover, with or without the director's role.
    roles = ["team_manager", "sales_director", "finance"]
    await services.users.create(Actor.system(), "sd.zhao", "Zhao", roles=roles)
    handovers = []
    for name in ("Before", "After"):
        h = await opened_by_tm_li(gql, services, name, {})
        handovers.append(
            await services.handover.submit_handbook(ADMIN, h["id"], h["version"], HANDBOOK)
        )
    review = STEP.format(type="ReviewHandbookInput", name="reviewHandbook")

    def input_(h: Any) -> dict[str, Any]:
        return {"input": {"handoverId": h.id, "expectedVersion": h.version, "decision": "APPROVE"}}

    # A sales director reviews any handbook, though not the outgoing owner's manager.
    await gql.data("sd.zhao", review, input_(handovers[0]))
    async with services.db.transaction() as session:
        await session.execute(
            delete(CasbinRule).where(
                CasbinRule.ptype == "g",
                CasbinRule.v0 == "sd.zhao",
                CasbinRule.v1 == "sales_director",
            )
        )
        await bump_policy_version(session, services.db)
    body = await gql.execute("sd.zhao", review, input_(handovers[1]))
    assert error_codes(body) == ["FORBIDDEN"]  # not the outgoing owner's manager
    async with services.db.transaction() as session:
        after = await session.get(Handover, handovers[1].id)
        assert after is not None and after.status == "HANDBOOK_SUBMITTED"


async def test_a_review_answers_a_request_out_of_reach_as_before(
    services: Services, admin: str
) -> None:
    """Reading the request with its customer in one statement keeps the answers for a request
    the reviewer cannot change: NOT_FOUND when absent or out of scope, FORBIDDEN when the
    reviewer only reads the account (he is on its team), and nothing written."""
    await services.users.create(Actor.system(), "tm.zhao", "Zhao", roles=["team_manager"])
    customer = await services.customers.create(
        ADMIN, {"name": "Shared", "value_tier": "MEDIUM"}, owner_id="am.chen"
    )
    await services.teams.add(Actor("am.chen"), customer.id, "tm.zhao", TeamRole.SERVICE)
    request = await services.reassignment.request(
        Actor("am.chen"), customer.id, "am.wu", "NEEDS_CHANGE", None
    )
    zhao = CustomerScope(Scope.TEAM, frozenset({"tm.zhao"}), viewer="tm.zhao")
    with pytest.raises(Forbidden):
        await services.reassignment.review(Actor("tm.zhao"), request.id, True, None, zhao)
    wu = CustomerScope(Scope.OWN, frozenset({"am.wu"}), viewer="am.wu")
    for request_id, scope in ((request.id, wu), ("rrq_absent", zhao)):
        with pytest.raises(NotFound):
            await services.reassignment.review(Actor("tm.zhao"), request_id, True, None, scope)
    async with services.db.reader() as session:
        after = await load_request(session, request.id, EVERYTHING)
        assert after.status == RequestStatus.PENDING and after.reviewed_by_id is None


async def _bulk_customers(services: Services, owner: str, count: int, now: datetime) -> None:
    """``count`` customers of ``owner``, written in one go (the scope then reaches them all)."""
    async with services.db.transaction() as session:
        for n in range(count):
            customer = Customer(
                id=f"cus_bulk{n:04d}",
                version=1,
                name=f"Bulk {n}",
                kind=CustomerKind.ENTERPRISE,
                lifecycle_stage=LifecycleStage.ACTIVE,
                created_at=now,
                updated_at=now,
            )
            top_level(customer)
            session.add(customer)
        await session.flush()
        session.add_all(
            Ownership(
                customer_id=f"cus_bulk{n:04d}",
                owner_id=owner,
                assigned_by=AssignedBy.MANUAL,
                valid_from=now,
            )
            for n in range(count)
        )


async def plan_visits(session: AsyncSession, stmt: Select[Any]) -> dict[str, int]:
    """For each of customers and ownerships, the most rows one scan of it visits when the
    statement runs: per loop, the rows it returns plus those its filter removed (PostgreSQL:
    ``EXPLAIN ANALYZE``). SQLite: 1 for a search by key, a large number for a full scan."""
    assert session.bind is not None
    sql = str(stmt.compile(dialect=session.bind.dialect, compile_kwargs={"literal_binds": True}))
    visits = {"customers": 0, "ownerships": 0}
    if session.bind.dialect.name == "sqlite":
        for row in await session.execute(text("EXPLAIN QUERY PLAN " + sql)):
            detail = str(row[-1])
            for table in visits:
                if detail.startswith(f"SCAN {table}"):
                    visits[table] = max(visits[table], 1_000_000)
                elif detail.startswith(f"SEARCH {table}"):
                    visits[table] = max(visits[table], 1)
        return visits
    for table in visits:  # the planner knows the tables' real sizes
        await session.execute(text(f"ANALYZE {table}"))
    plan = (await session.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql))).scalar_one()
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def walk(node: dict[str, Any]) -> None:
        table = node.get("Relation Name")
        if table in visits:
            per_loop = node["Actual Rows"] + node.get("Rows Removed by Filter", 0) / max(
                node["Actual Loops"], 1
            )
            visits[table] = max(visits[table], int(per_loop))
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return visits


@pytest.mark.parametrize("level", [Scope.OWN, Scope.TEAM], ids=["OWN", "TEAM"])
async def test_a_row_read_by_id_checks_its_scope_on_that_row_alone(
    services: Services, admin: str, level: Scope
) -> None:
    """A handover, a reassignment request and a customer, looked up by id in a narrow scope:
    the scope is checked on that row's customer through the keys, not by listing every
    customer the viewer reaches (the uncorrelated IN that PostgreSQL hashed over all of them
    first)."""
    now = services.clock.now()
    # Enough customers that the planner reads them by key: a table of a page or two it
    # rightly scans whole, whatever the statement.
    await _bulk_customers(services, "am.chen", 400, now)
    customer = await services.customers.create(
        ADMIN, {"name": "Moving", "value_tier": "MEDIUM"}, owner_id="am.chen"
    )
    request = await services.reassignment.request(
        Actor("am.chen"), customer.id, "am.wu", "NEEDS_CHANGE", None
    )
    _, handover = await services.reassignment.review(ADMIN, request.id, True, None)
    assert handover is not None
    viewer, members = ("am.chen", {"am.chen"}) if level == Scope.OWN else ("tm.li", {"tm.li"})
    if level == Scope.TEAM:
        members |= {"am.chen", "am.wu"}
    scope = CustomerScope(level, frozenset(members), viewer=viewer)
    by_id = customers_query(CustomerFilter(), scope).where(Customer.id == customer.id)
    async with services.db.transaction() as session:
        for stmt in (handover_by_id(handover.id, scope), request_by_id(request.id, scope), by_id):
            assert (await session.execute(stmt)).first() is not None  # it is in scope
            assert await plan_visits(session, stmt) == {"customers": 1, "ownerships": 1}
