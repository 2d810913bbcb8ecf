"""Account hierarchy: groups of accounts, moves as reorganisations, the group director's row
scope, and roll-ups that count only what the viewer sees and read only what they may read.
Over HTTP and through the services, on both databases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select

from core.demo import seed_demo
from core.domain import ActivityKind, Customer, CustomerHealthRow, ReassignmentRequest, Strategy
from core.services import Actor, Services
from core.services.hierarchy import MAX_DEPTH
from tests.conftest import GraphQLClient, error_codes

ADMIN = Actor("admin")
TREE = """query($id: ID!) { customer(id: $id) {
  id name parent { id } root { id } ancestors { id }
  children { totalCount edges { node { id name owner { id } children { totalCount } } } }
} }"""
MOVE = """mutation($input: MoveCustomerInput!) {
  moveCustomer(input: $input) { customer { id version parent { id } root { id } } } }"""
ROLLUP = """query($id: ID!) { customer(id: $id) { id rollup {
  unitCount annualRevenue orderValue worstHealthLevel openWarningCount
  owners { owner { id } count } } } }"""


@pytest.fixture
async def group(services: Services, admin: str) -> dict[str, str]:
    """Hold (am.chen) with Plant A (am.chen) and Plant B (am.wu), and Line 1 under Plant A
    (am.wu); Solo (am.wu) stands alone."""
    await services.users.create(Actor.system(), "sd.wang", "Wang", roles=["sales_director"])
    ids: dict[str, str] = {}
    for name, parent, owner, revenue in (
        ("Hold", None, "am.chen", "1000"),
        ("Plant A", "Hold", "am.chen", "200"),
        ("Plant B", "Hold", "am.wu", "300"),
        ("Line 1", "Plant A", "am.wu", "40"),
        ("Solo", None, "am.wu", "5"),
    ):
        customer = await services.customers.create(
            ADMIN,
            {"name": name, "annual_revenue": Decimal(revenue), "territory": "CN/East"},
            owner_id=owner,
            parent_id=ids.get(parent or ""),
        )
        ids[name] = customer.id
    return ids


async def _version(services: Services, customer_id: str) -> int:
    async with services.db.reader() as session:
        version = await session.scalar(select(Customer.version).where(Customer.id == customer_id))
    assert version is not None
    return version


async def _move(
    gql: GraphQLClient, services: Services, user: str, customer_id: str, parent_id: str | None
) -> dict[str, Any]:
    variables = {
        "input": {
            "customerId": customer_id,
            "expectedVersion": await _version(services, customer_id),
            "parentId": parent_id,
            "reason": "group restructured",
        }
    }
    return await gql.execute(user, MOVE, variables)


async def test_a_group_reads_as_a_tree(gql: GraphQLClient, group: dict[str, str]) -> None:
    data = await gql.data("admin", TREE, {"id": group["Line 1"]})
    line = data["customer"]
    assert line["parent"] == {"id": group["Plant A"]}
    assert line["root"] == {"id": group["Hold"]}
    assert line["ancestors"] == [{"id": group["Hold"]}, {"id": group["Plant A"]}]
    hold = (await gql.data("admin", TREE, {"id": group["Hold"]}))["customer"]
    assert hold["parent"] is None and hold["root"] == {"id": group["Hold"]}
    assert hold["children"]["totalCount"] == 2
    units = {e["node"]["name"]: e["node"] for e in hold["children"]["edges"]}
    assert units["Plant A"]["children"]["totalCount"] == 1
    assert units["Plant B"]["owner"] == {"id": "am.wu"}
    # Units come by name, a page at a time.
    page = """query($id: ID!, $after: String) { customer(id: $id) {
      children(first: 1, after: $after) { pageInfo { hasNextPage endCursor }
      edges { node { name } } } } }"""
    first = (await gql.data("admin", page, {"id": group["Hold"]}))["customer"]["children"]
    assert [e["node"]["name"] for e in first["edges"]] == ["Plant A"]
    cursor = first["pageInfo"]["endCursor"]
    assert first["pageInfo"]["hasNextPage"]
    rest = (await gql.data("admin", page, {"id": group["Hold"], "after": cursor}))["customer"]
    assert [e["node"]["name"] for e in rest["children"]["edges"]] == ["Plant B"]
    assert not rest["children"]["pageInfo"]["hasNextPage"]
    bad = await gql.execute("admin", page, {"id": group["Hold"], "after": "nope"})
    assert error_codes(bad) == ["BAD_USER_INPUT"]


async def test_filters_by_parent_root_and_units(gql: GraphQLClient, group: dict[str, str]) -> None:
    query = """query($f: CustomerFilter) { customers(filter: $f, first: 50) {
      totalCount edges { node { name } } } }"""

    async def names(f: dict[str, Any]) -> set[str]:
        data = await gql.data("admin", query, {"f": f})
        return {e["node"]["name"] for e in data["customers"]["edges"]}

    assert await names({"parentId": group["Hold"]}) == {"Plant A", "Plant B"}
    assert await names({"rootId": group["Hold"]}) == {"Hold", "Plant A", "Plant B", "Line 1"}
    assert await names({"hasChildren": True}) == {"Hold", "Plant A"}
    assert await names({"hasChildren": False}) == {"Plant B", "Line 1", "Solo"}


async def test_a_cycle_is_refused_naming_the_parent(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    for parent in ("Hold", "Line 1"):  # itself, and a unit below it
        body = await _move(gql, services, "admin", group["Hold"], group[parent])
        assert error_codes(body) == ["BAD_USER_INPUT"]
        (error,) = body["errors"]
        assert error["extensions"]["fields"][0]["path"] == "input.parentId"
        assert "cycle" in error["extensions"]["fields"][0]["reason"]
    line = (await gql.data("admin", TREE, {"id": group["Line 1"]}))["customer"]
    assert line["root"] == {"id": group["Hold"]}


async def test_the_depth_limit_is_held(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    parent = group["Solo"]
    for level in range(1, MAX_DEPTH):
        created = await services.customers.create(
            ADMIN, {"name": f"Level {level}"}, parent_id=parent, auto_assign=False
        )
        parent = created.id
    with pytest.raises(Exception, match="deeper than"):
        await services.customers.create(ADMIN, {"name": "Too deep"}, parent_id=parent)
    # Moving a two-level subtree (Plant A, Line 1) under the chain's level 6 would make it
    # deeper than the limit too; under level 5 it just fits.
    async with services.db.reader() as session:
        levels = dict((await session.execute(select(Customer.name, Customer.id))).all())
    body = await _move(gql, services, "admin", group["Plant A"], levels["Level 6"])
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "deeper than" in body["errors"][0]["extensions"]["fields"][0]["reason"]
    body = await _move(gql, services, "admin", group["Plant A"], levels["Level 5"])
    assert body["data"]["moveCustomer"]["customer"]["root"] == {"id": group["Solo"]}


async def test_a_move_is_audited_moves_the_subtree_and_is_a_reorganization(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    """tm.li moves Plant A (and Line 1 below it) to Solo. With a rule "units follow the parent's
    owner", the move re-applies the rules to the moved accounts: Plant A, am.chen's, is now
    under am.wu's Solo, so a REORGANIZATION request to am.wu opens; Line 1, am.wu's, follows
    the owner Plant A is given in the same run, am.wu, so it stays. Nothing else is touched."""
    await services.assignment.create_rule(
        ADMIN,
        {
            "name": "units follow their group",
            "priority": 1,
            "strategy": Strategy.INHERIT_PARENT_OWNER,
            "conditions": {},
        },
    )
    body = await _move(gql, services, "tm.li", group["Plant A"], group["Solo"])
    assert "errors" not in body, body
    moved = body["data"]["moveCustomer"]["customer"]
    assert moved["parent"] == {"id": group["Solo"]} and moved["root"] == {"id": group["Solo"]}
    line = (await gql.data("admin", TREE, {"id": group["Line 1"]}))["customer"]
    assert line["root"] == {"id": group["Solo"]}
    assert line["ancestors"] == [{"id": group["Solo"]}, {"id": group["Plant A"]}]
    audit = await gql.data(
        "admin",
        """query($id: ID) { auditLog(filter: {entityId: $id, action: "moveCustomer"}) {
          edges { node { actor { id } reason changes { field before after } } } } }""",
        {"id": group["Plant A"]},
    )
    (entry,) = [e["node"] for e in audit["auditLog"]["edges"]]
    assert entry["actor"] == {"id": "tm.li"} and entry["reason"] == "group restructured"
    assert entry["changes"] == [
        {"field": "parent", "before": group["Hold"], "after": group["Solo"]}
    ]
    async with services.db.reader() as session:
        requests = list(await session.scalars(select(ReassignmentRequest)))
    assert {(r.customer_id, r.trigger.value, r.to_owner_id) for r in requests} == {
        (group["Plant A"], "REORGANIZATION", "am.wu"),
    }


async def test_a_move_needs_the_customer_in_scope_and_a_visible_parent(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    # am.chen cannot move am.wu's Plant B (out of his scope) ...
    assert error_codes(await _move(gql, services, "am.chen", group["Plant B"], None)) == [
        "NOT_FOUND"
    ]
    # ... nor put his Plant A under am.wu's Solo's unseen sibling: Solo itself he cannot see.
    await services.customers.create(ADMIN, {"name": "Other"}, owner_id="am.wu")
    async with services.db.reader() as session:
        other = await session.scalar(select(Customer.id).where(Customer.name == "Other"))
    body = await _move(gql, services, "am.chen", group["Plant A"], other)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == "input.parentId"


async def _finance_director(services: Services) -> None:
    """gd.fin: finance-like field rules (identity and payment, no revenue), OWN scope."""
    system = Actor.system()
    for obj, action in (
        ("Customer", "scope:OWN"),
        ("Customer.name", "read"),
        ("Customer.paymentTermsDays", "read"),
        ("Customer.children", "read"),
        ("Query.customer", "call"),
        ("Query.customers", "call"),
    ):
        await services.policies.grant(system, "group_finance", obj, action)
    await services.users.create(system, "gd.fin", "Fin", roles=["group_finance"])


async def test_a_group_director_sees_every_unit_within_their_field_rules(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    await _finance_director(services)
    query = """{ customers(first: 50) { edges { node { name annualRevenue } } } }"""
    assert (await gql.data("gd.fin", query.replace(" annualRevenue", "")))["customers"] == {
        "edges": []
    }
    set_director = """mutation($input: SetGroupDirectorInput!) {
      setGroupDirector(input: $input) { customer { groupDirector { id } } } }"""
    refused = await gql.execute(
        "am.chen", set_director, {"input": {"customerId": group["Hold"], "directorId": "gd.fin"}}
    )
    assert error_codes(refused) == ["FORBIDDEN"]
    not_top = await gql.execute(
        "sd.wang", set_director, {"input": {"customerId": group["Line 1"], "directorId": "gd.fin"}}
    )
    assert error_codes(not_top) == ["BAD_USER_INPUT"]
    done = await gql.data(
        "sd.wang", set_director, {"input": {"customerId": group["Hold"], "directorId": "gd.fin"}}
    )
    assert done["setGroupDirector"]["customer"]["groupDirector"] == {"id": "gd.fin"}
    body = await gql.execute("gd.fin", query)
    rows = [e["node"] for e in body["data"]["customers"]["edges"]]
    assert sorted(r["name"] for r in rows) == ["Hold", "Line 1", "Plant A", "Plant B"]
    assert all(r["annualRevenue"] is None for r in rows)
    assert {e["extensions"]["object"] for e in body["errors"]} == {"Customer.annualRevenue"}
    # Seeing is not writing: the director cannot move a unit of the group.
    await services.policies.grant(Actor.system(), "group_finance", "Mutation.moveCustomer", "call")
    await services.policies.grant(Actor.system(), "group_finance", "Customer.parent", "write")
    assert error_codes(await _move(gql, services, "gd.fin", group["Line 1"], None)) == ["FORBIDDEN"]


async def test_rollups_count_only_what_the_viewer_sees(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    """The director sees the whole group; am.chen sees Hold and Plant A (his own) only: am.wu's
    Plant B and Line 1 count neither in his unit count nor in his revenue."""
    await services.tiering.record_activity(
        ADMIN, group["Plant B"], ActivityKind.ORDER, amount=Decimal("70"), category="parts"
    )
    full = (await gql.data("sd.wang", ROLLUP, {"id": group["Hold"]}))["customer"]["rollup"]
    assert full["unitCount"] == 3
    assert Decimal(full["annualRevenue"]) == Decimal("1540")
    assert Decimal(full["orderValue"]) == Decimal("70")
    assert full["owners"] == [
        {"owner": {"id": "am.chen"}, "count": 2},
        {"owner": {"id": "am.wu"}, "count": 2},
    ]
    assert full["worstHealthLevel"] in {"GREEN", "YELLOW", "ORANGE", "RED"}
    own = (await gql.data("am.chen", ROLLUP, {"id": group["Hold"]}))["customer"]["rollup"]
    assert own["unitCount"] == 1
    assert Decimal(own["annualRevenue"]) == Decimal("1200")
    assert Decimal(own["orderValue"]) == Decimal("0")
    assert own["owners"] == [{"owner": {"id": "am.chen"}, "count": 2}]
    # A group and a unit of it asked in one request (one statement for both).
    both = await gql.data(
        "sd.wang",
        """query($hold: ID!, $plant: ID!) {
          hold: customer(id: $hold) { rollup { unitCount annualRevenue } }
          plant: customer(id: $plant) { rollup { unitCount annualRevenue orderValue } } }""",
        {"hold": group["Hold"], "plant": group["Plant A"]},
    )
    sub = both["plant"]["rollup"]
    assert (sub["unitCount"], Decimal(sub["annualRevenue"])) == (1, Decimal("240"))
    assert Decimal(sub["orderValue"]) == Decimal("0")
    assert both["hold"]["rollup"]["unitCount"] == 3


async def test_rollup_health_is_the_stored_health_and_live_for_units_without_it(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    """What the insight refresh stored counts as it is (the portfolio counts the same rows);
    a unit with nothing stored yet is assessed now. Line 1 stored RED with two warnings makes
    the group RED, and a unit outside Line 1's subtree does not."""
    live = (await gql.data("sd.wang", ROLLUP, {"id": group["Hold"]}))["customer"]["rollup"]
    assert live["openWarningCount"] == 0  # no activity anywhere: nothing to warn about
    async with services.db.transaction() as session:
        session.add(
            CustomerHealthRow(
                customer_id=group["Line 1"],
                score=20,
                level="RED",
                warnings=2,
                computed_at=services.clock.now(),
            )
        )
    hold = (await gql.data("sd.wang", ROLLUP, {"id": group["Hold"]}))["customer"]["rollup"]
    assert (hold["worstHealthLevel"], hold["openWarningCount"]) == ("RED", 2)
    plant_b = (await gql.data("sd.wang", ROLLUP, {"id": group["Plant B"]}))["customer"]["rollup"]
    assert (plant_b["worstHealthLevel"], plant_b["openWarningCount"]) == (
        live["worstHealthLevel"],
        0,
    )


