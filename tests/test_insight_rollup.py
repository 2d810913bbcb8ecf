"""The monthly roll-up behind the retention KPIs of whole months (against hand-computed values,
live and rolled up), and the portfolio's warnings as the viewer may read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from core.domain import CustomerMonth
from core.insight import kpis, rollup
from core.insight.service import refresh_job
from core.plugins import camel
from core.services import Actor, Services
from tests.conftest import GraphQLClient
from tests.test_insight_kpis import KPIS, PORTFOLIO, owned

ADMIN = "admin"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


async def customer(
    gql: GraphQLClient, owner: str, activities: list[tuple[str, datetime, Any]]
) -> str:
    cid = await owned(gql, owner, [])
    for kind, moment, amount in activities:
        given = {"customerId": cid, "kind": kind, "at": moment.isoformat()}
        if amount is not None:
            given["amount"] = str(amount)
        await gql.data(
            ADMIN,
            "mutation($i: RecordActivityInput!) { recordActivity(input: $i) { customer { id } } }",
            {"i": given},
        )
    return cid


# The quarter December to February (the clock is 2 March 2026) and the quarter before it,
# September to November: three calendar months, not the 90 days before 1 December.
QUARTER = (at(2025, 12, 1), at(2026, 3, 1))
# By owner: Chen's A and B bought in the quarter before, only A again; AOV 300/2 now against
# 400/2 before; A referred. Wu's C bought only in the quarter (its August order is older).
BY_OWNER = [
    ("am.chen", 2, 50.0, 50.0, -25.0, 50.0, None),
    ("am.wu", 1, None, None, None, 0.0, None),
]
# The team: AOV 800/3 now against 200 before; one referrer in three customers.
BY_TEAM = [("east", 3, 50.0, 50.0, 33.3, 33.3, None)]


async def history(gql: GraphQLClient) -> dict[str, str]:
    a = await customer(
        gql,
        "am.chen",
        [
            ("ORDER", at(2025, 10, 15), 100),
            ("ORDER", at(2026, 1, 10), 200),
            ("ORDER", at(2026, 2, 28, 23, 59, 59), 100),  # the quarter's last second
            ("REFERRAL", at(2026, 2, 1), None),
            ("INTERACTION", at(2026, 1, 5), None),  # not rolled up
        ],
    )
    b = await customer(gql, "am.chen", [("ORDER", at(2025, 9, 1), 300)])  # the first moment
    c = await customer(
        gql,
        "am.wu",
        [
            ("ORDER", at(2026, 1, 20), 500),
            ("ORDER", at(2025, 8, 31, 23, 59, 59), 999),  # before the quarter before
            ("ORDER", at(2026, 3, 1), 700),  # after the quarter
        ],
    )
    return {"a": a, "b": b, "c": c}


def rows_of(found: list[kpis.Kpis]) -> list[tuple[Any, ...]]:
    return [
        (k.key, k.customers, k.repurchase_rate, k.churn_rate, k.aov_growth, k.referral_rate, k.nps)
        for k in found
    ]


async def both_paths(services: Services, by: str, since: datetime, until: datetime) -> Any:
    async with services.db.reader() as session:
        live = await kpis.kpis(session, by, since, until, live=True)
        rolled = await kpis.kpis(session, by, since, until)
    return rows_of(live), rows_of(rolled)


async def asked(gql: GraphQLClient, by: str, since: str, until: str) -> list[tuple[Any, ...]]:
    data = await gql.data(ADMIN, KPIS, {"by": by, "since": since, "until": until})
    return [tuple(k.values()) for k in data["retentionKpis"]]


async def test_whole_months_read_the_roll_up_and_agree_with_the_activities(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    ids = await history(gql)
    await refresh_job(services, gql.clock.now())
    for by, expected in (("OWNER", BY_OWNER), ("TEAM", BY_TEAM)):
        assert await both_paths(services, by, *QUARTER) == (expected, expected)
    live, rolled = await both_paths(services, "TIER", *QUARTER)  # joins the customers
    assert live == rolled and sum(row[1] for row in live) == 3
    # The API, with the ends given in another zone: still whole months in UTC.
    since, until = "2025-12-01T08:00:00+08:00", "2026-03-01T08:00:00+08:00"
    assert await asked(gql, "OWNER", since, until) == BY_OWNER
    # The roll-up itself: one row per customer and month with an order or a referral.
    async with services.db.reader() as session:
        months = {
            (r.customer_id, rollup.month_start(r.month).date().isoformat()): (
                r.orders,
                str(r.amount),
                r.referrals,
            )
            for r in await session.scalars(select(CustomerMonth))
        }
    assert months == {
        (ids["a"], "2025-10-01"): (1, "100.00", 0),
        (ids["a"], "2026-01-01"): (1, "200.00", 0),
        (ids["a"], "2026-02-01"): (1, "100.00", 1),
        (ids["b"], "2025-09-01"): (1, "300.00", 0),
        (ids["c"], "2025-08-01"): (1, "999.00", 0),
        (ids["c"], "2026-01-01"): (1, "500.00", 0),
        (ids["c"], "2026-03-01"): (1, "700.00", 0),
    }
    # A rebuild from scratch (``baton insight refresh --all``) finds the same rows.
    assert (await services.insight.refresh(full=True)).months == len(months)


async def test_a_period_of_other_lengths_compares_with_one_as_long_before(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await history(gql)
    await refresh_job(services, gql.clock.now())
    # 1 December to 2 March 09:00 is not whole months: the period before is as long (91 days
    # and 9 hours) and begins on 31 August 15:00, so C's August order counts as before:
    # Wu's C bought before and again; AOV now 1200/2 against 999.
    since, until = at(2025, 12, 1), gql.clock.now()
    assert kpis.period_before(since, until) == at(2025, 8, 31, 15)
    live, rolled = await both_paths(services, "OWNER", since, until)
    assert live == rolled  # no roll-up for this period: the activities both times
    assert live[1] == ("am.wu", 1, 100.0, 0.0, -39.9, 0.0, None)


async def test_a_new_activity_reaches_the_roll_up_with_the_refresh_job(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    ids = await history(gql)
    await refresh_job(services, gql.clock.now())
    # Wu's C orders again in February, and B (Chen's) too: after the job, Chen's B is a
    # repeat buyer (100%) and the AOVs move.
    for cid, amount in ((ids["c"], 100), (ids["b"], 400)):
        await gql.data(
            ADMIN,
            "mutation($i: RecordActivityInput!) { recordActivity(input: $i) { customer { id } } }",
            {
                "i": {
                    "customerId": cid,
                    "kind": "ORDER",
                    "at": "2026-02-10T00:00:00Z",
                    "amount": str(amount),
                }
            },
        )
    since, until = (d.isoformat() for d in QUARTER)
    assert await asked(gql, "OWNER", since, until) == BY_OWNER  # as of the last refresh
    live, _ = await both_paths(services, "OWNER", *QUARTER)
    updated = [
        # A and B bought again; AOV 700/3 against 200.
        ("am.chen", 2, 100.0, 0.0, 16.7, 50.0, None),
        # C: nothing before; 600/2 now.
        ("am.wu", 1, None, None, None, 0.0, None),
    ]
    assert live == updated
    await refresh_job(services, gql.clock.now())
    assert await asked(gql, "OWNER", since, until) == updated
    assert await both_paths(services, "OWNER", *QUARTER) == (updated, updated)


async def test_the_portfolio_counts_only_warnings_of_indicators_the_viewer_may_read(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    """The portfolio's ``openWarnings`` and a roll-up's ``openWarningCount`` alike."""
    # One customer said it may leave: a RETENTION warning raised by ``leaveIntent``.
    cid = await customer(gql, "am.chen", [("LEAVE_INTENT", at(2026, 3, 1), None)])
    await refresh_job(services, gql.clock.now())

    async def warnings(user: str) -> int:
        data = await gql.data(user, PORTFOLIO)
        shown = next(p for p in data["portfolio"] if p["owner"]["id"] == "am.chen")
        rolled = await gql.data(
            user,
            "query($id: ID!) { customer(id: $id) { rollup { openWarningCount } } }",
            {"id": cid},
        )
        assert rolled["customer"]["rollup"]["openWarningCount"] == shown["openWarnings"]
        return int(shown["openWarnings"])

    assert (await warnings(ADMIN), await warnings("tm.li")) == (1, 1)
    # Account managers, and so the team manager, may read every indicator but order
    # frequency: the warning counts.
    names = [i.name for i in services.insight.indicators]
    policies = services.policies
    await policies.revoke(Actor.system(), "account_manager", "HealthIndicator.*", "read")
    for name in names:
        if name != "order_frequency":
            await policies.grant(
                Actor.system(), "account_manager", f"HealthIndicator.{camel(name)}", "read"
            )
    assert await warnings("tm.li") == 1
    # Nor intent to leave: the count leaves the warning out; the admin still counts it.
    await policies.revoke(Actor.system(), "account_manager", "HealthIndicator.leaveIntent", "read")
    assert (await warnings(ADMIN), await warnings("tm.li")) == (1, 0)
