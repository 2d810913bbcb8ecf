"""Roll-ups over one large group: the totals of 100,000 units vs a bare scan of the group,
on SQLite and on an embedded PostgreSQL.

    python -m benchmarks.hierarchy [--units 100000] [--plants 1000] [--database URL]
                                   [--only sqlite|postgresql] [--health]

One run per database (a fresh SQLite file, then a throwaway embedded PostgreSQL, unless
``--database`` names one) seeds a group (a top-level account, ``--plants`` plants below it,
the other units spread under the plants, each owned by one of 50 account managers, some with
a year of orders) and prints, each the best of ``--repeats``, with its ratio to the scan:

- scan: one Core query counting and summing the group's revenue by ``root_id`` (the floor);
- totals: ``hierarchy.totals`` for the group (units, revenue, owners, orders: one aggregate
  statement) as a sales director (no row scope) and as one account manager (OWN scope);
- plant: the same for one plant (a subtree: a range of the path index);
- move: moving a plant (and its units) under another plant (one UPDATE of its subtree);
- with ``--health``: the worst health band of the group's units (``hierarchy.member_health``):
  once with every unit assessed live through the batch health API (nothing stored yet), then
  with the insight refresh's stored health for all but 100 units.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, literal, select, text

from benchmarks.pg import migrated_database
from core.authz.defaults import Scope
from core.db import Database
from core.domain import Activity, Customer, CustomerHealthRow, Ownership
from core.domain.base import UTCDateTime
from core.ids import new_id
from core.services import Actor, Services, hierarchy
from core.services.customers import CustomerScope

T = TypeVar("T")
BATCH = 5000


async def best_of(repeats: int, run: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        result = await run()
        best = min(best, time.perf_counter() - began)
    return best, result  # type: ignore[return-value]


async def seed(db: Database, units: int, plants: int, rng: random.Random) -> tuple[str, str]:
    """The group; returns the root's id and one plant's id."""
    services = Services.create(db)
    await services.prepare()
    owners = [f"am.h{i:02d}" for i in range(50)]
    for uid in owners:
        await services.users.create(Actor.system(), uid, uid, roles=["account_manager"])
    now = datetime.now(UTC)
    root = new_id("Customer")
    plant_ids = [new_id("Customer") for _ in range(plants)]
    rows: list[dict[str, Any]] = [_row(root, None, root, root + "/", 0, now, rng)]
    rows += [_row(p, root, root, f"{root}/{p}/", 1, now, rng) for p in plant_ids]
    for _ in range(units - plants):
        plant = rng.choice(plant_ids)
        cid = new_id("Customer")
        rows.append(_row(cid, plant, root, f"{root}/{plant}/{cid}/", 2, now, rng))
    async with db.transaction() as session:
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            await session.execute(insert(Customer), batch)
            await session.execute(
                insert(Ownership),
                [
                    {
                        "customer_id": r["id"],
                        "owner_id": rng.choice(owners),
                        "assigned_by": "MANUAL",
                        "valid_from": now,
                    }
                    for r in batch
                ],
            )
            orders = [
                {
                    "customer_id": r["id"],
                    "kind": "ORDER",
                    "at": now - timedelta(days=rng.randrange(365)),
                    "amount": Decimal(rng.randrange(1, 10_000)),
                }
                for r in batch
                if rng.random() < 0.3
            ]
            if orders:
                await session.execute(insert(Activity), orders)
    return root, plant_ids[0]


async def _health(
    db: Database,
    session: Any,
    group_node: Any,
    root: str,
    repeats: int,
    now: datetime,
) -> list[tuple[str, float]]:
    """The worst health band of the group: with the health of all but 100 units stored (the
    insight refresh's steady state; those 100 are assessed live), and with nothing stored."""
    services = Services.create(db)

    async def worst() -> Any:
        return await hierarchy.member_health(session, [group_node], None, services.tiering.health)

    cold = time.perf_counter()
    await worst()
    cold = time.perf_counter() - cold
    stored = select(
        Customer.id, literal(90), literal("GREEN"), literal(0), literal(now, UTCDateTime)
    ).where(Customer.root_id == root, Customer.depth > 0)
    columns = ["customer_id", "score", "level", "warnings", "computed_at"]
    await session.execute(insert(CustomerHealthRow).from_select(columns, stored))
    newest = select(Customer.id).where(Customer.root_id == root).order_by(Customer.id.desc())
    await session.execute(
        delete(CustomerHealthRow).where(CustomerHealthRow.customer_id.in_(newest.limit(100)))
    )
    steady, found = await best_of(repeats, worst)
    return [
        (f"worst health band, stored but 100 ({found[root].level})", steady),
        ("worst health band, nothing stored (all live)", cold),
    ]


def _row(
    cid: str,
    parent: str | None,
    root: str,
    path: str,
    depth: int,
    now: datetime,
    rng: random.Random,
) -> dict[str, Any]:
    return {
        "id": cid,
        "version": 1,
        "name": f"Unit {cid[-6:]}",
        "kind": "ENTERPRISE",
        "lifecycle_stage": "ACTIVE",
        "product_lines": [],
        "contacts": [],
        "annual_revenue": Decimal(rng.randrange(1, 1_000_000)),
        "parent_id": parent,
        "root_id": root,
        "path": path,
        "depth": depth,
        "created_at": now,
        "updated_at": now,
    }


async def measure(url: str, units: int, plants: int, repeats: int, health: bool) -> None:
    db = Database(url)
    rng = random.Random(20)
    began = time.perf_counter()
    root, plant = await seed(db, units, plants, rng)
    backend = db.engine.dialect.name
    print(f"\n{backend}: seeded a group of {units} units in {time.perf_counter() - began:.1f} s")
    now = datetime.now(UTC)
    group_node, plant_node = (root, f"{root}/"), (plant, f"{root}/{plant}/")  # (id, path)
    own = CustomerScope(Scope.OWN, frozenset({"am.h00"}), viewer="am.h00").for_reading().clause()
    rows: list[tuple[str, float]] = []
    async with db.reader() as session:
        if backend == "postgresql":
            await session.execute(text("ANALYZE"))
        scan_query = select(func.count(), func.sum(Customer.annual_revenue)).where(
            Customer.root_id == root
        )
        scan, _ = await best_of(repeats, lambda: session.execute(scan_query))
        group, found = await best_of(
            repeats, lambda: hierarchy.totals(session, [group_node], None, now)
        )
        mine, mine_found = await best_of(
            repeats, lambda: hierarchy.totals(session, [group_node], own, now)
        )
        sub, _ = await best_of(repeats, lambda: hierarchy.totals(session, [plant_node], None, now))
        rows += [
            ("scan (count and sum by root_id)", scan),
            ("totals, whole group (sales director)", group),
            (f"totals, whole group (OWN: {mine_found[root].units} units)", mine),
            ("totals, one plant", sub),
        ]
        if health:
            rows += await _health(db, session, group_node, root, repeats, now)
    async with db.transaction() as session:
        plant_row = await session.get(Customer, plant)
        assert plant_row is not None
        other = await session.scalar(
            select(Customer.id).where(Customer.depth == 1, Customer.id != plant).limit(1)
        )
        began = time.perf_counter()
        await hierarchy.place(session, plant_row, other, None)
        rows.append(("move a plant with its units", time.perf_counter() - began))
        await session.rollback()
    await db.dispose()
    totals = found[root]
    print(f"group: {totals.units} units, {len(totals.owners)} owners")
    print(f"{'run':<44} {'seconds':>8} {'vs scan':>8}")
    for label, seconds in rows:
        print(f"{label:<44} {seconds:>8.3f} {seconds / scan:>7.2f}x")
    print(f"{backend}: totals vs scan {group / scan:.2f}x (one aggregate statement against one)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--plants", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database", help="one database to use instead of the two")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--health", action="store_true", help="time the worst health band too")
    args = parser.parse_args()

    def run(url: str) -> None:
        asyncio.run(measure(url, args.units, args.plants, args.repeats, args.health))

    if args.database:
        run(args.database)
        return 0
    if args.only != "postgresql":
        run(f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'hierarchy.db'}")
    if args.only != "sqlite":
        with migrated_database("baton_hierarchy") as url:
            run(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