async def test_a_rollup_of_a_field_the_viewer_may_not_read_is_forbidden(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    await _finance_director(services)
    await services.groups.set_group_director(ADMIN, group["Hold"], "gd.fin")
    body = await gql.execute("gd.fin", ROLLUP, {"id": group["Hold"]})
    rollup = body["data"]["customer"]["rollup"]
    assert rollup["unitCount"] == 3  # Customer.children is readable
    for name in ("annualRevenue", "orderValue", "worstHealthLevel", "openWarningCount", "owners"):
        assert rollup[name] is None, name
    denied = {(tuple(e["path"][-1:]), e["extensions"]["object"]) for e in body["errors"]}
    assert denied == {
        (("annualRevenue",), "Customer.annualRevenue"),
        (("orderValue",), "Customer.annualRevenue"),
        (("worstHealthLevel",), "CustomerHealth.level"),
        (("openWarningCount",), "CustomerHealth.warnings"),
        (("owners",), "Customer.owner"),
    }
    assert set(error_codes(body)) == {"FORBIDDEN_FIELD"}


UNIT = "id name owner { id name } team { role user { id } } health { level }"
DIRECTOR_TREE = f"""query($root: ID!) {{ customer(id: $root) {{ {UNIT}
  rollup {{ unitCount annualRevenue orderValue worstHealthLevel openWarningCount
    owners {{ owner {{ id }} count }} }}
  children(first: 20) {{ totalCount edges {{ node {{ {UNIT} parent {{ id }}
    children(first: 20) {{ totalCount edges {{ node {{ {UNIT} root {{ id }} ancestors {{ id }}
    }} }} }} }} }} }} }} }}"""


async def test_a_tree_costs_the_same_statements_for_more_units(
    gql: GraphQLClient, services: Services, group: dict[str, str]
) -> None:
    """The "done when" request: a sales director reads the group's tree, two levels of units
    with each one's owner, team and health band, and the group's roll-ups. The number of
    statements does not grow with the number of units at either level."""

    async def statements() -> tuple[dict[str, Any], int]:
        counted: list[str] = []
        engine = services.db.engine.sync_engine
        listener = lambda *args: counted.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            data = await gql.data("sd.wang", DIRECTOR_TREE, {"root": group["Hold"]})
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return data["customer"], len(counted)

    await statements()  # the first request of the process also loads the policies
    before, count = await statements()
    assert before["rollup"]["unitCount"] == 3
    for i in range(3):
        await services.customers.create(
            ADMIN, {"name": f"Plant {i}"}, owner_id="am.wu", parent_id=group["Hold"]
        )
        for parent in ("Plant A", "Plant B"):
            await services.customers.create(
                ADMIN, {"name": f"Branch {i}"}, owner_id="am.chen", parent_id=group[parent]
            )
    after, more = await statements()
    assert after["rollup"]["unitCount"] == 12
    plants = [e["node"] for e in after["children"]["edges"]]
    assert len(plants) == after["children"]["totalCount"] == 5
    units = [e["node"] for p in plants for e in p["children"]["edges"]]
    assert len(units) == 7 and all(u["health"]["level"] and u["owner"] for u in units)
    assert all(u["ancestors"][0] == {"id": group["Hold"]} for u in units)
    assert more == count


GROUP_PAGE = """query($root: ID!) {
  customer(id: $root) { name groupDirector { id } team { role user { id } }
    rollup { unitCount annualRevenue worstHealthLevel owners { owner { id } count } } }
  customers(filter: {rootId: $root}, first: 100) { edges { node {
    name parent { name } owner { id } team { role user { id } } health { level } } } } }"""


async def test_a_sales_director_reads_a_demo_group_in_one_request(
    gql: GraphQLClient, services: Services
) -> None:
    """The "done when" of issue 20, on the demo data: the group's tree with each unit's owner,
    team and health band, and the group's roll-ups, in one request, as each role allows."""
    await seed_demo(services, 50)
    async with services.db.reader() as session:
        root = await session.scalar(
            select(Customer.id).where(Customer.name == "Jade Automotive Group")
        )
    data = await gql.data("sd.wang", GROUP_PAGE, {"root": root})
    group = data["customer"]
    assert group["groupDirector"] == {"id": "tm.li"}
    assert {m["user"]["id"] for m in group["team"]} == {"cs.liu", "fin.he"}
    assert group["rollup"]["unitCount"] == 4
    assert group["rollup"]["worstHealthLevel"] in {"GREEN", "YELLOW", "ORANGE", "RED"}
    assert sum(o["count"] for o in group["rollup"]["owners"]) == 5
    units = {e["node"]["name"]: e["node"] for e in data["customers"]["edges"]}
    assert units["Jade Hangzhou Body Shop"]["parent"] == {"name": "Jade Motors Hangzhou Plant"}
    assert units["Jade Electronics Tianjin"]["owner"] == {"id": "am.sun"}
    assert all(u["health"]["level"] for u in units.values())
    # Finance reads the same page within its field rules: the name, not revenue, owners or the
    # team; and it may not list by group, since it may not read `root` (no oracle).
    body = await gql.execute("fin.he", GROUP_PAGE, {"root": root})
    assert body["data"]["customer"]["name"] == "Jade Automotive Group"
    assert body["data"]["customer"]["rollup"]["annualRevenue"] is None
    assert body["data"]["customers"] is None
    denied = {e["extensions"].get("object") for e in body["errors"]}
    assert {"Customer.annualRevenue", "Customer.owner", "Customer.team"} <= denied
    forbidden = [e["extensions"] for e in body["errors"] if e["path"] == ["customers"]]
    assert forbidden == [{"code": "FORBIDDEN", "objects": ["Customer.root"]}]
