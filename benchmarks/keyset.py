"""Keyset pagination at scale: a deep page costs what the first page costs.

    python -m benchmarks.keyset [--customers 1000000] [--page 5000] [--size 100]
                                [--repeats 15] [--narrow SHARE] [--database URL | --sqlite]

One run seeds ``--customers`` customers with COPY into an embedded PostgreSQL (or the migrated
database ``--database`` names; ``--sqlite``: a fresh SQLite file, seeded in batches of
``executemany``), each with its materialised insight row (``customer_insight``:
the engagement stage and RFM score that ``ENGAGEMENT_STAGE`` and ``RFM_SCORE`` order by), then
asks ``customers(first: size, after: cursor, orderBy: …)`` through the app in process, as the
sales director (scope ALL), for every ``orderBy`` offered and both directions, and prints the
median time of the first page and of page ``--page`` (their requests interleaved) with their
ratio (goal ≤ 1.2x). The deep page's cursor is the one the API would have returned: the row
before it is found once with OFFSET, outside the timings.

Then ``totalCount``: the same first page with and without it selected. An exact count over every
row is a scan; it is computed only when the query selects it, and this line says what it costs.

With ``--narrow SHARE``, an account manager owns one customer in SHARE (OWN scope), and the
first page of every ``orderBy`` is timed as that account manager against the same page as the
director (unscoped), interleaved: once as the page chooses its scope's form
(``core.services.scope_sizes``), once always walked in sort order (the form before it chose).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from sqlalchemy import Integer, String, text
from sqlalchemy.types import TypeEngine

from benchmarks.pg import (
    CUSTOMER_COLUMNS,
    fresh_sqlite,
    libpq_dsn,
    migrated_database,
    top_level_customer,
)
from core.app import create_app
from core.config import Settings
from core.db import Database
from core.domain.base import UTCDateTime
from core.identity import issue_token
from core.ids import new_id
from core.insight import materialised
from core.services import Actor, Services
from core.services.pagination import encode_cursor
from core.services.scope_sizes import ScopeSize, ScopeSizes

# orderBy → the column the deep page's cursor is read from (``ci``: the insight row), and its
# type (SQLite returns a text query's datetimes as text).
ORDERS: dict[str, tuple[str, TypeEngine[Any]]] = {
    "NAME": ("c.name", String()),
    "CREATED_AT": ("c.created_at", UTCDateTime()),
    "UPDATED_AT": ("c.updated_at", UTCDateTime()),
    "ENGAGEMENT_STAGE": ("ci.stage_rank", Integer()),
    "RFM_SCORE": ("ci.rfm_score", Integer()),
}
STAGES = ("NEW", "ACTIVE", "DORMANT", "CHURNED")
SEGMENTS = ("CHAMPIONS", "AT_RISK", "LOYAL", "NEW", "LOST", "POTENTIAL")
DIRECTOR = "sd.bench"
# ``ScopeSizes.cost`` values that force a page's form: 0 always walks; a cost this small makes
# reading the scope first cheaper for any scope that has a customer.
ALWAYS_WALK, ALWAYS_SCOPE_FIRST = 0.0, 1e-9
NARROW = "am.narrow"
PAGE = """query($first: Int!, $after: String, $order: CustomerOrder) {
  customers(first: $first, after: $after, orderBy: $order) {
    edges { cursor node { id name territory valueTier owner { id name } } }
    pageInfo { hasNextPage endCursor } } }"""
COUNTED = PAGE.replace("pageInfo {", "totalCount pageInfo {")


async def seed(url: str, customers: int, narrow: int = 0) -> None:
    """A director and a few owners through the services; customers and ownerships by COPY.
    With ``narrow``, ``NARROW`` owns every ``narrow``-th customer."""
    db = Database(url)
    services = Services.create(db)
    await services.prepare()
    system = Actor.system()
    await services.users.create(system, DIRECTOR, "Bench Director", roles=["sales_director"])
    owners = [f"am.k{i:02d}" for i in range(20)]
    for uid in [*owners, NARROW] if narrow else owners:
        await services.users.create(system, uid, uid, roles=["account_manager"])
    await db.dispose()
    rng = random.Random(11)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    load = await bulk_load(url)
    try:
        for first in range(0, customers, 100_000):
            rows, owned, insight = [], [], []
            for i in range(first, min(first + 100_000, customers)):
                cid = new_id("Customer")
                created = start + timedelta(seconds=rng.randrange(200_000_000))
                rows.append(
                    top_level_customer(
                        cid,
                        f"Customer {rng.randrange(10**9):09d}",
                        rng.choice(("STRATEGIC", "HIGH", "MEDIUM", "LOW")),
                        created,
                        created + timedelta(days=rng.randrange(365)),
                        territory="CN/East/Shanghai",
                        industry="manufacturing.automotive",
                    )
                )
                if narrow and i % narrow == 0:
                    owned.append((cid, NARROW, "MANUAL", created))
                elif i % 3:
                    owned.append((cid, rng.choice(owners), "MANUAL", created))
                insight.append(insight_row(rng, cid, created))
            await load.rows("customers", CUSTOMER_COLUMNS, rows)
            await load.rows(
                "ownerships", ("customer_id", "owner_id", "assigned_by", "valid_from"), owned
            )
            await load.rows("customer_insight", materialised.COLUMNS, insight)
        await load.analyze("customers", "ownerships", "customer_insight")
    finally:
        await load.close()


async def bulk_load(url: str) -> CopyLoad | ExecutemanyLoad:
    """Rows into tables as fast as the database at ``url`` takes them."""
    if url.startswith("sqlite"):
        return ExecutemanyLoad(Database(url))
    return CopyLoad(await asyncpg.connect(libpq_dsn(url)))


class CopyLoad:
    """PostgreSQL: COPY."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def rows(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        await self.conn.copy_records_to_table(table, records=rows, columns=columns)

    async def analyze(self, *tables: str) -> None:
        await self.conn.execute("; ".join(f"ANALYZE {t}" for t in tables))

    async def close(self) -> None:
        await self.conn.close()


