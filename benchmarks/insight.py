"""Customer insight at scale on PostgreSQL: the time and statements of each insight figure.

    python -m benchmarks.insight [--customers 1000000] [--activities 10] [--repeats 3]
                                 [--database URL [--seeded]] [--health-batches N]
                                 [--health-seconds S]

Seeds 100 owners in 10 teams, customers, ``--activities`` activities per customer over two
years and a recent NPS answer for every other customer with COPY (a throwaway embedded
PostgreSQL unless ``--database`` names one; ``--seeded``: it is seeded already), analyses, then
prints the best of ``--repeats`` runs, and the SQL statements one run sends, of each figure
as the sales director asks for it through the app in process:

- the 12 (here 15) indicators with bands of one customer (``customer { health }``);
- ``npsReport(by: TEAM)`` over the last quarter;
- ``rfmSegments``;
- the dormant key accounts: the first 20 DORMANT STRATEGIC/HIGH customers by RFM score;
- ``retentionKpis(by: OWNER)`` over the last 90 days (from the activities) and over the last
  calendar quarter (whole months: from the monthly roll-up);
- ``portfolio`` (every owner), from the stored health rows;
- and the health batch API (``services.tiering.health``) for 100 customers.

First the refresh work: a full re-rank of the materialised engagement and RFM rows with a
rebuild of the monthly roll-up, an
incremental refresh of 1,000 dirty customers, and the stored health of everyone (or
``--health-batches`` batches, or what ``--health-seconds`` allows), with the time per
customer.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from benchmarks.pg import CUSTOMER_COLUMNS, libpq_dsn, throwaway_database, top_level_customer
from core.app import create_app
from core.config import Settings
from core.db import Database
from core.domain import Customer, User
from core.identity import issue_token
from core.ids import new_id
from core.insight import materialised
from core.plugins import builtin_plugins
from core.services import Actor, Services
from core.services.tiering import HEALTH_BATCH

KINDS = ["ORDER"] * 5 + ["INTERACTION"] * 3 + ["COMPLAINT", "PAYMENT", "REFERRAL"]
TIERS = ["STRATEGIC", "HIGH", "MEDIUM", "LOW"]


CHUNK = 50_000  # customers per COPY batch: bounded memory whatever the scale
ACTIVITY_COLUMNS = ("customer_id", "kind", "at", "amount", "category", "days_late")
SURVEY_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "occasion",
    "status",
    "due_at",
    "answered_at",
    "score",
    "created_at",
)
CATEGORIES = ("valves", "pumps", "service")


async def seed(url: str, customers: int, per_customer: int, rng: random.Random) -> None:
    """100 owners in 10 teams through the services; customers, ownerships, ``per_customer``
    activities each over two years and a recent NPS answer for every other customer by COPY,
    in chunks of ``CHUNK`` customers; then ANALYZE."""
    db = Database(url)
    services = Services.create(db)
    await services.prepare()
    owners = [f"am.b{i:03d}" for i in range(100)]
    for i, uid in enumerate(owners):
        await services.users.create(
            Actor.system(), uid, uid, roles=["account_manager"], team=f"team{i % 10}"
        )
    await db.dispose()
    now = datetime.now(UTC)
    created = now - timedelta(days=900)
    two_years = 720 * 86400
    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        for first in range(0, customers, CHUNK):
            ids = [new_id("Customer") for _ in range(first, min(first + CHUNK, customers))]
            tiers = [rng.choice(TIERS) for _ in ids]
            await conn.copy_records_to_table(
                "customers",
                columns=CUSTOMER_COLUMNS,
                records=[
                    top_level_customer(cid, f"C{first + n}", tier, created, now)
                    for n, (cid, tier) in enumerate(zip(ids, tiers, strict=True))
                ],
            )
            await conn.copy_records_to_table(
                "ownerships",
                columns=("customer_id", "owner_id", "assigned_by", "valid_from"),
                records=[(cid, rng.choice(owners), "RULE", now) for cid in ids],
            )
            rows = []
            for cid in ids:
                for _ in range(per_customer):
                    kind = KINDS[int(rng.random() * len(KINDS))]
                    at = now - timedelta(seconds=int(rng.random() * two_years))
                    if kind == "ORDER":
                        amount = Decimal(int(rng.random() * 500 + 1) * 100)
                        category = CATEGORIES[int(rng.random() * 3)]
                        rows.append((cid, kind, at, amount, category, None))
                    else:
                        late = (7 if rng.random() < 0.25 else 0) if kind == "PAYMENT" else None
                        rows.append((cid, kind, at, None, None, late))
            await conn.copy_records_to_table("activities", columns=ACTIVITY_COLUMNS, records=rows)
            answered = [
                (cid, now - timedelta(days=1 + int(rng.random() * 88)), int(rng.random() * 11))
                for cid in ids[::2]
            ]
            await conn.copy_records_to_table(
                "surveys",
                columns=SURVEY_COLUMNS,
                records=[
                    (new_id("Survey"), cid, "NPS", "QUARTERLY", "ANSWERED", at, at, score, at)
                    for cid, at, score in answered
                ],
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


DIRECTOR = "sd.insight"
HEALTH = """query($id: ID!) { customer(id: $id) { health { score level
  warnings { level code } indicators { name value band trend explanation } } } }"""
NPS = """query($since: DateTime!, $until: DateTime!) {
  npsReport(by: TEAM, since: $since, until: $until) {
    key answers promoters passives detractors score } }"""
RFM = "{ rfmSegments { segment count refreshedAt } }"
DORMANT = """{ customers(first: 20,
  filter: {engagementStages: [DORMANT], valueTiers: [STRATEGIC, HIGH]},
  orderBy: {field: RFM_SCORE, direction: DESC}) {
    edges { node { id name valueTier engagementStage rfm { score segment refreshedAt } } }
    pageInfo { hasNextPage endCursor } } }"""
KPIS = """query($since: DateTime!, $until: DateTime!) {
  retentionKpis(by: OWNER, since: $since, until: $until) {
    key customers repurchaseRate churnRate aovGrowth referralRate nps } }"""
PORTFOLIO = """{ portfolio { owner { id } customers byValueTier { tier count }
  byHealthLevel { tier count } openWarnings overdueHandovers refreshedAt } }"""


class Statements:
    """Counts the SQL statements every engine of this process sends."""

    def __init__(self) -> None:
        self.count = 0
        event.listen(Engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


async def timed(
    statements: Statements, repeats: int, run: Callable[[], Awaitable[object]]
) -> tuple[float, int]:
    """The best of ``repeats`` runs in seconds, and the statements one run sends."""
    best, sent = float("inf"), 0
    for _ in range(repeats):
        before = statements.count
        start = time.perf_counter()
        await run()
        best = min(best, time.perf_counter() - start)
        sent = statements.count - before
    return best, sent


def report(name: str, seconds: float, statements: int | None = None) -> None:
    sent = f"{statements:6d} statements" if statements is not None else ""
    print(f"{name:<44} {seconds * 1000:11.1f} ms {sent}", flush=True)


async def maintain(
    url: str, statements: Statements, health_batches: int | None, health_seconds: float | None
) -> None:
    """The refresh work: a full re-rank, an incremental refresh of 1,000 dirty customers,
    and stored health batch by batch (at most ``health_batches``, or ``health_seconds``)."""
    db = Database(url)
    services = Services.create(db, plugins=builtin_plugins())
    try:
        before, start = statements.count, time.perf_counter()
        done = await services.insight.refresh(full=True)
        report(
            f"re-rank: {done.rows} rows, roll-up: {done.months} months",
            time.perf_counter() - start,
            statements.count - before,
        )
        async with db.transaction() as session:
            some = list(await session.scalars(select(Customer.id).limit(1000)))
            await materialised.mark(session, some, services.clock.now())
        before, start = statements.count, time.perf_counter()
        done = await services.insight.refresh()
        report(
            f"refresh: {done.rows} dirty rows",
            time.perf_counter() - start,
            statements.count - before,
        )
        stored, batches, start = 0, 0, time.perf_counter()
        while (health_batches is None or batches < health_batches) and (
            health_seconds is None or time.perf_counter() - start < health_seconds
        ):
            n = await services.tiering.refresh_health(limit=HEALTH_BATCH)
            if not n:
                break
            stored, batches = stored + n, batches + 1
            if batches % 50 == 0:
                spent = time.perf_counter() - start
                print(
                    f"  stored health: {stored} ({spent / stored * 1000:.2f} ms each)", flush=True
                )
        spent = time.perf_counter() - start
        report(f"stored health: {stored} customers", spent)
        if stored:
            print(f"  = {spent / stored * 1000:.2f} ms per customer", flush=True)
    finally:
        await db.dispose()


async def measure(url: str, statements: Statements, repeats: int) -> None:
    """Each figure as the sales director asks for it (the app in process), best of
    ``repeats``, with the statements it sends; and the health batch API for 100 customers."""
    db = Database(url)
    services = Services.create(db, plugins=builtin_plugins())
    async with db.reader() as session:
        page = list(await session.scalars(select(Customer).order_by(Customer.id).limit(100)))
        director = await session.get(User, DIRECTOR)
    if director is None:
        await services.users.create(Actor.system(), DIRECTOR, "Director", roles=["sales_director"])

    async def health_page() -> object:
        async with db.reader() as session:
            return await services.tiering.health(session, page)

    best, sent = await timed(statements, repeats, health_page)
    report("health batch API (100 customers)", best, sent)
    await db.dispose()
    secret = secrets.token_urlsafe(32)
    # A generous statement timeout: the point is to measure a slow figure, not to refuse it.
    settings = Settings(database_url=url, jwt_secret=secret, db_command_timeout=600)
    app = create_app(settings, plugins=builtin_plugins())
    now = datetime.now(UTC)
    token = issue_token(DIRECTOR, secret, now=now, ttl=timedelta(hours=6))
    quarter = {"since": (now - timedelta(days=90)).isoformat(), "until": now.isoformat()}
    # The last whole calendar quarter: whole months, so the monthly roll-up answers.
    first = datetime(now.year, now.month - (now.month - 1) % 3, 1, tzinfo=UTC)
    start = datetime(first.year - (first.month == 1), (first.month - 4) % 12 + 1, 1, tzinfo=UTC)
    calendar_quarter = {"since": start.isoformat(), "until": first.isoformat()}
    queries = {
        "12 indicators of one customer (health)": (HEALTH, {"id": page[0].id}),
        "npsReport by TEAM, last quarter": (NPS, quarter),
        "rfmSegments": (RFM, {}),
        "dormant key accounts (first 20 by RFM)": (DORMANT, {}),
        "retentionKpis by OWNER, last 90 days (live)": (KPIS, quarter),
        "retentionKpis by OWNER, last calendar quarter": (KPIS, calendar_quarter),
        "portfolio (every owner)": (PORTFOLIO, {}),
    }
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
            timeout=None,
        ) as client,
    ):
        for name, (query, variables) in queries.items():

            async def ask(query: str = query, variables: dict[str, Any] = variables) -> object:
                body = (
                    await client.post("/graphql", json={"query": query, "variables": variables})
                ).json()
                if "errors" in body:
                    raise RuntimeError(str(body)[:300])
                return body

            best, sent = await timed(statements, repeats, ask)
            report(name, best, sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10, help="Per customer.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database", help="A PostgreSQL database URL (migrated here).")
    parser.add_argument(
        "--seeded", action="store_true", help="The --database is seeded already: measure only."
    )
    parser.add_argument(
        "--health-batches",
        type=int,
        help=f"Store health for this many batches of {HEALTH_BATCH} (default: everyone).",
    )
    parser.add_argument(
        "--health-seconds", type=float, help="Stop storing health after this long (bounded runs)."
    )
    args = parser.parse_args()
    statements = Statements()

    async def run(url: str) -> None:
        db = Database(url)
        await db.upgrade()
        await db.dispose()
        if not args.seeded:
            start = time.perf_counter()
            await seed(url, args.customers, args.activities, random.Random(19))
            print(
                f"seeded {args.customers} customers, {args.customers * args.activities} "
                f"activities in {time.perf_counter() - start:.1f} s",
                flush=True,
            )
        await maintain(url, statements, args.health_batches, args.health_seconds)
        await measure(url, statements, args.repeats)

    if args.database:
        asyncio.run(run(args.database))
    else:
        with throwaway_database("baton_insight") as (_, url):
            asyncio.run(run(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
