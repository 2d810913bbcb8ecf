"""The health indicators over GraphQL on both databases, against hand-computed values."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.clock import FixedClock
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

RECORD = """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
  movements { tier } } }"""
INDICATORS = """query($id: ID!) { customer(id: $id) { health { score level
  warnings { level code signal }
  indicators { name value band trend explanation } } } }"""


async def customer(gql: GraphQLClient, **fields: Any) -> str:
    data = await gql.data(
        "admin",
        """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
          customer { id } } }""",
        {"input": {"name": "Acme", "lifecycleStage": "ACTIVE", **fields}},
    )
    return data["createCustomer"]["customer"]["id"]  # type: ignore[no-any-return]


async def activity(gql: GraphQLClient, cid: str, kind: str, days_ago: int, **extra: Any) -> None:
    at = (gql.clock.now() - timedelta(days=days_ago)).isoformat()
    await gql.data(
        "admin",
        RECORD,
        {"input": {"customerId": cid, "kind": kind, "at": at, **extra}},
    )


async def answer(gql: GraphQLClient, cid: str, kind: str, score: int, days_ago: int) -> None:
    at = (gql.clock.now() - timedelta(days=days_ago)).isoformat()
    await gql.data(
        "admin",
        """mutation($input: RecordSurveyAnswerInput!) { recordSurveyAnswer(input: $input) {
          survey { id status } } }""",
        {"input": {"customerId": cid, "kind": kind, "score": score, "answeredAt": at}},
    )


async def worked_example(gql: GraphQLClient) -> str:
    """The worked example of docs/guides/health-and-surveys.md."""
    cid = await customer(gql)
    for days, amount, category in ((150, 1000, "valves"), (120, 1000, "pumps")):
        await activity(gql, cid, "ORDER", days, amount=str(amount), category=category)
    for days, amount in ((60, 1500), (10, 500)):
        await activity(gql, cid, "ORDER", days, amount=str(amount), category="valves")
    await activity(gql, cid, "INTERACTION", 30)
    await activity(gql, cid, "COMPLAINT", 20)
    await activity(gql, cid, "INTERACTION", 5)
    await activity(gql, cid, "PAYMENT", 40, daysLate=0)
    await activity(gql, cid, "PAYMENT", 8, daysLate=10)
    await activity(gql, cid, "REFERRAL", 100)
    await answer(gql, cid, "NPS", 6, 7)
    await answer(gql, cid, "SATISFACTION", 4, 3)
    return cid


def by_name(health: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in health["indicators"]}


async def test_the_worked_example_gives_the_hand_computed_indicators_score_and_warnings(
    gql: GraphQLClient, admin: str
) -> None:
    cid = await worked_example(gql)
    health = (await gql.data("admin", INDICATORS, {"id": cid}))["customer"]["health"]
    found = {n: (i["value"], i["band"]) for n, i in by_name(health).items()}
    assert found == {
        "orderFrequency": (2, "YELLOW"),
        "orderRecency": (10, "GREEN"),
        "categoryChange": (-50, "RED"),
        "interactionFrequency": (2, "GREEN"),
        "complaintCount": (1, "YELLOW"),
        "orderStability": (35.4, "GREEN"),  # amounts 1000 1000 1500 500: sd 353.6, mean 1000
        "satisfaction": (4, "GREEN"),
        "willingnessToRecommend": (6, "RED"),
        "customerEffort": (None, None),
        "needResponseTime": (15, "RED"),  # complaint 20 days ago, answered 5 days ago
        "repurchaseRate": (50, "YELLOW"),  # valves again, pumps not
        "aovGrowth": (0, "GREEN"),  # 2000 / 2 orders both periods
        "referralRate": (1, "GREEN"),
        "paymentPunctuality": (50, "RED"),
        "leaveIntent": (0, "GREEN"),
        "bankingNetFlow": (None, None),
    }
    # 100 - 5 (orders, yellow) - 20 (categories) - 12 (complaints, yellow) - 15 (NPS)
    #     - 10 (response time) - 5 (repurchase, yellow) - 10 (payments)
    assert (health["score"], health["level"]) == (23, "RED")
    assert [(w["level"], w["code"], w["signal"]) for w in health["warnings"]] == [
        ("DIAGNOSIS", "CATEGORIES_DOWN", "categoryChange"),
        ("DIAGNOSIS", "DETRACTOR", "willingnessToRecommend"),
        ("FOLLOW_UP", "LATE_PAYMENTS", "paymentPunctuality"),
        ("FOLLOW_UP", "SLOW_RESPONSE", "needResponseTime"),
    ]
    indicators = by_name(health)
    # Periods end now, 90, 180 and 270 days ago: orders 0, 0, 2, 2.
    assert indicators["orderFrequency"]["trend"] == [0, 0, 2, 2]
    assert indicators["categoryChange"]["trend"] == [None, None, None, -50]
    assert (
        "Now 2 orders: YELLOW (green ≥ 3, yellow ≥ 1)"
        in (indicators["orderFrequency"]["explanation"])
    )


async def test_an_admin_tunes_thresholds_audited_and_the_band_and_score_follow(
    gql: GraphQLClient, admin: str
) -> None:
    cid = await worked_example(gql)
    tune = """mutation($input: SetIndicatorThresholdsInput!) { setIndicatorThresholds(
      input: $input) { indicator { name green yellow defaultGreen higherIsBetter } } }"""
    data = await gql.data(
        "admin",
        tune,
        {"input": {"indicator": "orderFrequency", "green": 2, "yellow": 1, "reason": "small"}},
    )
    assert data["setIndicatorThresholds"]["indicator"] == {
        "name": "orderFrequency",
        "green": 2,
        "yellow": 1,
        "defaultGreen": 3,
        "higherIsBetter": True,
    }
    health = (await gql.data("admin", INDICATORS, {"id": cid}))["customer"]["health"]
    assert by_name(health)["orderFrequency"]["band"] == "GREEN"
    assert health["score"] == 28
    audit = await gql.data(
        "admin",
        """{ auditLog(filter: {action: "setIndicatorThresholds"}) { edges { node {
          entityType entityId reason changes { field before after } } } } }""",
    )
    (entry,) = [e["node"] for e in audit["auditLog"]["edges"]]
    assert entry == {
        "entityType": "HealthIndicator",
        "entityId": "order_frequency",
        "reason": "small",
        "changes": [
            {
                "field": "orderFrequency",
                "before": {"green": 3, "yellow": 1},
                "after": {"green": 2, "yellow": 1},
            }
        ],
    }
    await gql.data("admin", tune, {"input": {"indicator": "orderFrequency"}})
    health = (await gql.data("admin", INDICATORS, {"id": cid}))["customer"]["health"]
    assert (by_name(health)["orderFrequency"]["band"], health["score"]) == ("YELLOW", 23)


async def test_bad_thresholds_and_unknown_indicators_are_refused_with_nothing_written(
    gql: GraphQLClient, admin: str
) -> None:
    tune = """mutation($input: SetIndicatorThresholdsInput!) { setIndicatorThresholds(
      input: $input) { indicator { green } } }"""
    for given, path in (
        ({"indicator": "orderFrequency", "green": 1, "yellow": 3}, "green"),
        ({"indicator": "complaintCount", "green": 3, "yellow": 1}, "green"),
        ({"indicator": "orderFrequency", "green": 1}, "yellow"),
        ({"indicator": "nope", "green": 1, "yellow": 0}, "indicator"),
    ):
        body = await gql.execute("admin", tune, {"input": given})
        assert error_codes(body) == ["BAD_USER_INPUT"], given
        assert body["errors"][0]["extensions"]["fields"][0]["path"].endswith(path)
    listed = await gql.data("admin", "{ healthIndicators { name green yellow } }")
    assert {"name": "orderFrequency", "green": 3, "yellow": 1} in listed["healthIndicators"]
    body = await gql.execute(
        "am.chen", tune, {"input": {"indicator": "orderFrequency", "green": 2, "yellow": 1}}
    )
    assert error_codes(body) == ["FORBIDDEN"]


async def test_tuning_an_indicator_needs_write_on_it_not_only_the_call(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    """A role that may call the mutation tunes only the indicators it may write: the others
    are FORBIDDEN, named, and keep their thresholds."""
    system = Actor.system()
    await services.policies.grant(system, "tuner", "Mutation.setIndicatorThresholds", "call")
    await services.policies.grant(system, "tuner", "HealthIndicator.paymentPunctuality", "write")
    await services.policies.grant(system, "tuner", "HealthIndicator.paymentPunctuality", "read")
    await services.users.create(system, "ops.tu", "Tu", roles=["tuner"])
    tune = """mutation($input: SetIndicatorThresholdsInput!) { setIndicatorThresholds(
      input: $input) { indicator { name green yellow } } }"""
    hidden = {"indicator": "leaveIntent", "green": 0, "yellow": 1}
    body = await gql.execute("ops.tu", tune, {"input": hidden})
    assert error_codes(body) == ["FORBIDDEN"]
    assert "HealthIndicator.leaveIntent" in body["errors"][0]["message"]
    listed = await gql.data("admin", "{ healthIndicators { name green yellow } }")
    before = next(i for i in listed["healthIndicators"] if i["name"] == "leaveIntent")
    assert (before["green"], before["yellow"]) != (0, 1)
    allowed = {"indicator": "paymentPunctuality", "green": 95, "yellow": 80}
    done = await gql.data("ops.tu", tune, {"input": allowed})
    assert done["setIndicatorThresholds"]["indicator"]["green"] == 95


async def test_finance_sees_the_payment_indicators_only_and_nothing_else_leaks(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    cid = await worked_example(gql)
    body = await gql.execute("fin.zhao", INDICATORS, {"id": cid})
    health = body["data"]["customer"]["health"]
    assert [(i["name"], i["value"], i["band"]) for i in health["indicators"]] == [
        ("paymentPunctuality", 50, "RED"),
        ("bankingNetFlow", None, None),
    ]
    assert (health["score"], health["level"], health["warnings"]) == (None, None, None)
    assert set(error_codes(body)) == {"FORBIDDEN_FIELD"}
    for secret in ("orderFrequency", "willingnessToRecommend", "CATEGORIES_DOWN", "-50"):
        assert secret not in str(body["data"])
    listed = await gql.data("fin.zhao", "{ healthIndicators { name } }")
    assert [i["name"] for i in listed["healthIndicators"]] == [
        "paymentPunctuality",
        "bankingNetFlow",
    ]


async def test_a_warning_from_an_indicator_the_viewer_may_not_read_is_left_out(
    gql: GraphQLClient, admin: str
) -> None:
    cid = await worked_example(gql)
    # Account managers read every indicator but the payment one (an explicit list instead).
    await gql.data(
        "admin",
        """mutation { revokePermission(input: {role: "account_manager",
          object: "HealthIndicator.*", action: "read"}) { permission { object } } }""",
    )
    await gql.data(
        "admin",
        """mutation { grantPermission(input: {role: "account_manager",
          object: "HealthIndicator.categoryChange", action: "read"}) { permission { object } } }""",
    )
    await gql.data(
        "admin",
        """mutation($input: AssignOwnerInput!) { assignOwner(input: $input) {
          customer { id } } }""",
        {"input": {"customerId": cid, "ownerId": "am.chen"}},
    )
    health = (await gql.data("am.chen", INDICATORS, {"id": cid}))["customer"]["health"]
    assert [i["name"] for i in health["indicators"]] == ["categoryChange"]
    assert [w["code"] for w in health["warnings"]] == ["CATEGORIES_DOWN"]
    assert health["score"] == 23  # the score is its own field, readable as before


async def test_a_customer_whose_warnings_the_viewer_may_not_read_is_not_at_risk_for_them(
    gql: GraphQLClient, admin: str
) -> None:
    """``riskWarnings`` filters, orders and counts by the warnings the viewer may read: a
    customer warned only by hidden indicators is not listed, nor counted."""
    cid = await worked_example(gql)
    for mutation, obj in (
        ("revokePermission", "HealthIndicator.*"),
        ("grantPermission", "HealthIndicator.bankingNetFlow"),
    ):
        await gql.data(
            "admin",
            f"""mutation {{ {mutation}(input: {{role: "account_manager", object: "{obj}",
              action: "read"}}) {{ permission {{ object }} }} }}""",
        )
    await gql.data(
        "admin",
        """mutation($input: AssignOwnerInput!) { assignOwner(input: $input) {
          customer { id } } }""",
        {"input": {"customerId": cid, "ownerId": "am.chen"}},
    )
    query = """{ riskWarnings(first: 10) { totalCount edges { node {
      customer { id } health { warnings { code } } } } } }"""
    everyone = (await gql.data("admin", query))["riskWarnings"]
    assert cid in {e["node"]["customer"]["id"] for e in everyone["edges"]}
    mine = (await gql.data("am.chen", query))["riskWarnings"]
    assert (mine["totalCount"], mine["edges"]) == (0, [])


async def test_bad_payment_input_names_the_field(gql: GraphQLClient, admin: str) -> None:
    cid = await customer(gql)
    for extra in (
        {"kind": "ORDER", "amount": "5", "daysLate": 3},
        {"kind": "PAYMENT", "daysLate": -1},
    ):
        body = await gql.execute(
            "admin",
            RECORD,
            {"input": {"customerId": cid, **extra}},
        )
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert body["errors"][0]["extensions"]["fields"][0]["path"].endswith("daysLate")


async def test_a_plugin_indicator_reads_its_snapshots_trend_included(
    gql: GraphQLClient, admin: str, clock: FixedClock
) -> None:
    cid = await customer(gql)
    await activity(gql, cid, "ORDER", 100, amount="3000000", category="aum")
    await activity(gql, cid, "ORDER", 10, amount="-2000000", category="aum")
    health = (await gql.data("admin", INDICATORS, {"id": cid}))["customer"]["health"]
    flow = by_name(health)["bankingNetFlow"]
    # Now: -2,000,000 in the last 90 days (YELLOW at ≥ -1,000,000? no: RED); before: 3,000,000.
    assert (flow["value"], flow["band"]) == (-2_000_000, "RED")
    assert flow["trend"] == [None, None, 3_000_000, -2_000_000]


async def test_an_upgraded_database_gets_the_indicator_defaults_once_audited(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    from sqlalchemy import delete

    from core.authz.defaults import release_lines
    from core.domain import CasbinRule, PluginInstall

    added = release_lines("core-insight")
    assert ("p", "finance", "HealthIndicator.paymentPunctuality", "read") in added
    # A database from before the release: its defaults lack the new lines and the marker.
    async with services.db.transaction() as session:
        await session.execute(delete(PluginInstall).where(PluginInstall.name == "core-insight"))
        for _, role, obj, act in added:
            await session.execute(
                delete(CasbinRule).where(
                    CasbinRule.v0 == role, CasbinRule.v1 == obj, CasbinRule.v2 == act
                )
            )
    assert await services.policies.ensure_defaults() is True
    assert await services.policies.ensure_defaults() is False  # once
    cid = await worked_example(gql)
    health = (await gql.data("admin", INDICATORS, {"id": cid}))["customer"]["health"]
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    body = await gql.execute("fin.zhao", INDICATORS, {"id": cid})
    assert [i["name"] for i in body["data"]["customer"]["health"]["indicators"]] == [
        "paymentPunctuality",
        "bankingNetFlow",
    ]
    assert len(health["indicators"]) == 16
    audit = await gql.data(
        "admin",
        """{ auditLog(first: 50, filter: {action: "installDefaultPolicies"}) {
          edges { node { entityId reason } } } }""",
    )
    upgraded = [e["node"] for e in audit["auditLog"]["edges"] if e["node"]["reason"]]
    assert {e["entityId"] for e in upgraded} == {r for _, r, _, _ in added}
    assert {e["reason"] for e in upgraded} == {"core-insight"}
