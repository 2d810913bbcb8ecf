"""The ``baton`` command against real databases."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from core.cli import app
from core.db import alembic_config

runner = CliRunner()


def baton(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


def test_user_add_then_token_for_that_user(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_JWT_SECRET", "cli-secret-that-is-long-enough-for-hs256")
    code, out = baton(
        "user",
        "add",
        "am.cli",
        "--name",
        "Cli User",
        "--role",
        "account_manager",
        "--role",
        "finance",
        "--team",
        "east",
        "--database",
        db_url,
    )
    assert code == 0, out
    code, out = baton("token", "am.cli", "--ttl", "600", "--database", db_url)
    assert code == 0, out
    claims = jwt.decode(
        out.strip(), "cli-secret-that-is-long-enough-for-hs256", algorithms=["HS256"]
    )
    assert claims["sub"] == "am.cli"
    assert claims["exp"] - claims["iat"] == 600


def test_bad_input_exits_non_zero_naming_the_field(db_url: str) -> None:
    code, out = baton("user", "add", "x", "--name", "X", "--role", "wizard", "--database", db_url)
    assert code == 1
    assert "roles" in out and "wizard" in out


def test_token_for_unknown_user_fails(db_url: str) -> None:
    code, out = baton("token", "ghost", "--database", db_url)
    assert code == 1
    assert "not found" in out


def test_db_upgrade_creates_and_migrates_a_new_sqlite_file(tmp_path: Path) -> None:
    code, out = baton("db", "upgrade", "--database", f"sqlite:///{tmp_path / 'new.db'}")
    assert code == 0, out
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert out.strip() == f"database at revision {head}"


def test_schema_export_writes_sdl(tmp_path: Path) -> None:
    code, _ = baton("schema", "export", "--output", str(tmp_path / "s.graphql"))
    assert code == 0
    assert "type Customer implements Node" in (tmp_path / "s.graphql").read_text()


def test_deactivate_and_overdue_handovers(db_url: str) -> None:
    for args in (
        ("user", "add", "tm.a", "--name", "TM", "--role", "team_manager"),
        ("user", "add", "am.a", "--name", "AM", "--role", "account_manager", "--manager", "tm.a"),
        ("user", "add", "am.b", "--name", "AM B", "--role", "account_manager"),
    ):
        assert baton(*args, "--database", db_url)[0] == 0

    import asyncio

    from core.db import Database
    from core.services import Actor, Services

    async def open_handover() -> None:
        db = Database(db_url)
        services = Services.create(db)
        customer = await services.customers.create(Actor("am.a"), {"name": "C"}, owner_id="am.a")
        request = await services.reassignment.request(
            Actor("am.a"), customer.id, "am.b", "NEEDS_CHANGE", None
        )
        await services.reassignment.review(Actor("tm.a"), request.id, True, None)
        await db.dispose()

    asyncio.run(open_handover())
    code, out = baton("handovers", "overdue", "--database", db_url)
    assert code == 0 and out.strip().endswith("0 overdue handover(s)")
    code, out = baton("handovers", "sweep", "--database", db_url)
    assert (code, out.strip()) == (0, "0 new DUE_SOON, 0 new OVERDUE")
    code, out = baton("events", "list", "--database", db_url)
    [event] = [json.loads(line) for line in out.splitlines()]
    assert (code, event["id"], event["kind"]) == (0, 1, "HANDOVER_OPENED")
    code, out = baton("events", "list", "--after", "1", "--database", db_url)
    assert (code, out) == (0, "")
    code, out = baton("user", "deactivate", "am.a", "--reason", "left", "--database", db_url)
    assert code == 0, out
    assert "deactivated am.a; opened 1 OWNER_LEFT requests" in out


def test_plugins_lists_name_version_and_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = baton("plugins")
    assert code == 0, out
    assert "banking 0.1.0\n  baton_assignment_dimensions\n" in out
    monkeypatch.setenv("BATON_PLUGINS", "manufacturing,acme")
    code, out = baton("plugins")
    assert code == 1
    assert "plugin 'acme': is not installed" in out


def test_tier_review_reports_movements(db_url: str) -> None:
    assert baton("demo", "--customers", "30", "--database", db_url)[0] == 0
    code, preview = baton("tiers", "review", "--dry-run", "--database", db_url)
    assert code == 0, preview
    code, out = baton("tiers", "review", "--database", db_url)
    assert code == 0, out
    assert "reviewed 30 customers" in out
    summary = out.strip().splitlines()[-1]
    assert preview.strip().splitlines()[-1] == f"dry run, nothing written: {summary}"
    code, again = baton("tiers", "review", "--database", db_url)
    assert "reviewed 30 customers, 0 tier movement(s)" in again