class ExecutemanyLoad:
    """SQLite: ``executemany`` in one transaction a table, values written as SQLAlchemy stores
    them (naive UTC datetimes, decimals as text)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def rows(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        # Names from this module's constants, never from input.
        insert = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        async with self.db.engine.begin() as conn:
            await conn.exec_driver_sql(insert, [tuple(map(_sqlite_value, row)) for row in rows])

    async def analyze(self, *tables: str) -> None:
        async with self.db.engine.begin() as conn:
            for table in tables:
                await conn.exec_driver_sql(f"ANALYZE {table}")

    async def close(self) -> None:
        await self.db.dispose()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, Decimal):
        return str(value)
    return value


def insight_row(rng: random.Random, cid: str, created: datetime) -> tuple[Any, ...]:
    """A materialised insight row: a stage (4 values) and, for two customers in three, an RFM
    score (R·100 + F·10 + M, 125 values); the rest have none (score 0), as without orders."""
    rank = rng.randrange(len(STAGES))
    last = created + timedelta(days=rng.randrange(400))
    if rng.randrange(3):
        r, f, m = rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5)
        orders, amount = rng.randint(1, 40), Decimal(rng.randrange(10**7)) / 100
        score, segment = r * 100 + f * 10 + m, rng.choice(SEGMENTS)
        rfm: tuple[int | None, ...] = (r, f, m)
        ordered: datetime | None = last
    else:
        orders, amount, score, segment = 0, Decimal(0), 0, None
        rfm, ordered = (None, None, None), None
    return (
        cid,
        created,
        last,
        STAGES[rank],
        rank,
        ordered,
        orders,
        amount,
        *rfm,
        score,
        segment,
        None,
        False,
        created,
    )


async def deep_cursor(
    url: str, column: tuple[str, TypeEngine[Any]], descending: bool, rows_before: int
) -> str:
    """The cursor the API returns for the row just before the deep page (found by OFFSET)."""
    direction = "DESC" if descending else "ASC"
    name, kind = column
    db = Database(url)
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    # The column and direction come from ORDERS, never from input.
                    f"SELECT {name} AS sort, c.id FROM customers c "
                    "JOIN customer_insight ci ON ci.customer_id = c.id "
                    f"ORDER BY {name} {direction}, c.id {direction} LIMIT 1 OFFSET :n"
                ).columns(sort=kind, id=String()),
                {"n": rows_before - 1},
            )
        ).one()
    await db.dispose()
    return encode_cursor(row[0], row[1])


Request = tuple[str, dict[str, Any]]  # a document and its variables


async def timed(
    client: httpx.AsyncClient, a: Request, b: Request, n: int, b_as: str | None = None
) -> tuple[float, float]:
    """The median milliseconds of ``n`` requests ``a`` and ``n`` requests ``b`` (after two
    unmeasured ones each), interleaved so that a busy moment of the machine hits both.
    ``b_as``: a bearer token for ``b`` in place of the client's."""
    times: tuple[list[float], list[float]] = ([], [])
    b_headers = {"Authorization": f"Bearer {b_as}"} if b_as else {}
    for i in range(n + 2):
        for which, (query, variables) in enumerate((a, b)):
            began = time.perf_counter()
            response = await client.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers=b_headers if which else {},
            )
            if i >= 2:
                times[which].append((time.perf_counter() - began) * 1000)
            if "errors" in (body := response.json()):
                raise RuntimeError(f"unexpected answer: {str(body)[:300]}")
    return statistics.median(times[0]), statistics.median(times[1])


