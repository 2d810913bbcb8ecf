"""Surveys: scheduling, answers (authorised, audited) and NPS by owner, team, tier, quarter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.clock import FixedClock
from core.insight.service import run
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes
from tests.test_handover_workflow import handover_in

ANSWER = """mutation($input: RecordSurveyAnswerInput!) { recordSurveyAnswer(input: $input) {
  survey { id kind occasion status score reason answeredAt } } }"""
SURVEYS = """query($id: ID!) { customer(id: $id) { surveys { id kind occasion status score } } }"""
NPS = """query($by: NpsDimension!, $since: DateTime!, $until: DateTime!) {
  npsReport(by: $by, since: $since, until: $until) {
    key answers promoters passives detractors score } }"""


async def owned(gql: GraphQLClient, owner: str, name: str, **fields: Any) -> str:
    data = await gql.data(
        "admin",
        """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
          customer { id } } }""",
        {"input": {"name": name, "ownerId": owner, **fields}},
    )
    return data["createCustomer"]["customer"]["id"]  # type: ignore[no-any-return]


async def answer(gql: GraphQLClient, user: str, **given: Any) -> dict[str, Any]:
    return await gql.execute(user, ANSWER, {"input": given})


async def test_quarterly_nps_and_post_delivery_surveys_are_scheduled_once(
    gql: GraphQLClient, admin: str, services: Services, clock: FixedClock
) -> None:
    first = await owned(gql, "am.chen", "First")
    second = await owned(gql, "am.wu", "Second")
    await gql.data(
        "admin",
        """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
          movements { tier } } }""",
        {"input": {"customerId": second, "kind": "ORDER", "amount": "10", "category": "x"}},
    )
    assert await run(services, clock.now()) == 3  # NPS for both, post-delivery for the second
    assert await run(services, clock.now()) == 0
    listed = (await gql.data("admin", SURVEYS, {"id": second}))["customer"]["surveys"]
    assert sorted((s["kind"], s["occasion"], s["status"]) for s in listed) == [
        ("NPS", "QUARTERLY", "SCHEDULED"),
        ("SATISFACTION", "POST_DELIVERY", "SCHEDULED"),
    ]
    clock.advance(timedelta(days=40))  # the next quarter (2026-04-11)
    assert await run(services, clock.now()) == 2
    nps = next(s for s in listed if s["kind"] == "NPS")
    body = await answer(
        gql, "am.wu", customerId=second, kind="NPS", score=9, reason="fast", surveyId=nps["id"]
    )
    assert body["data"]["recordSurveyAnswer"]["survey"]["status"] == "ANSWERED"
    again = await answer(gql, "am.wu", customerId=second, kind="NPS", score=3, surveyId=nps["id"])
    assert error_codes(again) == ["INVALID_STATE"]
    assert first != second


async def test_a_satisfaction_survey_is_due_a_month_after_a_completed_handover(
    gql: GraphQLClient, admin: str, services: Services, clock: FixedClock
) -> None:
    handover = await handover_in(services, "COMPLETED", clock)
    before = await run(services, clock.now())
    clock.advance(timedelta(days=29))
    assert await run(services, clock.now()) == 0
    clock.advance(timedelta(days=1))  # 2026-04-01: a month on, and a new quarter's NPS
    assert await run(services, clock.now()) == 2
    listed = (await gql.data("admin", SURVEYS, {"id": handover.customer_id}))["customer"]
    assert ("SATISFACTION", "POST_HANDOVER") in {
        (s["kind"], s["occasion"]) for s in listed["surveys"]
    }
    assert before == 1  # the quarterly NPS only


async def test_answers_are_validated_authorised_and_audited(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    cid = await owned(gql, "am.chen", "Acme")
    for given, path in (
        ({"kind": "NPS", "score": 11}, "score"),
        ({"kind": "CES", "score": 0}, "score"),
        ({"kind": "SATISFACTION", "score": 6}, "score"),
        ({"kind": "NPS", "score": 5, "reason": "x" * 2001}, "reason"),
    ):
        body = await answer(gql, "am.chen", customerId=cid, **given)
        assert error_codes(body) == ["BAD_USER_INPUT"], given
        assert body["errors"][0]["extensions"]["fields"][0]["path"].endswith(path)
    assert error_codes(await answer(gql, "am.wu", customerId=cid, kind="NPS", score=5)) == [
        "NOT_FOUND"
    ]
    assert error_codes(await answer(gql, "fin.zhao", customerId=cid, kind="NPS", score=5)) == [
        "FORBIDDEN"
    ]
    assert (await gql.data("admin", SURVEYS, {"id": cid}))["customer"]["surveys"] == []
    body = await answer(gql, "am.chen", customerId=cid, kind="NPS", score=4, reason="slow")
    survey = body["data"]["recordSurveyAnswer"]["survey"]
    audit = await gql.data(
        "admin",
        """query($id: ID!) { auditLog(filter: {entityId: $id, action: "recordSurveyAnswer"}) {
          edges { node { actor { id } changes { field after } } } } }""",
        {"id": cid},
    )
    (entry,) = [e["node"] for e in audit["auditLog"]["edges"]]
    assert entry == {
        "actor": {"id": "am.chen"},
        "changes": [
            {
                "field": "surveys",
                "after": {
                    "id": survey["id"],
                    "kind": "NPS",
                    "occasion": "AD_HOC",
                    "score": 4,
                    "reason": "slow",
                },
            }
        ],
    }


async def test_nps_by_owner_team_tier_and_quarter_is_the_hand_computed_one(
    gql: GraphQLClient, admin: str, services: Services, clock: FixedClock
) -> None:
    await services.users.create(
        Actor.system(), "am.ma", "Ma", roles=["account_manager"], team="west"
    )
    chen = await owned(gql, "am.chen", "Chen's", valueTier="HIGH")
    wu = await owned(gql, "am.wu", "Wu's", valueTier="LOW")
    ma = await owned(gql, "am.ma", "Ma's", valueTier="HIGH")
    days = {chen: [(9, 10), (10, 50), (6, 70)], wu: [(7, 20), (8, 30)], ma: [(3, 100)]}
    for cid, answers in days.items():
        for score, ago in answers:
            at = (clock.now() - timedelta(days=ago)).isoformat()
            body = await answer(
                gql, "admin", customerId=cid, kind="NPS", score=score, answeredAt=at
            )
            assert "errors" not in body
    # The clock stands at 2026-03-02: 70 and 100 days ago fall in 2025Q4, the rest in 2026Q1.
    since = (clock.now() - timedelta(days=365)).isoformat()
    until = clock.now().isoformat()

    async def report(user: str, by: str) -> list[tuple[Any, ...]]:
        data = await gql.data(user, NPS, {"by": by, "since": since, "until": until})
        return [tuple(g.values()) for g in data["npsReport"]]

    assert await report("admin", "OWNER") == [
        ("am.chen", 3, 2, 0, 1, 33.3),
        ("am.ma", 1, 0, 0, 1, -100.0),
        ("am.wu", 2, 0, 2, 0, 0.0),
    ]
    assert await report("admin", "TEAM") == [
        ("east", 5, 2, 2, 1, 20.0),
        ("west", 1, 0, 0, 1, -100.0),
    ]
    assert await report("admin", "TIER") == [
        ("HIGH", 4, 2, 0, 2, 0.0),
        ("LOW", 2, 0, 2, 0, 0.0),
    ]
    assert await report("admin", "QUARTER") == [
        ("2025Q4", 2, 0, 0, 2, -100.0),
        ("2026Q1", 4, 2, 2, 0, 50.0),
    ]
    # A team manager sees the team's customers only.
    assert await report("tm.li", "OWNER") == [
        ("am.chen", 3, 2, 0, 1, 33.3),
        ("am.wu", 2, 0, 2, 0, 0.0),
    ]


async def test_grouping_nps_by_a_field_the_viewer_cannot_read_is_forbidden(
    gql: GraphQLClient, admin: str, services: Services, clock: FixedClock
) -> None:
    await gql.data(
        "admin",
        """mutation { grantPermission(input: {role: "customer_service",
          object: "Query.npsReport", action: "call"}) { permission { object } } }""",
    )
    await services.users.create(Actor.system(), "cs.liu", "Liu", roles=["customer_service"])
    window = {"since": clock.now().isoformat(), "until": clock.now().isoformat()}
    body = await gql.execute("cs.liu", NPS, {"by": "TIER", **window})
    assert error_codes(body) == ["FORBIDDEN"]  # customer service cannot read valueTier
    assert "valueTier" in body["errors"][0]["message"]
    data = await gql.data("cs.liu", NPS, {"by": "QUARTER", **window})
    assert data["npsReport"] == []
