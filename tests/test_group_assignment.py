"""Assignment by group (a unit inherits its parent's owner; conditions on the group's
top-level account) in explain and preview, and the group handover: a preview of exactly which
units move, then one request per unit, each reviewed under its own tier's rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from core.domain import ReassignmentRequest, Strategy, ValueTier
from core.services import Actor, Services
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
    # Plant B (am.wu) would follow Hold (am.chen); Loose would get Plant B's am.wu; Plant A
    # and Line 1 already follow; Hold has no parent and keeps am.chen.
    assert moves == {
        "Plant B": ({"id": "am.wu"}, {"id": "am.chen"}),
        "Loose": (None, {"id": "am.wu"}),
    }
    assert (preview["unchangedCount"], preview["unassignedCount"]) == (3, 0)
    rules[0]["conditions"] = {"rootValueTiers": ["LOW"]}
    data = await gql.data("admin", PREVIEW, {"rules": rules, "ids": list(group.values())})
    assert data["previewAssignment"]["moves"] == []


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
