"""Hand-set tiers: kept by the review until they expire, audited, authorised."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.clock import FixedClock
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

OVERRIDE = """mutation($input: OverrideTierInput!) { overrideTier(input: $input) {
  customer { valueTier tierOverrides { tier value reason expiresAt setBy { id } } } } }"""
REVIEW = """mutation { runTierReview(input: {}) {
  movements { customerId tier before after reason } } }"""


async def customers(gql: GraphQLClient, n: int) -> list[str]:
    ids = []
    for i in range(n):
        data = await gql.data(
            "admin",
            """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
              customer { id } } }""",
            {"input": {"name": f"C{i}", "lifecycleStage": "ACTIVE", "annualRevenue": str(i)}},
        )
        ids.append(data["createCustomer"]["customer"]["id"])
    return ids


async def value_tier(gql: GraphQLClient, cid: str) -> Any:
    data = await gql.data(
        "admin", "query($id: ID!) { customer(id: $id) { valueTier } }", {"id": cid}
    )
    return data["customer"]["valueTier"]


async def test_the_review_keeps_an_override_until_it_expires(
    gql: GraphQLClient, admin: str, clock: FixedClock
) -> None:
    small, *_ = await customers(gql, 3)
    await gql.data("admin", REVIEW)
    assert await value_tier(gql, small) == "LOW"
    expires = (clock.now() + timedelta(days=10)).isoformat()
    data = await gql.data(
        "admin",
        OVERRIDE,
        {
            "input": {
                "customerId": small,
                "tier": "VALUE",
                "value": "STRATEGIC",
                "reason": "group contract signed",
                "expiresAt": expires,
            }
        },
    )
    customer = data["overrideTier"]["customer"]
    assert customer["valueTier"] == "STRATEGIC"
    (override,) = customer["tierOverrides"]
    assert (override["tier"], override["value"], override["setBy"]) == (
        "VALUE",
        "STRATEGIC",
        {"id": "admin"},
    )
    review = (await gql.data("admin", REVIEW))["runTierReview"]
    assert [m for m in review["movements"] if m["customerId"] == small] == []
    assert await value_tier(gql, small) == "STRATEGIC"
    clock.advance(timedelta(days=10, seconds=1))
    review = (await gql.data("admin", REVIEW))["runTierReview"]
    moved = [m for m in review["movements"] if m["customerId"] == small and m["tier"] == "value"]
    assert [(m["before"], m["after"]) for m in moved] == [("STRATEGIC", "LOW")]
    assert await value_tier(gql, small) == "LOW"
    audit = await gql.data(
        "admin",
        """query($id: ID!) { auditLog(filter: {entityId: $id, action: "overrideTier"}) {
          edges { node { reason changes { field before after } } } } }""",
        {"id": small},
    )
    (entry,) = [e["node"] for e in audit["auditLog"]["edges"]]
    assert entry["changes"] == [{"field": "valueTier", "before": "LOW", "after": "STRATEGIC"}]
    assert entry["reason"] == f"override until {expires}: group contract signed"


async def test_a_cleared_override_lets_the_next_review_decide(
    gql: GraphQLClient, admin: str
) -> None:
    (cid,) = await customers(gql, 1)
    given = {"customerId": cid, "tier": "LOYALTY", "value": "LOYAL", "reason": "old friend"}
    await gql.data("admin", OVERRIDE, {"input": given})
    moved = (await gql.data("admin", REVIEW))["runTierReview"]["movements"]
    assert [m for m in moved if m["tier"] == "loyalty"] == []
    loyalty = "query($id: ID!) { customer(id: $id) { loyaltyTier tierOverrides { tier } } }"
    assert (await gql.data("admin", loyalty, {"id": cid}))["customer"] == {
        "loyaltyTier": "LOYAL",
        "tierOverrides": [{"tier": "LOYALTY"}],
    }
    await gql.data(
        "admin",
        """mutation($input: ClearTierOverrideInput!) { clearTierOverride(input: $input) {
          customer { id } } }""",
        {"input": {"customerId": cid, "tier": "LOYALTY"}},
    )
    await gql.data("admin", REVIEW)
    assert (await gql.data("admin", loyalty, {"id": cid}))["customer"] == {
        "loyaltyTier": "GENERAL",
        "tierOverrides": [],
    }


async def test_bad_overrides_are_refused_and_unwritable_tiers_forbidden(
    gql: GraphQLClient, admin: str, services: Services, clock: FixedClock
) -> None:
    await services.users.create(Actor.system(), "cs.liu", "Liu", roles=["customer_service"])
    (cid,) = await customers(gql, 1)
    base = {"customerId": cid, "tier": "VALUE", "value": "HIGH", "reason": "x"}
    past = (clock.now() - timedelta(days=1)).isoformat()
    for bad, path in (
        ({"value": "GOLD"}, "value"),
        ({"reason": " "}, "reason"),
        ({"expiresAt": past}, "expiresAt"),
        ({"tier": "ENGAGEMENT", "value": "HIGH"}, "value"),
    ):
        body = await gql.execute("admin", OVERRIDE, {"input": {**base, **bad}})
        assert error_codes(body) == ["BAD_USER_INPUT"], bad
        assert body["errors"][0]["extensions"]["fields"][0]["path"].endswith(path)
    body = await gql.execute("tm.li", OVERRIDE, {"input": base})
    assert error_codes(body) == ["NOT_FOUND"]  # out of the team manager's scope
    body = await gql.execute("cs.liu", OVERRIDE, {"input": base})
    assert error_codes(body) == ["FORBIDDEN"]
    assert await value_tier(gql, cid) is None  # nothing written
