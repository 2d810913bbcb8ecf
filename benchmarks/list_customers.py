"""The customers list over real HTTP, against a bare floor and with authorisation switched off.

    python -m benchmarks.list_customers [--customers 2000] [--requests 300] [--rounds 3]
                                        [--concurrency 1,16] [--database URL | --postgres]

One run seeds a fresh database (and gathers planner statistics), serves it with uvicorn in
worker processes on 127.0.0.1, and prints, at each client concurrency, requests/s, p50, p95
and p99 for:

- floor: a bare Starlette route answering the same rows with one SQLAlchemy Core query + orjson;
- Baton as the admin, and as an account manager (default policies, OWN scope);
- Baton as the same account manager with authorisation off (the benchmark-only switch).

Each is served by its own process for the whole run and measured ``--rounds`` times, the runs
interleaved (forwards, then backwards); the figures are medians over the rounds, and the
authorisation overhead is the median of the rounds' ratios.

On PostgreSQL (``--postgres`` starts an embedded one), PostGraphile 4 answers the same list
shape as a peer when ``node`` and ``npm`` are present (``benchmarks.peer``), and Baton's ratio
to it is printed; without them the peer is skipped with a message.

Then, in process, SQL statements and Casbin calls per request for ``first: 10`` and
``first: 100`` (they must not grow with the page size). Exits non-zero if they do.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import uvicorn
from sqlalchemy import event, insert, select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks import peer
from benchmarks.pg import add_database_choice, on_chosen_database
from core.app import create_app
from core.config import Settings
from core.db import Database
from core.demo import ADMIN_ID, USERS, demo_customer
from core.domain import Customer, Ownership, User
from core.identity import issue_token
from core.ids import new_id
from core.services import Actor, Services

SECRET = "benchmark-secret-that-is-long-enough-for-hs256"
QUERY = """query($first: Int!) { customers(first: $first) {
  edges { node { id name territory valueTier owner { id name } } }
  pageInfo { hasNextPage endCursor } } }"""
ACCOUNT_MANAGER = "am.chen"


async def seed(url: str, count: int) -> None:
    """Demo users through the services; customers and ownerships in bulk (same tables)."""
    db = Database(url)
    services = Services.create(db)
    await services.prepare()
    for u in USERS:
        await services.users.create(
            Actor.system(), u.id, u.name, roles=list(u.roles), manager_id=u.manager, team=u.team
        )
    rng = random.Random(7)
    now = datetime.now(UTC)
    customers, ownerships = [], []
    for i in range(count):
        profile, owner = demo_customer(rng, i)
        cid = new_id("Customer")
        customers.append(
            {
                "id": cid,
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "first_contact_id": owner,
                **profile,
            }
        )
        # Account manager am.chen owns a good share, so an OWN-scoped page is full.
        owner = ACCOUNT_MANAGER if i % 4 == 0 else owner
        ownerships.append(
            {"customer_id": cid, "owner_id": owner, "assigned_by": "MANUAL", "valid_from": now}
        )
    async with db.transaction() as session:
        await session.execute(insert(Customer), customers)
        await session.execute(insert(Ownership), ownerships)
    # Planner statistics, as autovacuum would gather them after a bulk load: without them
    # PostgreSQL plans every list (the floor's too) for two-row tables.
    async with db.engine.begin() as conn:  # committed: statistics roll back with the rest
        await conn.execute(text("ANALYZE"))
    await db.dispose()


def floor_app(url: str) -> Starlette:
    """The same rows with no GraphQL, no authorisation: one Core query and orjson."""
    db = Database(url)
    owner = User.__table__.alias("owner")
    stmt = (
        select(
            Customer.id,
            Customer.name,
            Customer.territory,
            Customer.value_tier,
            owner.c.id.label("owner_id"),
            owner.c.name.label("owner_name"),
        )
        .outerjoin(Ownership, (Ownership.customer_id == Customer.id) & Ownership.valid_to.is_(None))
        .outerjoin(owner, owner.c.id == Ownership.owner_id)
        .order_by(Customer.name, Customer.id)
    )

    async def floor(request: Request) -> Response:
        first = (await request.json())["variables"]["first"]
        async with db.engine.connect() as conn:
            rows = (await conn.execute(stmt.limit(first + 1))).all()
        edges = [
            {
                "node": {
                    "id": r.id,
                    "name": r.name,
                    "territory": r.territory,
                    "valueTier": r.value_tier,
                    "owner": {"id": r.owner_id, "name": r.owner_name} if r.owner_id else None,
                }
            }
            for r in rows[:first]
        ]
        body = {
            "data": {
                "customers": {
                    "edges": edges,
                    "pageInfo": {"hasNextPage": len(rows) > first, "endCursor": None},
                }
            }
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/graphql", floor, methods=["POST"])])


def _serve(factory: Callable[[], Any], port: int, options: dict[str, Any]) -> None:
    uvicorn.run(factory(), host="127.0.0.1", port=port, log_level="warning", **options)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An app served by uvicorn in its own process (so client and server do not share a core)."""

    def __init__(self, factory: Callable[[], Any], **uvicorn_options: Any) -> None:
        self.port = _free_port()
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(factory, self.port, uvicorn_options), daemon=True
        )

    def __enter__(self) -> str:
        self.process.start()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/healthz", timeout=1)  # any answer means it listens
                return url
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(10)


