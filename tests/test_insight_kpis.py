"""Retention KPIs per owner and team, and the managers' portfolio, against hand-computed
values."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.insight.service import refresh_job
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

KPIS = """query($by: KpiDimension!, $since: DateTime!, $until: DateTime!) {
  retentionKpis(by: $by, since: $since, until: $until) {
    key customers repurchaseRate churnRate aovGrowth referralRate nps } }"""
PORTFOLIO = """{ portfolio { owner { id } customers capacity load
  byValueTier { tier count } byHealthLevel { tier count } openWarnings overdueHandovers } }"""


async def owned(gql: GraphQLClient, owner: str, activities: list[tuple[str, int, Any]]) -> str:
    data = await gql.data(
        "admin",
        """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
          customer { id } } }""",
        {"input": {"name": owner, "ownerId": owner}},
    )
    cid: str = data["createCustomer"]["customer"]["id"]
    for kind, days, amount in activities:
        given = {"customerId": cid, "kind": kind}
        given["at"] = (gql.clock.now() - timedelta(days=days)).isoformat()
        if amount is not None:
            given["amount"] = str(amount)
        await gql.data(
            "admin",
            "mutation($i: RecordActivityInput!) { recordActivity(input: $i) { customer { id } } }",
            {"i": given},
        )
    return cid


async def test_retention_kpis_per_owner_and_team(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    a = await owned(
        gql,
        "am.chen",
        [("ORDER", 120, 100), ("ORDER", 30, 200), ("ORDER", 10, 100), ("REFERRAL", 5, None)],
    )
    await owned(gql, "am.chen", [("ORDER", 150, 300)])
    await owned(gql, "am.wu", [("ORDER", 20, 500)])
    await gql.data(
        "admin",
        """mutation($input: RecordSurveyAnswerInput!) { recordSurveyAnswer(input: $input) {
          survey { id } } }""",
        {"input": {"customerId": a, "kind": "NPS", "score": 10}},
    )
    window = {
        "since": (gql.clock.now() - timedelta(days=90)).isoformat(),
        "until": (gql.clock.now() + timedelta(seconds=1)).isoformat(),
    }

    async def rows(by: str, user: str = "admin") -> list[tuple[Any, ...]]:
        data = await gql.data(user, KPIS, {"by": by, **window})
        return [tuple(k.values()) for k in data["retentionKpis"]]

    # Chen: A and B bought before, only A again; AOV 300/2 now against 400/2 before.
    assert await rows("OWNER") == [
        ("am.chen", 2, 50.0, 50.0, -25.0, 50.0, 100.0),
        ("am.wu", 1, None, None, None, 0.0, None),
    ]
    # The team: AOV 800/3 now against 200 before; one referrer in three customers.
    assert await rows("TEAM", "tm.li") == [("east", 3, 50.0, 50.0, 33.3, 33.3, 100.0)]
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    body = await gql.execute("fin.zhao", KPIS, {"by": "OWNER", **window})
    assert error_codes(body) == ["FORBIDDEN"]


async def test_the_portfolio_counts_each_owners_customers_by_tier_and_health(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await owned(gql, "am.chen", [("ORDER", 10, 100)])
    await owned(gql, "am.chen", [("LEAVE_INTENT", 1, None)])
    await owned(gql, "am.wu", [])
    await gql.data(
        "admin",
        """mutation { createUser(input: {id: "am.zhu", name: "Zhu",
          roles: ["account_manager"], managerId: "tm.li", capacity: 4}) { user { id } } }""",
    )
    await owned(gql, "am.zhu", [])
    data = await gql.data("tm.li", PORTFOLIO)
    # Health levels are stored by the refresh job: none yet, so no level and no warnings.
    assert {"tier": None, "count": 2} in next(
        p for p in data["portfolio"] if p["owner"]["id"] == "am.chen"
    )["byHealthLevel"]
    # The scheduler's job: the four customers' insight rows (a first re-rank), then their health.
    assert await refresh_job(services, gql.clock.now()) == 4 + 4
    assert await services.tiering.refresh_health() == 0  # nothing due until a row changes
    data = await gql.data("tm.li", PORTFOLIO)
    found = {p["owner"]["id"]: p for p in data["portfolio"]}
    assert sorted(found) == ["am.chen", "am.wu", "am.zhu"]
    chen = found["am.chen"]
    assert chen["customers"] == 2
    # One ordered 10 days ago (GREEN); one said it may leave: 100 - 40 = 60, YELLOW, RETENTION.
    assert chen["openWarnings"] == 1
    assert sum(c["count"] for c in chen["byHealthLevel"]) == 2
    assert chen["byHealthLevel"] == [{"tier": "GREEN", "count": 1}, {"tier": "YELLOW", "count": 1}]
    assert (found["am.zhu"]["capacity"], found["am.zhu"]["load"]) == (4, 25.0)
    assert found["am.wu"]["overdueHandovers"] == 0
    body = await gql.execute("am.chen", PORTFOLIO)
    assert error_codes(body) == ["FORBIDDEN"]
