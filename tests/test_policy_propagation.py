"""Policy changes reach every worker process on its next request (PostgreSQL, LISTEN/NOTIFY).

A real ``baton serve --workers 2`` serves a fresh database; each request goes on a new
connection, in concurrent batches, so that both workers serve requests before and after each
change. A worker that missed a change would answer from its stale policies.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from core.db import Database
from core.services import Actor, Services
from tests.conftest import BACKENDS, GraphQLClient, _pg_execute, asyncpg_url, baton_server

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL")
REQUESTS = 40
QUERY = "query($id: ID!) { customer(id: $id) { name annualRevenue } viewer { roles } }"


async def _seed(url: str) -> str:
    db = Database(url)
    services = Services.create(db)
    await services.prepare()
    await services.users.create(Actor.system(), "admin", "Admin", roles=["admin"])
    await services.users.create(Actor.system(), "fin.he", "He Xin", roles=["finance"])
    customer = await services.customers.create(
        Actor("admin"), {"name": "Acme", "annual_revenue": Decimal("4242.00")}
    )
    await db.dispose()
    return customer.id


@pytest.fixture
def two_workers(postgres: str) -> Iterator[tuple[str, str, list[int], str]]:
    """(base URL, customer id, worker pids, database URL) of a two-worker server on a fresh
    database."""
    name = f"propagation_{os.getpid()}_{time.monotonic_ns()}"
    asyncio.run(_pg_execute(postgres, f"CREATE DATABASE {name} TEMPLATE baton_template"))
    url = asyncpg_url(postgres, name)
    customer_id = asyncio.run(_seed(url))
    with baton_server(["--workers", "2", "--database", url]) as (server, base):
        workers = [
            p.pid
            for p in psutil.Process(server.pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline())
        ]
        yield base, customer_id, workers, url


def _ask(base: str, user: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """One request on a new connection (so the OS may hand it to either worker)."""
    token = GraphQLClient(None, None).token(user)  # type: ignore[arg-type]
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _all(base: str, user: str, customer_id: str) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(8) as pool:
        return list(
            pool.map(lambda _: _ask(base, user, QUERY, {"id": customer_id}), range(REQUESTS))
        )


def _cpu_seconds(pids: list[int]) -> list[float]:
    return [sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids]


def test_every_worker_applies_a_change_on_its_next_request(
    two_workers: tuple[str, str, list[int], str],
) -> None:
    base, customer_id, workers, _ = two_workers
    assert len(workers) == 2, workers
    grant = """mutation($action: String!) { grantPermission(input: {role: "finance",
        object: "Customer.annualRevenue", action: $action}) { permission { role } } }"""

    cpu = _cpu_seconds(workers)
    before = _all(base, "fin.he", customer_id)
    assert all(r["data"]["customer"]["annualRevenue"] is None for r in before)
    # Both workers served part of the batch (an idle worker spends next to no CPU time).
    assert all(
        after - start > 0.02 for start, after in zip(cpu, _cpu_seconds(workers), strict=True)
    )

    assert "errors" not in _ask(base, "admin", grant, {"action": "read"})
    after_grant = _all(base, "fin.he", customer_id)
    assert [r["data"]["customer"]["annualRevenue"] for r in after_grant] == ["4242.00"] * REQUESTS

    revoke = grant.replace("grantPermission", "revokePermission")
    assert "errors" not in _ask(base, "admin", revoke, {"action": "read"})
    after_revoke = _all(base, "fin.he", customer_id)
    assert all(r["data"]["customer"]["annualRevenue"] is None for r in after_revoke)

    role = """mutation { assignRole(input: {userId: "fin.he", role: "auditor"}) { user { id } } }"""
    assert "errors" not in _ask(base, "admin", role, {})
    assert all(
        r["data"]["viewer"]["roles"] == ["auditor", "finance"]
        for r in _all(base, "fin.he", customer_id)
    )
    unassign = role.replace("assignRole", "unassignRole")
    assert "errors" not in _ask(base, "admin", unassign, {})
    assert all(
        r["data"]["viewer"]["roles"] == ["finance"] for r in _all(base, "fin.he", customer_id)
    )


def test_a_lost_notification_does_not_leave_a_worker_stale(
    two_workers: tuple[str, str, list[int], str],
) -> None:
    """A change whose NOTIFY never arrives still reaches every worker on its next request:
    each request reads the policy version along with its user."""
    base, customer_id, workers, url = two_workers
    assert all(
        r["data"]["customer"]["annualRevenue"] is None for r in _all(base, "fin.he", customer_id)
    )

    async def grant_without_notify() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            async with conn.transaction():  # what a change leaves behind, minus the NOTIFY
                await conn.execute(
                    "INSERT INTO casbin_rule (ptype, v0, v1, v2) "
                    "VALUES ('p', 'finance', 'Customer.annualRevenue', 'read')"
                )
                await conn.execute("UPDATE policy_version SET version = version + 1")
        finally:
            await conn.close()

    asyncio.run(grant_without_notify())
    cpu = _cpu_seconds(workers)
    after = _all(base, "fin.he", customer_id)
    assert [r["data"]["customer"]["annualRevenue"] for r in after] == ["4242.00"] * REQUESTS
    assert all(  # both workers answered part of the batch
        later - start > 0.02 for start, later in zip(cpu, _cpu_seconds(workers), strict=True)
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_burst_of_requests_during_a_policy_reload_does_not_exhaust_the_pool(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    """More requests at once than the pool has connections (10 + 10), arriving while the
    policies must be reloaded (at start, or after a change): each gives its connection back
    before it waits for the reload, which reads on connections of its own. Holding them, the
    requests starved the reload until the pool's 2 s timeout and 13 of 32 got a 503."""
    services.authz.invalidate()
    answers = await asyncio.gather(*(gql.post("admin", "{ viewer { roles } }") for _ in range(32)))
    assert [a.status_code for a in answers] == [200] * 32, [a.text for a in answers][:3]
