"""Customer insight at scale on PostgreSQL: the time of each insight query.

    python -m benchmarks.insight [--customers 1000000] [--activities 10] [--database URL]

Seeds customers, owners, ``--activities`` activities per customer over two years and a
quarterly NPS answer for half the customers with COPY (a throwaway embedded PostgreSQL unless
``--database`` names one), analyses, then prints the best of ``--repeats`` runs of:

- health: ``Customer.health`` (indicators, score, warnings) for a page of 100 customers;
- nps: ``npsReport(by: TEAM)`` over a quarter;
- rfm: ``rfmSegments`` over everyone;
- kpis: ``retentionKpis(by: OWNER)`` over a quarter;
- dormant: the first 20 dormant STRATEGIC/HIGH customers by RFM score.

Each is a constant number of statements whatever the number of customers.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import select

from benchmarks.pg import throwaway_database
from core.db import Database
from core.domain import Customer, EngagementStage
from core.ids import new_id
from core.insight import kpis, surveys
from core.insight.segments import EngagementRule, engagement_stage, rfm_table
from core.plugins import builtin_plugins
from core.services import Actor, Services

KINDS = ["ORDER"] * 5 + ["INTERACTION"] * 3 + ["COMPLAINT", "PAYMENT", "REFERRAL"]
TIERS = ["STRATEGIC", "HIGH", "MEDIUM", "LOW"]


async def seed(url: str, customers: int, per_customer: int, rng: random.Random) -> None:
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
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        ids = [new_id("Customer") for _ in range(customers)]
        await conn.copy_records_to_table(
            "customers",
            columns=[
                "id",
                "version",
                "name",
                "kind",
                "lifecycle_stage",
                "value_tier",
                "product_lines",
                "contacts",
                "special_needs",
                "created_at",
                "updated_at",
            ],
            records=(
                (
                    cid,
                    1,
                    f"C{n}",
                    "ENTERPRISE",
                    "ACTIVE",
                    rng.choice(TIERS),
                    "[]",
                    "[]",
                    "{}",
                    now - timedelta(days=900),
                    now,
                )
                for n, cid in enumerate(ids)
            ),
        )
        await conn.copy_records_to_table(
            "ownerships",
            columns=["customer_id", "owner_id", "assigned_by", "valid_from"],
            records=((cid, rng.choice(owners), "RULE", now) for cid in ids),
        )

        def activities() -> Any:
            for cid in ids:
                for _ in range(per_customer):
                    kind = rng.choice(KINDS)
                    amount = Decimal(rng.randint(1, 500) * 100) if kind == "ORDER" else None
                    yield (
                        cid,
                        kind,
                        now - timedelta(days=rng.randint(0, 720), seconds=rng.randint(0, 86399)),
                        amount,
                        rng.choice(["valves", "pumps", "service"]) if amount else None,
                        rng.choice([0, 0, 0, 7]) if kind == "PAYMENT" else None,
                    )

        await conn.copy_records_to_table(
            "activities",
            columns=["customer_id", "kind", "at", "amount", "category", "days_late"],
            records=activities(),
        )
        await conn.copy_records_to_table(
            "surveys",
            columns=[
                "id",
                "customer_id",
                "kind",
                "occasion",
                "status",
                "due_at",
                "answered_at",
                "score",
                "created_at",
            ],
            records=(
                (
                    new_id("Survey"),
                    cid,
                    "NPS",
                    "QUARTERLY",
                    "ANSWERED",
                    at,
                    at,
                    rng.randint(0, 10),
                    at,
                )
                for cid in ids[::2]
                for at in [now - timedelta(days=rng.randint(1, 89))]
            ),
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def best_of(repeats: int, run: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        await run()
        best = min(best, time.perf_counter() - start)
    return best


async def measure(url: str, repeats: int) -> dict[str, float]:
    db = Database(url)
    services = Services.create(db, plugins=builtin_plugins())
    now = services.clock.now()
    quarter = (now - timedelta(days=90), now)
    results: dict[str, float] = {}
    try:
        async with db.reader() as session:
            page = list(await session.scalars(select(Customer).order_by(Customer.id).limit(100)))

            async def dormant() -> object:
                rfm = rfm_table(now)
                stmt = (
                    select(Customer.id)
                    .join(rfm, rfm.c.customer_id == Customer.id)
                    .where(
                        engagement_stage(EngagementRule(), now) == EngagementStage.DORMANT.value,
                        Customer.value_tier.in_(["STRATEGIC", "HIGH"]),
                    )
                    .order_by(rfm.c.score.desc(), Customer.id)
                    .limit(20)
                )
                return (await session.scalars(stmt)).all()

            runs: dict[str, Callable[[], Awaitable[object]]] = {
                "health (100 customers)": lambda: services.tiering.health(session, page),
                "npsReport by TEAM": lambda: surveys.nps(session, "TEAM", *quarter),
                "rfmSegments": lambda: services.insight.rfm_segments(session, None),
                "retentionKpis by OWNER": lambda: kpis.kpis(session, "OWNER", *quarter),
                "dormant key accounts": dormant,
            }
            for name, run in runs.items():
                results[name] = await best_of(repeats, run)
    finally:
        await db.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10, help="Per customer.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database", help="A migrated, empty PostgreSQL database URL.")
    args = parser.parse_args()
    rng = random.Random(19)

    async def run(url: str) -> dict[str, float]:
        start = time.perf_counter()
        await seed(url, args.customers, args.activities, rng)
        print(
            f"seeded {args.customers} customers, {args.customers * args.activities} "
            f"activities in {time.perf_counter() - start:.1f} s"
        )
        return await measure(url, args.repeats)

    if args.database:
        results = asyncio.run(run(args.database))
    else:
        with throwaway_database("baton_insight") as (_, url):

            async def migrate_and_run() -> dict[str, float]:
                db = Database(url)
                await db.upgrade()
                await db.dispose()
                return await run(url)

            results = asyncio.run(migrate_and_run())
    for name, seconds in results.items():
        print(f"{name:<26} {seconds * 1000:9.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