def baton_page(body: dict[str, Any]) -> list[Any]:
    """The customers of a Baton (or floor) answer."""
    return body["data"]["customers"]["edges"]  # type: ignore[no-any-return]


async def measure(
    url: str,
    token: str | None,
    requests: int,
    concurrency: int,
    query: str = QUERY,
    page: Callable[[dict[str, Any]], list[Any]] = baton_page,
) -> dict[str, float]:
    """Requests/s, p50, p95 and p99 (ms) of ``requests`` list queries with ``first: 50``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = {"query": query, "variables": {"first": 50}}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for _ in range(10):  # warm-up: connections, caches, the permission view
            (await client.post("/graphql", json=payload)).raise_for_status()
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                response = await client.post("/graphql", json=payload)
                latencies.append(time.perf_counter() - start)
                body = response.json()
                if "errors" in body or len(page(body)) != 50:
                    raise RuntimeError(f"unexpected answer: {str(body)[:300]}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "rps": requests / elapsed,
        "p50": cuts[49] * 1000,
        "p95": cuts[94] * 1000,
        "p99": cuts[98] * 1000,
    }


async def per_request_costs(url: str, first: int) -> tuple[int, int]:
    """SQL statements and Casbin calls of one list request as the account manager."""
    app = create_app(Settings(database_url=url, jwt_secret=SECRET))
    services: Services = app.state.services
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    async with app.router.lifespan_context(app):
        token = issue_token(ACCOUNT_MANAGER, SECRET, now=datetime.now(UTC), ttl=timedelta(hours=1))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            payload = {"query": QUERY, "variables": {"first": first}}
            headers = {"Authorization": f"Bearer {token}"}
            await client.post("/graphql", json=payload, headers=headers)  # warm-up
            event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
            calls_before = services.authz.casbin_calls
            body = (await client.post("/graphql", json=payload, headers=headers)).json()
            event.remove(services.db.engine.sync_engine, "before_cursor_execute", count)
            assert len(body["data"]["customers"]["edges"]) == first, body
    return statements, services.authz.casbin_calls - calls_before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every run, interleaved (default 3)"
    )
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[1, 16],
        help="comma-separated client concurrencies, each a run of its own (default 1,16)",
    )
    add_database_choice(parser, "default: a fresh SQLite file in a temp dir")
    args = parser.parse_args()
    return on_chosen_database(args, "baton_bench", lambda url: benchmark(url, args))


def benchmark(url: str, args: argparse.Namespace) -> int:
    asyncio.run(seed(url, args.customers))
    secret = SECRET
    now = datetime.now(UTC)
    tokens = {
        u: issue_token(u, secret, now=now, ttl=timedelta(hours=1))
        for u in (ADMIN_ID, ACCOUNT_MANAGER)
    }
    runs = {
        "floor (Core query + orjson)": (lambda: floor_app(url), None),
        "baton, admin": (
            lambda: create_app(Settings(database_url=url, jwt_secret=SECRET)),
            tokens[ADMIN_ID],
        ),
        "baton, account manager": (
            lambda: create_app(Settings(database_url=url, jwt_secret=SECRET)),
            tokens[ACCOUNT_MANAGER],
        ),
        "baton, account manager, authz off": (
            lambda: create_app(Settings(database_url=url, jwt_secret=SECRET, authorization=False)),
            tokens[ACCOUNT_MANAGER],
        ),
    }
    with ExitStack() as servers:
        bases = {
            name: servers.enter_context(Server(factory)) for name, (factory, _) in runs.items()
        }
        for concurrency in args.concurrency:
            rounds: list[dict[str, dict[str, float]]] = []
            for turn in range(args.rounds):
                # Every run in every round, forwards then backwards: neither the order nor a
                # passing disturbance of the machine favours one of them.
                order = list(runs) if turn % 2 == 0 else list(reversed(runs))
                rounds.append(
                    {
                        name: asyncio.run(
                            measure(bases[name], runs[name][1], args.requests, concurrency)
                        )
                        for name in order
                    }
                )
            results = report(rounds, args, url, concurrency)
            if not url.startswith("sqlite"):
                compare_with_peer(url, args, results["baton, account manager"], concurrency)
    costs = {first: asyncio.run(per_request_costs(url, first)) for first in (10, 100)}
    for first, (statements, calls) in costs.items():
        print(
            f"first={first:<4} SQL statements per request: {statements}, "
            f"Casbin calls per request: {calls}"
        )
    if costs[10] != costs[100]:
        print("FAIL: per-request SQL statements or Casbin calls grow with the page size")
        return 1
    return 0


def report(
    rounds: list[dict[str, dict[str, float]]], args: argparse.Namespace, url: str, concurrency: int
) -> dict[str, dict[str, float]]:
    """The runs of one concurrency against the floor (the median of each figure over the
    rounds), and the authorisation overhead (the median of the rounds' ratios); returns the
    medians."""
    results = {
        name: {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
        for name in rounds[0]
    }
    floor = "floor (Core query + orjson)"
    print(
        f"customers(first: 50), {args.customers} customers, {args.requests} requests, "
        f"concurrency {concurrency}, {url.split(':')[0]}, median of {len(rounds)} rounds"
    )
    print(f"{'run':<36} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'vs floor':>9}")
    for name, r in results.items():
        share = statistics.median(x[name]["rps"] / x[floor]["rps"] for x in rounds)
        print(
            f"{name:<36} {r['rps']:>8.1f} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['p99']:>8.2f} "
            f"{share:>8.2f}x"
        )
    on, off = "baton, account manager", "baton, account manager, authz off"
    overheads = [r[off]["rps"] / r[on]["rps"] for r in rounds]
    p50s = [r[on]["p50"] / r[off]["p50"] for r in rounds]
    print(
        f"authorisation overhead (authz off req/s / authz on req/s): "
        f"{statistics.median(overheads):.3f}  (rounds {', '.join(f'{o:.3f}' for o in overheads)}; "
        f"p50 ratio {statistics.median(p50s):.3f}; goal <= 1.05)"
    )
    return results


def compare_with_peer(
    url: str, args: argparse.Namespace, baton: dict[str, float], concurrency: int
) -> None:
    """PostGraphile on the same database and list shape, and Baton's ratio to it."""
    why = peer.unavailable()
    if why is not None:
        print(f"peer PostGraphile {peer.VERSION}: skipped ({why})")
        return
    with peer.PostGraphile(url) as base:
        found = asyncio.run(
            measure(base, None, args.requests, concurrency, peer.QUERY, peer.page_of)
        )
    print(
        f"peer PostGraphile {peer.VERSION} (no authorisation): {found['rps']:.1f} req/s, "
        f"p50 {found['p50']:.2f} ms, p99 {found['p99']:.2f} ms; "
        f"baton, account manager / peer: {baton['rps'] / found['rps']:.2f}x (stretch goal >= 0.5)"
    )


if __name__ == "__main__":
    sys.exit(main())
