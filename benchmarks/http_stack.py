"""Server CPU per list request over HTTP, on each event loop and HTTP parser uvicorn offers.

    python -m benchmarks.http_stack [--customers 2000] [--requests 1000] [--rounds 3]

Baton, as the account manager, is served by uvicorn in a process of its own twice: on
asyncio's event loop with h11 (pure Python), and on uvloop with httptools (what ``baton serve``
runs on, uvicorn's choice when they are installed). Four clients send ``customers(first: 50)``;
the server process's CPU time (user + system, psutil) per request is taken in interleaved
rounds. Prints each round, the medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from benchmarks.list_customers import ACCOUNT_MANAGER, SECRET, Server, measure, seed
from core.app import create_app
from core.config import Settings
from core.identity import issue_token

STACKS = {"asyncio + h11": ("asyncio", "h11"), "uvloop + httptools": ("uvloop", "httptools")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'stack.db'}"
    asyncio.run(seed(url, args.customers))
    token = issue_token(ACCOUNT_MANAGER, SECRET, now=datetime.now(UTC), ttl=timedelta(hours=1))

    def app() -> object:
        return create_app(Settings(database_url=url, jwt_secret=SECRET))

    cpu: dict[str, list[float]] = {name: [] for name in STACKS}
    servers = {name: Server(app, loop=loop, http=http) for name, (loop, http) in STACKS.items()}
    bases = {name: server.__enter__() for name, server in servers.items()}
    try:
        for turn in range(args.rounds):
            for name in list(STACKS) if turn % 2 == 0 else reversed(STACKS):
                process = psutil.Process(servers[name].process.pid)
                before = process.cpu_times()
                asyncio.run(measure(bases[name], token, args.requests, 4))
                after = process.cpu_times()
                spent = after.user + after.system - before.user - before.system
                cpu[name].append(spent / args.requests * 1000)
                print(f"round {turn + 1}  {name:<20} {cpu[name][-1]:.3f} ms CPU per request")
    finally:
        for server in servers.values():
            server.__exit__()
    medians = {name: statistics.median(values) for name, values in cpu.items()}
    for name, value in medians.items():
        print(f"median {name:<20} {value:.3f} ms CPU per request")
    fast, slow = medians["uvloop + httptools"], medians["asyncio + h11"]
    print(f"uvloop + httptools / asyncio + h11: {fast / slow:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
