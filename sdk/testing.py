"""Testing plugins against the real Baton: a pytest plugin (entry point ``pytest11``).

Fixtures:
    ``baton_plugins``: the plugins to load (override it; default: every installed one).
    ``baton_harness``: a running Baton app on a fresh database with those plugins, and a
    GraphQL client acting as any role (``baton_harness.execute("finance", query)``).

The database is a fresh SQLite file; given a PostgreSQL server (``--baton-database-url URL``
or ``BATON_PLUGIN_TEST_DATABASE_URL``), every test that uses the harness runs once on SQLite
and once on a fresh, migrated PostgreSQL database created on that server (and dropped after).

``PluginContract``: subclass it in your tests, set ``plugin`` and ``sample``, and get hook
validation, the SDL presence of every field, permission denial and an input round trip with
its audit entries, for free. Everything runs synchronously: no async test plugin needed.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from core.app import create_app
from core.clock import FixedClock
from core.config import Settings, normalise_database_url
from core.db import Database
from core.identity import issue_token
from core.plugins import Plugin, camel, load_plugins
from core.services import Actor, Services

SECRET = "baton-sdk-testing-secret-long-enough-for-hs256"
DATABASE_URL_VARIABLE = "BATON_PLUGIN_TEST_DATABASE_URL"


class BatonHarness:
    """A real Baton app with the given plugins, driven synchronously from tests."""

    def __init__(self, plugins: list[str] | None, database: Path | str) -> None:
        """``database``: an SQLite file, or the URL of a migrated database."""
        self.loop = asyncio.new_event_loop()
        self.clock = FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        settings = Settings(
            database_url=(
                f"sqlite+aiosqlite:///{database}" if isinstance(database, Path) else database
            ),
            jwt_secret=SECRET,
            plugins=None if plugins is None else tuple(plugins),
        )
        self.app = create_app(settings, clock=self.clock)
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.run(self._lifespan.__aenter__())
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://baton.test"
        )
        self._users: set[str] = set()

    @property
    def services(self) -> Services:
        return self.app.state.services

    def run(self, work: Any) -> Any:
        """Run a coroutine on the harness's event loop."""
        return self.loop.run_until_complete(work)

    def user(self, role: str) -> str:
        """The id of a test user holding ``role`` (created on first use)."""
        user_id = f"{role.replace('_', '-')}.test"
        if user_id not in self._users:
            self.run(self.services.users.create(Actor.system(), user_id, role, roles=[role]))
            self._users.add(user_id)
        return user_id

    def execute(self, role: str, query: str, variables: dict[str, Any] | None = None) -> Any:
        """The JSON body of a GraphQL request made by a user with ``role``."""
        token = issue_token(self.user(role), SECRET, now=datetime.now(UTC), ttl=timedelta(hours=1))
        response = self.run(
            self.http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, role: str, query: str, variables: dict[str, Any] | None = None) -> Any:
        """The ``data`` of a request that must succeed without errors."""
        body = self.execute(role, query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def sdl(self) -> str:
        return str(self.app.state.schema.as_str())

    def close(self) -> None:
        self.run(self.http.aclose())
        self.run(self._lifespan.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture
def baton_plugins() -> list[str] | None:
    """The plugins the harness loads; override with your plugin's name(s). None: all installed."""
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--baton-database-url",
        default=None,
        help="A PostgreSQL server (postgresql://user:password@host/postgres) on which the "
        f"Baton harness also runs each test (default: ${DATABASE_URL_VARIABLE}).",
    )


def postgresql_server(config: pytest.Config) -> str | None:
    """The PostgreSQL server URL the harness should also run on, if any."""
    given = config.getoption("baton_database_url", None) or os.environ.get(DATABASE_URL_VARIABLE)
    return given or None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "baton_backend" in metafunc.fixturenames:
        postgresql = ["postgresql"] if postgresql_server(metafunc.config) else []
        metafunc.parametrize("baton_backend", ["sqlite", *postgresql], scope="function")


@pytest.fixture
def baton_backend() -> str:
    """``sqlite``, or ``postgresql`` on the server given by ``--baton-database-url``."""
    return "sqlite"


async def _on_server(server_url: str, statement: str) -> None:
    engine = create_async_engine(normalise_database_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def baton_postgresql_template(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database on the configured server that each test's database copies
    (migrating once per session instead of once per test); dropped at the end."""
    server = postgresql_server(request.config)
    assert server is not None, f"set {DATABASE_URL_VARIABLE} or --baton-database-url"
    name = f"baton_plugin_template_{uuid.uuid4().hex[:16]}"
    asyncio.run(_on_server(server, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(_migrate(_database_url(server, name)))
        yield name
    finally:
        asyncio.run(_on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _database_url(server: str, database: str) -> str:
    url = make_url(normalise_database_url(server)).set(database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def baton_database(
    baton_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Path | str]:
    """A fresh database for one test: an SQLite file, or a new migrated PostgreSQL
    database on the configured server, dropped afterwards."""
    server = postgresql_server(request.config)
    if baton_backend == "sqlite" or server is None:
        yield tmp_path / "baton.db"
        return
    template = request.getfixturevalue("baton_postgresql_template")
    name = f"baton_plugin_test_{uuid.uuid4().hex[:16]}"
    asyncio.run(_on_server(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _database_url(server, name)
    finally:
        asyncio.run(_on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def baton_harness(
    baton_plugins: list[str] | None, baton_database: Path | str
) -> Iterator[BatonHarness]:
    """A running Baton on a fresh database (see ``baton_database``) with ``baton_plugins``."""
    harness = BatonHarness(baton_plugins, baton_database)
    yield harness
    harness.close()


class PluginContract:
    """What every plugin must satisfy; subclass as ``class TestAcme(PluginContract)``.

    Set ``plugin`` (its entry-point name) and ``sample``: GraphQL input values (camelCase
    field → JSON value) for some or all of its special-needs fields. ``denied_role`` is a role
    that must not read the fields the plugin does not grant it (default ``finance``).
    """

    plugin: ClassVar[str]
    sample: ClassVar[dict[str, Any]] = {}
    denied_role: ClassVar[str] = "finance"

    @pytest.fixture
    def baton_plugins(self) -> list[str]:
        return [self.plugin]

    def loaded(self) -> Plugin:
        (plugin,) = load_plugins([self.plugin]).plugins
        return plugin

    def test_hooks_are_valid(self) -> None:
        plugin = self.loaded()
        assert plugin.hooks, "the plugin implements no hook"

    def test_every_field_is_in_the_schema(self, baton_harness: BatonHarness) -> None:
        plugin = self.loaded()
        sdl = baton_harness.sdl()
        for spec in plugin.fields:
            block = re.search(rf"type {plugin.type_name} {{(.*?)}}", sdl, re.S)
            assert block and f"  {camel(spec.name)}:" in block.group(1), spec.name
            assert f"input {plugin.type_name}Input" in sdl

    def test_fields_are_denied_without_a_grant(self, baton_harness: BatonHarness) -> None:
        plugin = self.loaded()
        granted = {g.object.split(".", 1)[1] for g in plugin.policies if g.role == self.denied_role}
        denied = [camel(f.name) for f in plugin.fields if camel(f.name) not in granted]
        if "*" in granted or not denied:
            pytest.skip(f"{self.plugin} grants {self.denied_role} every field")
        customer = self._customer_with_sample(baton_harness)
        selection = " ".join(denied)
        body = baton_harness.execute(
            self.denied_role,
            f"query($id: ID!) {{ customer(id: $id) {{ specialNeeds {{ "
            f"{camel(self.plugin)} {{ {selection} }} }} }} }}",
            {"id": customer},
        )
        values = body["data"]["customer"]["specialNeeds"][camel(self.plugin)]
        assert values == dict.fromkeys(denied), values
        codes = {e["extensions"]["code"] for e in body.get("errors", [])}
        assert codes == {"FORBIDDEN_FIELD"}

    def test_input_round_trips_with_audit(self, baton_harness: BatonHarness) -> None:
        if not self.sample:
            pytest.skip("set `sample` to test the input round trip")
        customer = self._customer_with_sample(baton_harness)
        selection = " ".join(self.sample)
        data = baton_harness.data(
            "admin",
            f"query($id: ID!) {{ customer(id: $id) {{ specialNeeds {{ "
            f"{camel(self.plugin)} {{ {selection} }} }} }} }}",
            {"id": customer},
        )
        assert data["customer"]["specialNeeds"][camel(self.plugin)] == self.sample
        audit = baton_harness.data(
            "admin",
            "query($id: ID!) { auditLog(filter: {entityId: $id}) { edges { node { "
            "changes { field after } } } } }",
            {"id": customer},
        )
        audited = {
            c["field"]: c["after"] for e in audit["auditLog"]["edges"] for c in e["node"]["changes"]
        }
        for name in self.sample:
            assert f"specialNeeds.{self.plugin}.{name}" in audited, name

    def _customer_with_sample(self, harness: BatonHarness) -> str:
        created = harness.data(
            "admin",
            'mutation { createCustomer(input: {name: "Contract"}) { customer { id version } } }',
        )["createCustomer"]["customer"]
        harness.data(
            "admin",
            "mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) "
            "{ customer { id } } }",
            {
                "input": {
                    "id": created["id"],
                    "expectedVersion": created["version"],
                    "specialNeeds": {camel(self.plugin): self.sample},
                }
            },
        )
        return str(created["id"])
