"""Activities, health, risk warnings and the tier review, over GraphQL on both databases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.clock import FixedClock
from core.domain import ActivityKind
from core.insight.facts import CustomerFacts, Period
from core.insight.health import assess
from core.insight.indicators import CORE_INDICATORS, Inputs, read
from core.services import Actor, Services
from core.services.insight import Population, decide
from sdk.specs import ActivityWindow, CustomerSnapshot
from tests.conftest import GraphQLClient, error_codes

RECORD = """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
  customer { valueTier loyaltyTier health { score level } }
  movements { tier before after reason } } }"""
HEALTH = """query($id: ID!) { customer(id: $id) {
  health { score level warnings { level code message signal since } } } }"""


async def customer(gql: GraphQLClient, **fields: Any) -> str:
    data = await gql.data(
        "admin",
        """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
          customer { id } } }""",
        {"input": {"name": "Acme", "lifecycleStage": "ACTIVE", **fields}},
    )
    return data["createCustomer"]["customer"]["id"]  # type: ignore[no-any-return]


async def record(gql: GraphQLClient, cid: str, kind: str, clock: FixedClock, **extra: Any) -> Any:
    data = await gql.data(
        "admin",
        RECORD,
        {"input": {"customerId": cid, "kind": kind, "at": clock.now().isoformat(), **extra}},
    )
    return data["recordActivity"]


async def test_no_order_for_two_months_asks_for_contact_within_48_hours(
    gql: GraphQLClient, admin: str, clock: FixedClock
) -> None:
    cid = await customer(gql)
    for _ in range(3):
        await record(gql, cid, "ORDER", clock, amount="1000", category="valves")
        clock.advance(timedelta(days=7))
    healthy = (await gql.data("admin", HEALTH, {"id": cid}))["customer"]["health"]
    assert healthy == {"score": 100, "level": "GREEN", "warnings": []}
    clock.advance(timedelta(days=61))
    health = (await gql.data("admin", HEALTH, {"id": cid}))["customer"]["health"]
    (warning,) = health["warnings"]
    assert (warning["level"], warning["code"], warning["signal"]) == (
        "FOLLOW_UP",
        "NO_RECENT_ORDER",
        "orderRecency",
    )
    assert "48 h" in warning["message"]
    assert health["score"] == 80


async def test_intent_to_leave_goes_to_retention_and_marks_churn_risk(
    gql: GraphQLClient, admin: str, clock: FixedClock
) -> None:
    cid = await customer(gql)
    result = await record(gql, cid, "LEAVE_INTENT", clock, note="competitor offer")
    assert result["customer"]["loyaltyTier"] == "CHURN_RISK"
    assert {"tier": "loyalty", "before": None, "after": "CHURN_RISK"}.items() <= next(
        m for m in result["movements"] if m["tier"] == "loyalty"
    ).items()
    data = await gql.data(
        "admin",
        "{ riskWarnings(level: RETENTION) { edges { node { customer { id } health { level } } } } "
        "}",
    )
    assert [e["node"]["customer"]["id"] for e in data["riskWarnings"]["edges"]] == [cid]


async def test_a_big_order_lifts_the_value_tier_at_once(
    gql: GraphQLClient, admin: str, clock: FixedClock
) -> None:
    small = [await customer(gql, annualRevenue=str(100_000 * (i + 1))) for i in range(9)]
    big = await customer(gql, annualRevenue="50000")
    await gql.data("admin", "mutation { runTierReview(input: {}) { reviewed } }")
    result = await record(gql, big, "ORDER", clock, amount="5000000", category="turbines")
    assert result["customer"]["valueTier"] == "HIGH"
    assert any(m["tier"] == "value" and m["after"] == "HIGH" for m in result["movements"])
    assert len(small) == 9


async def test_the_review_moves_tiers_reports_and_audits_each_change(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    ids = [
        await customer(gql, annualRevenue=str(1_000_000 * (i + 1)), strategicFit=90)
        for i in range(5)
    ]
    review = (
        "mutation { runTierReview(input: {}) { reviewed movements { customerId tier after } } }"
    )
    first = (await gql.data("admin", review))["runTierReview"]
    assert first["reviewed"] == 5
    top = {m["customerId"]: m["after"] for m in first["movements"] if m["tier"] == "value"}
    assert top[ids[-1]] == "STRATEGIC"
    again = await gql.data("admin", "mutation { runTierReview(input: {}) { movements { tier } } }")
    assert again["runTierReview"]["movements"] == []  # same data, same tiers
    audit = await gql.data(
        "admin",
        """query($id: ID!) { auditLog(filter: {entityId: $id, action: "runTierReview"}) {
          edges { node { reason changes { field after } } } } }""",
        {"id": ids[-1]},
    )
    (entry,) = audit["auditLog"]["edges"]
    assert {"field": "valueTier", "after": "STRATEGIC"} in entry["node"]["changes"]


async def test_bad_activity_input_names_the_field(gql: GraphQLClient, admin: str) -> None:
    cid = await customer(gql)
    body = await gql.execute(
        "admin", RECORD, {"input": {"customerId": cid, "kind": "INTERACTION", "amount": "5"}}
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"][0]["path"].endswith("amount")


async def test_health_is_withheld_from_finance(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    cid = await customer(gql)
    body = await gql.execute("fin.zhao", HEALTH, {"id": cid})
    assert body["data"]["customer"]["health"] == {"score": None, "level": None, "warnings": None}
    assert set(error_codes(body)) == {"FORBIDDEN_FIELD"}


windows = st.builds(
    ActivityWindow,
    orders=st.integers(0, 20),
    order_amount=st.decimals(0, 10**7, places=2),
    categories=st.frozensets(st.sampled_from("abcdefg")),
    interactions=st.integers(0, 20),
    complaints=st.integers(0, 10),
)


@given(recent=windows, previous=windows, revenue=st.decimals(0, 10**8, places=2))
def test_scores_stay_in_range_and_plugin_votes_never_lower_a_tier(
    recent: ActivityWindow, previous: ActivityWindow, revenue: Decimal
) -> None:
    from datetime import UTC, datetime

    from core.plugins import builtin_plugins

    now = datetime(2026, 6, 1, tzinfo=UTC)
    snapshot = CustomerSnapshot(
        id="cus_x",
        as_of=now,
        name="X",
        kind="ENTERPRISE",
        industry=None,
        territory=None,
        product_lines=(),
        lifecycle_stage="ACTIVE",
        value_tier=None,
        needs_tier=None,
        loyalty_tier=None,
        annual_revenue=revenue,
        profit_contribution=None,
        growth_potential=None,
        strategic_fit=None,
        recent=recent,
        previous=previous,
        year=recent,
        last_order_at=now - timedelta(days=1) if recent.orders else None,
    )
    periods = [
        Period(
            orders=w.orders,
            order_amount=w.order_amount,
            order_amount_sq=float(w.order_amount) ** 2 / max(1, w.orders),
            order_categories=set(w.categories),
            interactions=w.interactions,
            complaints=w.complaints,
        )
        for w in (recent, previous)
    ]
    facts = CustomerFacts("cus_x", now, periods + [Period() for _ in range(6)])
    health = assess(read(CORE_INDICATORS, Inputs(facts), {}), snapshot, [], facts)
    assert 0 <= health.score <= 100
    population = Population(Decimal(10**6), Decimal(10**5), None)
    core_only = decide(snapshot, population, health, [])
    with_plugins = decide(snapshot, population, health, builtin_plugins().tier_criteria)
    order = ("LOW", "MEDIUM", "HIGH", "STRATEGIC")
    assert order.index(with_plugins.value) >= order.index(core_only.value)
    assert ActivityKind.ORDER.value == "ORDER"


async def test_movements_withhold_tiers_the_caller_may_not_read(
    gql: GraphQLClient, admin: str, services: Services, clock: FixedClock
) -> None:
    await services.users.create(Actor.system(), "cs.liu", "Liu", roles=["customer_service"])
    cid = await customer(gql)
    body = await gql.data(
        "cs.liu",
        """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
          movements { tier before after reason redacted } } }""",
        {"input": {"customerId": cid, "kind": "LEAVE_INTENT"}},
    )
    movements = {m["tier"]: m for m in body["recordActivity"]["movements"]}
    # customer_service reads needsTier but not loyaltyTier.
    assert movements["loyalty"] == {
        "tier": "loyalty",
        "before": None,
        "after": None,
        "reason": None,
        "redacted": True,
    }
    assert "CHURN_RISK" not in str(body)
    assert movements["needs"]["redacted"] is False
