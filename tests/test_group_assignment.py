"""Assignment by group (a unit inherits its parent's owner; conditions on the group's
top-level account) in explain and preview, and the group handover: a preview of exactly which
units move, then one request per unit, each reviewed under its own tier's rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from core.domain import (
    AuditEntry,
    ReassignmentRequest,
    ReassignmentTrigger,
    RequestStatus,
    Strategy,
    ValueTier,
)
from core.errors import InvalidState
from core.services import Actor, Services
from core.services.customers import EVERYTHING, load_customer
from core.services.groups import cascading_units
from tests.conftest import GraphQLClient, error_codes

ADMIN = Actor("admin")
EXPLAIN = """query($id: ID!) { explainAssignment(customerId: $id) {
  decidedOwner { id } rule { name } steps { rule { name } matched reasons } } }"""
PREVIEW = """query($rules: [CreateAssignmentRuleInput!], $ids: [ID!]) {
  previewAssignment(input: {rules: $rules, customerIds: $ids}) {
    moves { customer { name } fromOwner { id } toOwner { id } rule { name } }
    unchangedCount unassignedCount } }"""
GROUP_PREVIEW = """query($id: ID!) { groupReassignmentPreview(customerId: $id) {
  customer { name } units { id name } } }"""
GROUP_REQUEST = """mutation($input: RequestGroupReassignmentInput!) {
  requestGroupReassignment(input: $input) { requests { id customer { name } toOwner { id } } } }"""


@pytest.fixture
async def group(services: Services, admin: str) -> dict[str, str]:
    """Hold (STRATEGIC, CN/East, manufacturing; am.chen) with Plant A (HIGH, am.chen), Plant B
    (MEDIUM, am.wu), Line 1 under Plant A (MEDIUM, am.chen), and Loose under Plant B (no
    owner)."""
    await services.users.create(Actor.system(), "sd.wang", "Wang", roles=["sales_director"])
    await services.users.create(Actor.system(), "am.zhou", "Zhou", roles=["account_manager"])
    ids: dict[str, str] = {}
    for name, parent, owner, tier in (
        ("Hold", None, "am.chen", ValueTier.STRATEGIC),
        ("Plant A", "Hold", "am.chen", ValueTier.HIGH),
        ("Plant B", "Hold", "am.wu", ValueTier.MEDIUM),
        ("Line 1", "Plant A", "am.chen", ValueTier.MEDIUM),
        ("Loose", "Plant B", None, ValueTier.LOW),
    ):
        customer = await services.customers.create(
            ADMIN,
            {
                "name": name,
                "value_tier": tier,
                "territory": "CN/East/Shanghai" if parent else "CN/East",
                "industry": "retail" if parent else "manufacturing.automotive",
                "annual_revenue": Decimal(10),
            },
            owner_id=owner,
            parent_id=ids.get(parent or ""),
            auto_assign=False,
        )
        ids[name] = customer.id
    return ids


async def test_explain_shows_the_parent_owner_and_group_conditions(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    await services.assignment.create_rule(
        ADMIN,
        {
            "name": "Strategic groups",
            "priority": 1,
            "strategy": Strategy.FIXED_OWNER,
            "owner_id": "am.zhou",
            "conditions": {"rootValueTiers": ["STRATEGIC"], "rootIndustries": ["finance"]},
        },
    )
    await services.assignment.create_rule(
        ADMIN,
        {
            "name": "Follow the group",
            "priority": 2,
            "strategy": Strategy.INHERIT_PARENT_OWNER,
            "conditions": {"rootTerritories": ["CN/East"], "rootIndustries": ["manufacturing"]},
        },
    )
    explanation = (await gql.data("admin", EXPLAIN, {"id": group["Loose"]}))["explainAssignment"]
    assert explanation["decidedOwner"] == {"id": "am.wu"}  # Plant B's owner
    assert explanation["steps"] == [
        {
            "rule": {"name": "Strategic groups"},
            "matched": False,
            "reasons": ["group industry 'manufacturing.automotive' is not under finance"],
        },
        {
            "rule": {"name": "Follow the group"},
            "matched": True,
            "reasons": ["the parent account's owner am.wu"],
        },
    ]
    top = (await gql.data("admin", EXPLAIN, {"id": group["Hold"]}))["explainAssignment"]
    assert top["decidedOwner"] is None
    assert top["steps"][1]["reasons"] == [
        "no parent account, or its owner is missing, inactive or at capacity"
    ]


async def test_preview_applies_group_rules_to_every_unit(
    gql: GraphQLClient, group: dict[str, str]
) -> None:
    rules: list[dict[str, Any]] = [
        {
            "name": "Follow the group",
            "priority": 1,
            "strategy": "INHERIT_PARENT_OWNER",
            "conditions": {"rootValueTiers": ["STRATEGIC"]},
        }
    ]
    data = await gql.data("admin", PREVIEW, {"rules": rules, "ids": list(group.values())})
    preview = data["previewAssignment"]
    moves = {m["customer"]["name"]: (m["fromOwner"], m["toOwner"]) for m in preview["moves"]}
    # Plant B (am.wu) would follow Hold (am.chen), and Loose, below it, follows Plant B's owner
    # as decided in the same preview (am.chen, not the stored am.wu); Plant A and Line 1
    # already follow; Hold has no parent and keeps am.chen.
    assert moves == {
        "Plant B": ({"id": "am.wu"}, {"id": "am.chen"}),
        "Loose": (None, {"id": "am.chen"}),
    }
    assert (preview["unchangedCount"], preview["unassignedCount"]) == (3, 0)
    rules[0]["conditions"] = {"rootValueTiers": ["LOW"]}
    data = await gql.data("admin", PREVIEW, {"rules": rules, "ids": list(group.values())})
    assert data["previewAssignment"]["moves"] == []


async def test_a_run_assigns_units_the_owner_their_parent_gets_in_the_same_run(
    services: Services, group: dict[str, str]
) -> None:
    """An unowned group and its unowned unit in one run: the group is assigned by a fixed
    owner rule, and the unit inherits that new owner, although it was created (and so
    sorted by id) before the group and moved under it."""
    unit = await services.customers.create(ADMIN, {"name": "Unit"}, auto_assign=False)
    hold = await services.customers.create(
        ADMIN, {"name": "New Hold", "value_tier": ValueTier.STRATEGIC}, auto_assign=False
    )
    await services.groups.move(ADMIN, unit.id, unit.version, hold.id)
    await services.assignment.create_rule(
        ADMIN,
        {"name": "Follow", "priority": 1, "strategy": Strategy.INHERIT_PARENT_OWNER},
    )
    await services.assignment.create_rule(
        ADMIN,
        {
            "name": "Strategic",
            "priority": 2,
            "strategy": Strategy.FIXED_OWNER,
            "owner_id": "am.zhou",
            "conditions": {"valueTiers": ["STRATEGIC"]},
        },
    )
    result = await services.assignment.run(ADMIN, [unit.id, hold.id], dry_run=False)
    assert {(m.customer_id, m.to_owner_id, m.rule.name) for m in result.assigned} == {
        (hold.id, "am.zhou", "Strategic"),
        (unit.id, "am.zhou", "Follow"),
    }


async def test_a_group_handover_moves_exactly_the_previewed_units(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    preview = (await gql.data("am.chen", GROUP_PREVIEW, {"id": group["Hold"]}))[
        "groupReassignmentPreview"
    ]
    assert preview["customer"] == {"name": "Hold"}
    # am.chen's units only: not am.wu's Plant B nor the unowned Loose.
    assert [u["name"] for u in preview["units"]] == ["Plant A", "Line 1"]
    unit_ids = [u["id"] for u in preview["units"]]

    async def request(ids: list[str]) -> dict[str, Any]:
        return await gql.execute(
            "am.chen",
            GROUP_REQUEST,
            {
                "input": {
                    "customerId": group["Hold"],
                    "toOwnerId": "am.zhou",
                    "trigger": "REORGANIZATION",
                    "unitIds": ids,
                    "reason": "am.zhou takes the group",
                }
            },
        )

    async def open_requests() -> int:
        async with services.db.reader() as session:
            return int(await session.scalar(select(func.count()).select_from(ReassignmentRequest)))

    stale = await request(unit_ids[:1])
    assert error_codes(stale) == ["CONFLICT"]
    assert stale["errors"][0]["extensions"]["currentUnitIds"] == unit_ids
    assert await open_requests() == 0
    body = await request(unit_ids)
    assert "errors" not in body, body
    requests = body["data"]["requestGroupReassignment"]["requests"]
    assert [(r["customer"]["name"], r["toOwner"]["id"]) for r in requests] == [
        ("Hold", "am.zhou"),
        ("Plant A", "am.zhou"),
        ("Line 1", "am.zhou"),
    ]
    # A unit with an open request no longer cascades.
    again = (await gql.data("am.chen", GROUP_PREVIEW, {"id": group["Hold"]}))[
        "groupReassignmentPreview"
    ]
    assert again["units"] == []
    # Each request is reviewed under its own tier's rules: tm.li (the owner's manager) may
    # approve MEDIUM Line 1, but STRATEGIC Hold and HIGH Plant A need a sales director.
    review = """mutation($id: ID!) { reviewReassignment(input: {requestId: $id,
      decision: APPROVE}) { request { status } handover { status } } }"""
    by_name = {r["customer"]["name"]: r["id"] for r in requests}
    for name, reviewer, outcome in (
        ("Line 1", "tm.li", "APPROVED"),
        ("Plant A", "tm.li", "FORBIDDEN"),
        ("Hold", "tm.li", "FORBIDDEN"),
        ("Plant A", "sd.wang", "APPROVED"),
        ("Hold", "sd.wang", "APPROVED"),
    ):
        answer = await gql.execute(reviewer, review, {"id": by_name[name]})
        got = error_codes(answer) or [answer["data"]["reviewReassignment"]["request"]["status"]]
        assert got == [outcome], (name, reviewer, answer)


async def test_a_plugin_reads_the_group_banking_group_exposure(
    services: Services, admin: str
) -> None:
    """The banking plugin's tier criterion reads the hierarchy through the SDK: a subsidiary
    of a group holding private-banking assets elsewhere is at least HIGH; a stand-alone
    account with the same profile is not lifted."""
    hold = await services.customers.create(
        ADMIN, {"name": "Bank Hold"}, needs={"banking": {"aum_band": "ABOVE_100M"}}
    )
    unit = await services.customers.create(ADMIN, {"name": "Leasing"}, parent_id=hold.id)
    alone = await services.customers.create(ADMIN, {"name": "Alone"})
    result = await services.tiering.review(ADMIN)
    moved = {(m.customer_id, m.tier, m.after): m.reason for m in result.movements}
    assert moved[(hold.id, "value", "STRATEGIC")] == "banking/private_banking: AUM ABOVE_100M"
    assert moved[(unit.id, "value", "HIGH")] == (
        f"banking/group_exposure: its group holds AUM ABOVE_100M at {hold.id}"
    )
    assert not any(cid == alone.id and after == "HIGH" for cid, _, after in moved)


async def test_a_plugin_reads_the_plants_of_a_group_manufacturing(
    services: Services, admin: str
) -> None:
    """The manufacturing plugin's needs criterion reads the plants of one group: every account
    of a group with plants in two regions needs a personal touch (the group's top-level
    account, which has no needs of its own, included); a stand-alone plant not for that."""
    hold = await services.customers.create(ADMIN, {"name": "Works Hold"})
    for name, region in (("East Works", "CN_EAST"), ("Euro Works", "EUROPE")):
        await services.customers.create(
            ADMIN,
            {"name": name},
            parent_id=hold.id,
            needs={"manufacturing": {"plant_region": region}},
        )
    alone = await services.customers.create(
        ADMIN, {"name": "Lone Works"}, needs={"manufacturing": {"plant_region": "CN_EAST"}}
    )
    result = await services.tiering.review(ADMIN)
    lifted = {m.customer_id: m.reason for m in result.movements if m.after == "PERSONALIZED"}
    assert lifted[hold.id] == "manufacturing/multi_region_group: its group has plants in 2 regions"
    assert "multi_region_group" not in lifted.get(alone.id, "")


async def _statements(services: Services, run: Callable[[], Awaitable[Any]]) -> int:
    """How many SQL statements ``run`` takes."""
    counted: list[str] = []
    engine = services.db.engine.sync_engine
    listener = lambda *args: counted.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        await run()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return len(counted)


async def test_a_group_handover_costs_the_same_statements_for_more_units(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    """Preview and request of a group handover: the same number of statements for a group
    with two units that move as for one with six."""

    async def handover(root: str, moving: int) -> tuple[int, int]:
        preview: dict[str, Any] = {}

        async def show() -> None:
            preview.update(await gql.data("am.chen", GROUP_PREVIEW, {"id": root}))

        shown = await _statements(services, show)
        units = [u["id"] for u in preview["groupReassignmentPreview"]["units"]]
        assert len(units) == moving
        variables = {
            "input": {
                "customerId": root,
                "toOwnerId": "am.zhou",
                "trigger": "REORGANIZATION",
                "unitIds": units,
            }
        }
        requested = await _statements(
            services, lambda: gql.data("am.chen", GROUP_REQUEST, variables)
        )
        return shown, requested

    async def grouped(units: int) -> str:
        root = await services.customers.create(ADMIN, {"name": "Big"}, owner_id="am.chen")
        for i in range(units):
            await services.customers.create(
                ADMIN, {"name": f"Unit {i}"}, owner_id="am.chen", parent_id=root.id
            )
        return root.id

    await handover(group["Hold"], 2)  # the first requests also load the policies
    assert await handover(await grouped(2), 2) == await handover(await grouped(6), 6)


OWNERS = ("am.chen", "am.wu")


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    nodes=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(OWNERS), st.booleans()),
        min_size=1,
        max_size=7,
    ),
    start=st.integers(0, 7),
)
async def test_a_group_handover_moves_the_units_below_that_share_the_owner(
    services: Services,
    group: dict[str, str],
    nodes: list[tuple[int, str, bool]],
    start: int,
) -> None:
    """Over random trees (each account's parent, owner and whether it has an open request):
    the handover of any account asks, in one go, for it and exactly the accounts below it that
    share its owner and have no open request, each from that owner, each audited."""
    ids: list[str] = []
    below: list[set[int]] = []  # each node's ancestors (by index)
    for i, (parent, owner, _) in enumerate(nodes):
        up = parent % i if i else None
        created = await services.customers.create(
            ADMIN,
            {"name": f"N{i}"},
            owner_id=owner,
            parent_id=ids[up] if up is not None else None,
            auto_assign=False,
        )
        ids.append(created.id)
        below.append(set() if up is None else {up, *below[up]})
    for i, (_, owner, pending) in enumerate(nodes):
        if pending:
            other = OWNERS[1 - OWNERS.index(owner)]
            await services.reassignment.request(
                ADMIN, ids[i], other, ReassignmentTrigger.CUSTOMER_REQUEST, "open"
            )
    start %= len(nodes)
    owner, pending = nodes[start][1], nodes[start][2]
    expected = [
        ids[i] for i, (_, o, p) in enumerate(nodes) if start in below[i] and o == owner and not p
    ]
    async with services.db.reader() as session:
        customer = await load_customer(session, ids[start])
        units = await cascading_units(session, customer, EVERYTHING)
    assert sorted(u.id for u in units) == sorted(expected)
    call = services.groups.reassign_group(
        ADMIN, ids[start], "am.zhou", ReassignmentTrigger.REORGANIZATION, "r", expected
    )
    if pending:
        with pytest.raises(InvalidState):
            await call
        return
    requests = await call
    assert [r.customer_id for r in requests] == [ids[start], *(u.id for u in units)]
    assert {(r.from_owner_id, r.to_owner_id, r.status) for r in requests} == {
        (owner, "am.zhou", RequestStatus.PENDING)
    }
    async with services.db.reader() as session:
        audited = set(
            await session.scalars(
                select(AuditEntry.entity_id).where(AuditEntry.action == "requestReassignment")
            )
        )
    assert {r.id for r in requests} <= audited