async def run(url: str, args: argparse.Namespace) -> int:
    secret = secrets.token_urlsafe(32)
    app = create_app(Settings(database_url=url, jwt_secret=secret))
    token, narrow = (
        issue_token(uid, secret, now=datetime.now(UTC), ttl=timedelta(hours=2))
        for uid in (DIRECTOR, NARROW)
    )
    headers = {"Authorization": f"Bearer {token}"}
    worst = 0.0
    print(f"customers: {args.customers}, page size {args.size}, deep page {args.page}")
    print(f"{'orderBy':<22} {'first ms':>9} {'deep ms':>9} {'ratio':>7}", flush=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers
        ) as client,
    ):
        for name, column in ORDERS.items():
            for direction in ("ASC", "DESC"):
                order = {"field": name, "direction": direction}
                cursor = await deep_cursor(
                    url, column, direction == "DESC", (args.page - 1) * args.size
                )
                base = {"first": args.size, "order": order}
                first, deep = await timed(
                    client, (PAGE, base), (PAGE, {**base, "after": cursor}), args.repeats
                )
                worst = max(worst, deep / first)
                label = f"{name} {direction}"
                print(f"{label:<22} {first:>9.2f} {deep:>9.2f} {deep / first:>6.2f}x", flush=True)
        plain, counted = await timed(
            client, (PAGE, {"first": args.size}), (COUNTED, {"first": args.size}), args.repeats
        )
        if args.narrow:
            await narrow_pages(client, app.state.services.scope_sizes, narrow, args)
    print(
        f"totalCount: first page {plain:.2f} ms without it, {counted:.2f} ms with it "
        f"(+{counted - plain:.2f} ms for an exact count of {args.customers} rows)"
    )
    print(f"worst deep/first ratio: {worst:.2f}x (goal <= 1.2x)")
    return 0


async def narrow_pages(
    client: httpx.AsyncClient, sizes: ScopeSizes, token: str, args: argparse.Namespace
) -> None:
    """The first page of every order as ``NARROW`` against the director's: as the page
    chooses the scope's form, then each form forced through ``ScopeSizes.cost``."""
    owned = -(-args.customers // args.narrow)
    chosen_cost = sizes.cost
    # The root list asks for one row past the page (``core.api.query``).
    first = ScopeSize(owned, args.customers).scope_first(args.size + 1, chosen_cost)
    form = "scope first" if first else "walked"
    print(
        f"narrow scope: {NARROW} owns {owned} of {args.customers}, first: {args.size}; "
        f"the page chooses: {form} (cost {chosen_cost})"
    )
    print(
        f"{'orderBy':<22} {'unscoped':>9} {'chosen':>9} {'walked':>9} {'scope 1st':>9}  (ms)",
        flush=True,
    )
    for name in ORDERS:
        for direction in ("ASC", "DESC"):
            page = (PAGE, {"first": args.size, "order": {"field": name, "direction": direction}})
            unscoped, chosen = await timed(client, page, page, args.repeats, token)
            forced = []
            for cost in (ALWAYS_WALK, ALWAYS_SCOPE_FIRST):
                sizes.cost = cost
                forced.append((await timed(client, page, page, args.repeats, token))[1])
            sizes.cost = chosen_cost
            label = f"{name} {direction}"
            walked, scope_first = forced
            print(
                f"{label:<22} {unscoped:>9.2f} {chosen:>9.2f} {walked:>9.2f} {scope_first:>9.2f}",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=5000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--narrow", type=int, default=0, help="an account manager owns 1 customer in NARROW"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database", help="a migrated, empty database (SQLAlchemy URL)")
    where.add_argument("--sqlite", action="store_true", help="a fresh SQLite file")
    args = parser.parse_args()
    if args.page * args.size > args.customers:
        parser.error("--page x --size must not exceed --customers")
    if args.database:
        return benchmark(args.database, args)
    if args.sqlite:  # migrated by ``seed``'s ``Services.prepare``
        return benchmark(fresh_sqlite("baton_keyset"), args)
    with migrated_database("baton_keyset") as url:
        return benchmark(url, args)


def benchmark(url: str, args: argparse.Namespace) -> int:
    began = time.perf_counter()
    asyncio.run(seed(url, args.customers, args.narrow))
    print(f"seeded in {time.perf_counter() - began:.1f} s")
    return asyncio.run(run(url, args))


if __name__ == "__main__":
    sys.exit(main())
