"""Server CPU per list request, against the floor, with no HTTP client in the way.

    python -m benchmarks.server_cpu [--customers 2000] [--requests 50] [--rounds 10]
                                    [--database URL | --postgres]

The ASGI apps are called directly in this process (no socket, no client parsing the answer),
so the figure is what the server spends: the floor (the bare Starlette + Core query + orjson
route of ``benchmarks.list_customers``), Baton as the admin, as the account manager (OWN
scope), as the account manager sending the document's hash only (an automatic persisted
query, registered once before) and as the account manager with authorisation off. Rounds of
each run interleave and the best round counts, so a machine busy with other work slows all five
alike. Prints CPU ms per
request (this process's CPU time, the database driver's thread included) and the shares of the
floor: the server-side form of issue 21's goal (Baton at >= 0.5 of the floor). On PostgreSQL
(``--postgres`` starts an embedded one) the database server's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from benchmarks.list_customers import ACCOUNT_MANAGER, QUERY, SECRET, floor_app, seed
from benchmarks.pg import add_database_choice, on_chosen_database
from core.app import create_app
from core.config import Settings
from core.demo import ADMIN_ID
from core.identity import issue_token


async def call(app: Any, body: bytes, token: str | None) -> bytes:
    """One POST /graphql through the ASGI interface; the response body."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    out: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(out)


async def run(url: str, args: argparse.Namespace) -> None:
    body = orjson.dumps({"query": QUERY, "variables": {"first": 50}})
    sha256 = hashlib.sha256(QUERY.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
    registering = orjson.dumps(
        {"query": QUERY, "variables": {"first": 50}, "extensions": persisted}
    )
    by_hash = orjson.dumps({"variables": {"first": 50}, "extensions": persisted})
    now = datetime.now(UTC)
    tokens = {
        u: issue_token(u, SECRET, now=now, ttl=timedelta(hours=1))
        for u in (ADMIN_ID, ACCOUNT_MANAGER)
    }
    baton = create_app(Settings(database_url=url, jwt_secret=SECRET))
    unguarded = create_app(Settings(database_url=url, jwt_secret=SECRET, authorization=False))
    runs = {
        "floor (Core query + orjson)": (floor_app(url), None, body),
        "baton, admin": (baton, tokens[ADMIN_ID], body),
        "baton, account manager": (baton, tokens[ACCOUNT_MANAGER], body),
        "baton, account manager, by hash": (baton, tokens[ACCOUNT_MANAGER], by_hash),
        "baton, account manager, authz off": (unguarded, tokens[ACCOUNT_MANAGER], body),
    }
    async with baton.router.lifespan_context(baton), unguarded.router.lifespan_context(unguarded):
        await call(baton, registering, tokens[ACCOUNT_MANAGER])
        for app, token, sent in runs.values():
            for _ in range(20):  # warm-up, and a check of the answer
                answer = orjson.loads(await call(app, sent, token))
            if "errors" in answer or len(answer["data"]["customers"]["edges"]) != 50:
                raise RuntimeError(f"unexpected answer: {str(answer)[:300]}")
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(args.rounds):
            for name, (app, token, sent) in runs.items():
                began = time.process_time()
                for _ in range(args.requests):
                    await call(app, sent, token)
                spent = (time.process_time() - began) * 1000 / args.requests
                best[name] = min(best[name], spent)
    floor = best["floor (Core query + orjson)"]
    print(
        f"customers(first: 50) with owner, {args.customers} customers, server CPU per request "
        f"(best of {args.rounds} rounds of {args.requests}), {url.split(':')[0]}"
    )
    print(f"{'run':<36} {'CPU ms':>8} {'share of the floor':>19}")
    for name, spent in best.items():
        print(f"{name:<36} {spent:>8.2f} {floor / spent:>18.2f}x")
    on, off = best["baton, account manager"], best["baton, account manager, authz off"]
    print(f"authorisation overhead (CPU with / without): {on / off:.3f}")
    print(f"request body: {len(body)} bytes with the text, {len(by_hash)} by hash")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    add_database_choice(parser, "default: a fresh SQLite file in a temp dir")
    args = parser.parse_args()
    return on_chosen_database(args, "baton_cpu", lambda url: benchmark(url, args))


def benchmark(url: str, args: argparse.Namespace) -> int:
    asyncio.run(seed(url, args.customers))
    asyncio.run(run(url, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
