"""The "done when" of issue 19, on the demo data: what a sales director asks for (the
indicators with bands of every customer, the NPS of each team over the last quarter, the RFM
segment counts and the dormant key accounts), each checked against values computed here from
the raw rows, independently of the SQL that computes them."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from core.demo import seed_demo
from core.domain import Activity, Customer, Ownership, Survey, SurveyStatus, TierOverride, User
from core.services import Services
from tests.conftest import GraphQLClient

DAY = timedelta(days=1)
HEALTH = """{ customers(first: 100) { edges { node { id
  health { indicators { name value band } } } } } }"""
NPS = """query($since: DateTime!, $until: DateTime!) {
  npsReport(by: TEAM, since: $since, until: $until) { key answers score } }"""
DORMANT = """{ customers(first: 100, orderBy: {field: RFM_SCORE, direction: DESC},
  filter: {engagementStages: [DORMANT], valueTiers: [STRATEGIC, HIGH]}) {
  edges { node { id rfm { score } } } } }"""
# The guide's default thresholds: (green, yellow, higher is better).
BANDS = {
    "orderFrequency": (3, 1, True),
    "orderRecency": (30, 59, False),
    "categoryChange": (0, -30, True),
    "interactionFrequency": (2, 1, True),
    "complaintCount": (0, 1, False),
    "orderStability": (50, 100, False),
    "satisfaction": (4, 3, True),
    "willingnessToRecommend": (9, 7, True),
    "customerEffort": (5, 4, True),
    "needResponseTime": (1, 2, False),
    "repurchaseRate": (70, 40, True),
    "aovGrowth": (0, -15, True),
    "referralRate": (1, 0, True),
    "paymentPunctuality": (95, 80, True),
    "leaveIntent": (0, 0, False),
}


def band(name: str, value: float | None) -> str | None:
    if value is None:
        return None
    green, yellow, higher = BANDS[name]
    if higher:
        return "GREEN" if value >= green else "YELLOW" if value >= yellow else "RED"
    return "GREEN" if value <= green else "YELLOW" if value <= yellow else "RED"


def ntile(ordered: list[str]) -> dict[str, int]:
    """SQL's NTILE(5) over ids already in order: the first ``n % 5`` tiles get one more."""
    size, extra = divmod(len(ordered), 5)
    found, at = {}, 0
    for tile in range(1, 6):
        for cid in ordered[at : at + size + (tile <= extra)]:
            found[cid] = tile
        at += size + (tile <= extra)
    return found


def segment(r: int, f: int, m: int) -> str:
    if r >= 4 and f >= 4 and m >= 4:
        return "CHAMPIONS"
    if r <= 2 and f >= 3:
        return "AT_RISK"
    if f >= 4:
        return "LOYAL"
    if r >= 4 and f <= 2:
        return "NEW"
    return "LOST" if r <= 2 and f <= 2 else "POTENTIAL"


def hand_indicators(rows: list[Activity], now: datetime) -> dict[str, float | None]:
    """Some indicators of one customer, by their definitions in the guide."""
    recent = [a for a in rows if now - 90 * DAY < a.at <= now]
    orders = [a for a in rows if a.kind == "ORDER" and now - 720 * DAY < a.at <= now]
    payments = [a for a in recent if a.kind == "PAYMENT"]
    recent_orders = sum(a.kind == "ORDER" for a in recent)
    interactions = [a for a in rows if a.kind == "INTERACTION" and now - 720 * DAY < a.at <= now]
    return {
        "orderFrequency": float(recent_orders) if orders else None,
        "orderRecency": float((now - max(a.at for a in orders)).days) if orders else None,
        "interactionFrequency": (
            float(sum(a.at > now - 90 * DAY for a in interactions)) if interactions else None
        ),
        "complaintCount": float(sum(a.kind == "COMPLAINT" for a in recent)),
        "paymentPunctuality": (
            round(sum(a.days_late == 0 for a in payments) / len(payments) * 100, 1)
            if payments
            else None
        ),
        "referralRate": float(
            sum(a.kind == "REFERRAL" and now - 360 * DAY < a.at <= now for a in rows)
        ),
        "leaveIntent": float(sum(a.kind == "LEAVE_INTENT" for a in recent)),
    }


