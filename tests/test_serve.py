"""``baton serve`` for real: graceful shutdown on SIGTERM, and several workers' metrics."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    BACKENDS,
    JWT_SECRET,
    GraphQLClient,
    _pg_execute,
    answers,
    asyncpg_url,
    baton_server,
)
from tests.test_policy_propagation import _seed

BATON = str(Path(sys.executable).parent / "baton")
CREATE = 'mutation { createCustomer(input: {name: "Late"}) { customer { id name } } }'


def _post(base: str, query: str) -> httpx.Response:
    token = GraphQLClient(None, None).token("admin")  # type: ignore[arg-type]
    return httpx.post(
        f"{base}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=30,
    )


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "baton.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_seed(url))
    args = ["--database", url, "--graceful-timeout", "20"]
    with baton_server(args, tmp_path / "log") as (server, base):
        lock = sqlite3.connect(path, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the mutation waits for this write lock
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_post, base, CREATE)
            time.sleep(1)
            assert not pending.done()
            server.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while answers(base):  # the listening socket closes at once
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                time.sleep(0.05)
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{base}/healthz", timeout=1)
            assert server.poll() is None  # still finishing the request in flight
            lock.execute("ROLLBACK")
            response = pending.result(timeout=20)
        lock.close()
        assert response.status_code == 200, response.text
        assert response.json()["data"]["createCustomer"]["customer"]["name"] == "Late"
        assert server.wait(20) == 0


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL")
def test_two_workers_answer_and_metrics_add_them_up(postgres: str, tmp_path: Path) -> None:
    name = f"serve_{os.getpid()}_{time.monotonic_ns()}"
    asyncio.run(_pg_execute(postgres, f"CREATE DATABASE {name} TEMPLATE baton_template"))
    url = asyncpg_url(postgres, name)
    asyncio.run(_seed(url))
    log = tmp_path / "log"

    def served_by() -> set[int]:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        return {line["pid"] for line in lines if line.get("path") == "/graphql"}

    requests = 0
    with baton_server(["--workers", "2", "--database", url], log) as (_, base):
        # On a loaded machine one worker may take every early connection while the other is
        # still starting: send rounds until both have answered (bounded).
        with ThreadPoolExecutor(8) as pool:
            for _ in range(10):
                answers = list(pool.map(lambda _: _post(base, "{ viewer { roles } }"), range(40)))
                assert all(a.status_code == 200 for a in answers)
                requests += len(answers)
                if len(served_by()) == 2:
                    break
        text = httpx.get(f"{base}/metrics", timeout=5).text
    assert len(served_by()) == 2, served_by()
    # Either worker's /metrics counts the requests both of them served.
    counts = {
        s.labels["type"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "baton_graphql_operation_duration_seconds_count"
    }
    assert counts == {"query": requests}


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL")
def test_two_workers_share_connections_that_arrive_together(postgres: str, tmp_path: Path) -> None:
    """Each worker listens on a socket of its own: 32 connections opened at once are spread
    over both (with one shared socket, the first worker to wake took nearly all of them and
    kept them for as long as the clients did)."""
    name = f"serve_{os.getpid()}_{time.monotonic_ns()}"
    asyncio.run(_pg_execute(postgres, f"CREATE DATABASE {name} TEMPLATE baton_template"))
    url = asyncpg_url(postgres, name)
    asyncio.run(_seed(url))
    log = tmp_path / "log"

    def lines() -> list[dict[str, object]]:
        return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]

    with baton_server(["--workers", "2", "--database", url], log) as (_, base):
        deadline = time.monotonic() + 30
        while len({line["pid"] for line in lines() if "startup complete" in str(line)}) < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.1)
        token = GraphQLClient(None, None).token("admin")  # type: ignore[arg-type]

        async def connect_at_once(count: int) -> None:
            clients = [httpx.AsyncClient(base_url=base, timeout=30) for _ in range(count)]
            try:
                answers = await asyncio.gather(
                    *(
                        c.post(
                            "/graphql",
                            json={"query": "{ viewer { roles } }"},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        for c in clients
                    )
                )
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
            # Answered, by either worker (a burst of new connections on one cold worker can
            # outrun its pool: 503, counted all the same).
            assert all(a.status_code in (200, 503) for a in answers)

        asyncio.run(connect_at_once(32))
        time.sleep(0.5)  # the access lines are written
    served = Counter(line["pid"] for line in lines() if line.get("path") == "/graphql")
    assert sum(served.values()) == 32
    # Spread by a hash: fewer than 6 of 32 on either worker has a chance of about 1 in 10,000.
    assert len(served) == 2 and min(served.values()) >= 6, served


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL")
def test_several_workers_on_a_port_in_use_exit_1_saying_so(postgres: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        database = asyncpg_url(postgres, "baton_template")
        done = subprocess.run(
            [BATON, "serve", "--workers", "2", "--port", str(port), "--database", database],
            env={**os.environ, "BATON_JWT_SECRET": JWT_SECRET},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr
