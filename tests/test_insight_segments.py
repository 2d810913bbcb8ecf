"""Engagement stages and RFM: hand-computed values, filters and orders under field rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.insight.materialised import Refreshed
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

RECORD = """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
  movements { tier } } }"""
LIST = """query($filter: CustomerFilter, $order: CustomerOrder, $after: String, $first: Int!) {
  customers(filter: $filter, orderBy: $order, first: $first, after: $after) {
    edges { cursor node { name engagementStage rfm { recency frequency monetary score segment } } }
    pageInfo { hasNextPage endCursor } } }"""


async def customer(gql: GraphQLClient, name: str, orders: list[tuple[int, int]]) -> str:
    """A customer with an order of ``amount`` ``days`` ago for each ``(days, amount)``."""
    data = await gql.data(
        "admin",
        """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
          customer { id } } }""",
        {"input": {"name": name, "lifecycleStage": "ACTIVE"}},
    )
    cid: str = data["createCustomer"]["customer"]["id"]
    for days, amount in orders:
        at = (gql.clock.now() - timedelta(days=days)).isoformat()
        await gql.data(
            "admin",
            RECORD,
            {"input": {"customerId": cid, "kind": "ORDER", "at": at, "amount": str(amount)}},
        )
    return cid


async def names(gql: GraphQLClient, user: str = "admin", **variables: Any) -> list[str]:
    data = await gql.data(user, LIST, {"first": 50, **variables})
    return [e["node"]["name"] for e in data["customers"]["edges"]]


async def test_engagement_stages_follow_the_activity_windows_and_overrides(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await customer(gql, "fresh", [])
    await customer(gql, "active", [(200, 10), (10, 10)])
    dormant = await customer(gql, "dormant", [(200, 10)])
    await customer(gql, "churned", [(400, 10)])
    await services.insight.refresh()  # the first refresh re-ranks everyone
    data = await gql.data("admin", LIST, {"first": 50})
    stages = {e["node"]["name"]: e["node"]["engagementStage"] for e in data["customers"]["edges"]}
    assert stages == {
        "fresh": "NEW",
        "active": "ACTIVE",
        "dormant": "DORMANT",
        "churned": "CHURNED",
    }
    assert await names(gql, filter={"engagementStages": ["DORMANT", "CHURNED"]}) == [
        "churned",
        "dormant",
    ]
    # Ordered by stage (NEW, ACTIVE, DORMANT, CHURNED), page by page.
    order = {"field": "ENGAGEMENT_STAGE", "direction": "ASC"}
    first = await gql.data("admin", LIST, {"first": 2, "order": order})
    assert [e["node"]["name"] for e in first["customers"]["edges"]] == ["fresh", "active"]
    after = first["customers"]["pageInfo"]["endCursor"]
    rest = await gql.data("admin", LIST, {"first": 2, "order": order, "after": after})
    assert [e["node"]["name"] for e in rest["customers"]["edges"]] == ["dormant", "churned"]
    assert rest["customers"]["pageInfo"]["hasNextPage"] is False
    await gql.data(
        "admin",
        """mutation($input: OverrideTierInput!) { overrideTier(input: $input) {
          customer { engagementStage } } }""",
        {
            "input": {
                "customerId": dormant,
                "tier": "ENGAGEMENT",
                "value": "ACTIVE",
                "reason": "weekly calls off the books",
                "expiresAt": (gql.clock.now() + timedelta(hours=1)).isoformat(),
            }
        },
    )
    # The override marked the row dirty: the next (incremental) refresh applies it.
    assert await names(gql, filter={"engagementStages": ["ACTIVE"]}) == ["active"]
    assert await services.insight.refresh() == Refreshed(rows=1, reranked=False)
    assert await names(gql, filter={"engagementStages": ["ACTIVE"]}) == ["active", "dormant"]
    # Once the override expires, time alone makes the row due again: DORMANT as computed.
    later = gql.clock.now() + timedelta(hours=2)
    assert await services.insight.refresh(now=later) == Refreshed(rows=1, reranked=False)
    assert await names(gql, filter={"engagementStages": ["ACTIVE"]}) == ["active"]


async def test_rfm_quintiles_and_segments_are_the_hand_computed_ones(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await customer(gql, "c1", [(300, 100)])
    await customer(gql, "c2", [(300, 50), (275, 50), (250, 50), (225, 50), (200, 50)])
    await customer(gql, "c3", [(30, 1000), (5, 1000)])
    await customer(gql, "c4", [(90, 300), (70, 300), (50, 300)])
    await customer(gql, "c5", [(80, 600), (60, 600), (40, 600), (20, 600)])
    c6 = await customer(gql, "c6", [])
    await services.insight.refresh(full=True)
    order = {"field": "RFM_SCORE", "direction": "DESC"}
    data = await gql.data("admin", LIST, {"first": 50, "order": order})
    found = [(e["node"]["name"], e["node"]["rfm"]) for e in data["customers"]["edges"]]
    # Recency by last order: c1 c2 c4 c5 c3; frequency: c1 c3 c4 c5 c2;
    # monetary (100 250 900 2000 2400): c1 c2 c4 c3 c5.
    assert found == [
        ("c3", {"recency": 5, "frequency": 2, "monetary": 4, "score": 524, "segment": "NEW"}),
        ("c5", {"recency": 4, "frequency": 4, "monetary": 5, "score": 445, "segment": "CHAMPIONS"}),
        ("c4", {"recency": 3, "frequency": 3, "monetary": 3, "score": 333, "segment": "POTENTIAL"}),
        ("c2", {"recency": 2, "frequency": 5, "monetary": 2, "score": 252, "segment": "AT_RISK"}),
        ("c1", {"recency": 1, "frequency": 1, "monetary": 1, "score": 111, "segment": "LOST"}),
        ("c6", None),
    ]
    counts = await gql.data("admin", "{ rfmSegments { segment count } }")
    assert {c["segment"]: c["count"] for c in counts["rfmSegments"]} == {
        "CHAMPIONS": 1,
        "AT_RISK": 1,
        "LOYAL": 0,
        "NEW": 1,
        "LOST": 1,
        "POTENTIAL": 1,
    }
    assert await names(gql, filter={"rfmSegments": ["AT_RISK", "LOST"]}) == ["c1", "c2"]
    # An order now marks c6 dirty; the incremental refresh scores it against the stored
    # quintile starts: recency after c3's (5), one order below c3's two (1), 5000 above c5's
    # 2400 (5): 515, NEW. Nobody else is recomputed until the next re-rank.
    await gql.data(
        "admin", RECORD, {"input": {"customerId": c6, "kind": "ORDER", "amount": "5000"}}
    )
    assert await services.insight.refresh() == Refreshed(rows=1, reranked=False)
    data = await gql.data("admin", LIST, {"first": 2, "order": order})
    found = [(e["node"]["name"], e["node"]["rfm"]) for e in data["customers"]["edges"]]
    assert found == [
        ("c3", {"recency": 5, "frequency": 2, "monetary": 4, "score": 524, "segment": "NEW"}),
        ("c6", {"recency": 5, "frequency": 1, "monetary": 5, "score": 515, "segment": "NEW"}),
    ]
    counts = await gql.data("admin", "{ rfmSegments { segment count refreshedAt } }")
    new = next(c for c in counts["rfmSegments"] if c["segment"] == "NEW")
    assert new["count"] == 2
    assert datetime.fromisoformat(new["refreshedAt"]) <= gql.clock.now()


async def test_filtering_ordering_or_counting_by_an_unreadable_field_is_forbidden(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    await customer(gql, "c1", [(10, 100)])
    for variables in (
        {"filter": {"engagementStages": ["ACTIVE"]}},
        {"filter": {"rfmSegments": ["LOST"]}},
        {"order": {"field": "RFM_SCORE"}},
        {"order": {"field": "ENGAGEMENT_STAGE"}},
    ):
        body = await gql.execute("fin.zhao", LIST, {"first": 5, **variables})
        assert error_codes(body) == ["FORBIDDEN"], variables
        assert body["data"]["customers"] is None
    body = await gql.execute("fin.zhao", "{ rfmSegments { segment count } }")
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql.execute(
        "fin.zhao",
        "{ customers(first: 5) { edges { node { name rfm { score } engagementStage } } } }",
    )
    node = body["data"]["customers"]["edges"][0]["node"]
    assert (node["rfm"], node["engagementStage"]) == (None, None)
    assert set(error_codes(body)) == {"FORBIDDEN_FIELD"}