async def raw(services: Services) -> dict[str, Any]:
    async with services.db.reader() as session:
        assert not list(await session.scalars(select(TierOverride)))  # no hand-set stages
        return {
            "customers": list(await session.scalars(select(Customer))),
            "activities": list(await session.scalars(select(Activity))),
            "answers": list(
                await session.scalars(select(Survey).where(Survey.status == SurveyStatus.ANSWERED))
            ),
            "owners": {
                o.customer_id: o.owner_id
                for o in await session.scalars(
                    select(Ownership).where(Ownership.valid_to.is_(None))
                )
            },
            "teams": {u.id: u.team for u in await session.scalars(select(User))},
        }


async def test_the_directors_figures_on_the_demo_data_are_the_hand_computed_ones(
    gql: GraphQLClient, services: Services
) -> None:
    await seed_demo(services, 40)
    now = services.clock.now()
    data = await raw(services)
    by_customer: dict[str, list[Activity]] = defaultdict(list)
    for a in data["activities"]:
        by_customer[a.customer_id].append(a)

    # The indicators with bands of every customer.
    nodes = (await gql.data("sd.wang", HEALTH))["customers"]["edges"]
    assert len(nodes) == len(data["customers"]) == 40
    checked = Counter[str]()
    for edge in nodes:
        node = edge["node"]
        found = {i["name"]: i for i in node["health"]["indicators"]}
        assert set(BANDS) <= set(found)  # the seed's twelve and three more
        for name, reading in found.items():
            if name in BANDS:
                assert reading["band"] == band(name, reading["value"]), (name, reading)
        for name, value in hand_indicators(by_customer[node["id"]], now).items():
            assert found[name]["value"] == value, (node["id"], name)
            checked[name] += value is not None
    assert all(checked[name] for name in ("orderRecency", "paymentPunctuality", "referralRate"))

    # NPS of each team over the last quarter (the 90 days up to now).
    since, until = now - 90 * DAY, now + timedelta(seconds=1)
    tally: dict[str | None, Counter[str]] = defaultdict(Counter)
    for s in data["answers"]:
        if s.kind == "NPS" and since <= s.answered_at < until:
            owner = data["owners"].get(s.customer_id)
            team = data["teams"][owner] if owner else None
            kind = "p" if s.score >= 9 else "d" if s.score <= 6 else "n"
            tally[team][kind] += 1
    expected = {
        team: (sum(t.values()), round((t["p"] - t["d"]) / sum(t.values()) * 100, 1))
        for team, t in tally.items()
    }
    variables = {"since": since.isoformat(), "until": until.isoformat()}
    report = (await gql.data("sd.wang", NPS, variables))["npsReport"]
    assert {g["key"]: (g["answers"], g["score"]) for g in report} == expected
    assert len(expected) >= 2

    # RFM segment counts: quintiles of the year's orders (ties by id).
    year: dict[str, list[Activity]] = defaultdict(list)
    for a in data["activities"]:
        if a.kind == "ORDER" and now - 365 * DAY < a.at <= now:
            year[a.customer_id].append(a)
    measures = {
        cid: (max(a.at for a in rows), len(rows), sum((a.amount or Decimal(0)) for a in rows))
        for cid, rows in year.items()
    }
    scores = [ntile(sorted(measures, key=lambda c, k=k: (measures[c][k], c))) for k in range(3)]
    rfm = {cid: tuple(s[cid] for s in scores) for cid in measures}
    counts = Counter(segment(*r) for r in rfm.values())
    found_counts = (await gql.data("sd.wang", "{ rfmSegments { segment count } }"))["rfmSegments"]
    assert {c["segment"]: c["count"] for c in found_counts if c["count"]} == dict(counts)

    # The dormant key accounts, best RFM first.
    def stage(c: Customer) -> str:
        ats = [a.at for a in by_customer[c.id] if a.at <= now] or [c.created_at]
        if min(ats) > now - 90 * DAY:
            return "NEW"
        last = max(ats)
        return "ACTIVE" if last > now - 90 * DAY else "DORMANT" if last > now - 365 * DAY else "X"

    dormant = [
        c.id
        for c in data["customers"]
        if stage(c) == "DORMANT" and c.value_tier in ("STRATEGIC", "HIGH")
    ]

    def score(cid: str) -> int:
        r, f, m = rfm.get(cid, (0, 0, 0))
        return r * 100 + f * 10 + m

    best_first = sorted(dormant, key=lambda c: (score(c), c), reverse=True)
    edges = (await gql.data("sd.wang", DORMANT))["customers"]["edges"]
    assert [e["node"]["id"] for e in edges] == best_first
    assert [(e["node"]["rfm"] or {"score": 0})["score"] for e in edges] == [
        score(c) for c in best_first
    ]
    assert dormant
