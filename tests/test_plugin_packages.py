"""A partner's path end to end: `baton plugin new`, a real install, discovery through the
`baton.plugins` entry point, and the scaffold's own tests passing unchanged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from core.plugins import load_plugins
from core.scaffold import scaffold
from sdk.testing import DATABASE_URL_VARIABLE, BatonHarness
from tests.conftest import BACKENDS
from tests.test_docs import BLOCK, DOCS

TUTORIAL = DOCS / "plugins" / "tutorial.md"
TESTING_GUIDE = DOCS / "plugins" / "testing.md"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The scaffolded ``acme_energy`` package, and the directory pip installed it into."""
    base = tmp_path_factory.mktemp("partner")
    root = scaffold("acme_energy", base)
    site = base / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    yield root, site


def pytest_in(root: Path, site: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(site), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_scaffold_passes_its_own_tests_unchanged(installed: tuple[Path, Path]) -> None:
    root, site = installed
    assert "5 passed" in pytest_in(root, site)


def test_the_scaffold_tests_also_run_on_postgresql_when_given_a_server(
    installed: tuple[Path, Path], request: pytest.FixtureRequest
) -> None:
    """``BATON_PLUGIN_TEST_DATABASE_URL`` (here the suite's embedded PostgreSQL) runs each
    harness test on SQLite and on a fresh PostgreSQL database, dropped afterwards."""
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL is not among BATON_TEST_DATABASES")
    server = request.getfixturevalue("postgres")
    root, site = installed
    out = pytest_in(root, site, "-vv", env={DATABASE_URL_VARIABLE: server})
    # Four of the five use the harness and run twice; the hook check needs no database.
    assert "9 passed" in out, out
    assert out.count("[postgresql] PASSED") == 4, out

    async def leftovers() -> list[str]:
        conn = await asyncpg.connect(server)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'baton_plugin_%'"
            )
        finally:
            await conn.close()
        return [r["datname"] for r in rows]

    assert asyncio.run(leftovers()) == []


def test_the_testing_guide_example_runs_against_the_scaffold(
    installed: tuple[Path, Path],
) -> None:
    root, site = installed
    (example,) = [b for lang, b in BLOCK.findall(TESTING_GUIDE.read_text()) if lang == "python"]
    (root / "tests" / "test_from_the_guide.py").write_text(example)
    assert "5 passed" in pytest_in(root, site, "tests/test_from_the_guide.py")


def test_the_tutorial_queries_run_with_the_plugin_installed(
    installed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(installed[1]))
    harness = BatonHarness(None, tmp_path / "baton.db")
    try:
        examples = [b for lang, b in BLOCK.findall(TUTORIAL.read_text()) if lang == "graphql"]
        assert len(examples) == 3
        for example in examples:
            harness.data("admin", example)
        gold = harness.data("admin", "{ customers(first: 1) { edges { node { valueTier } } } }")
        assert gold["customers"]["edges"][0]["node"]["valueTier"] == "HIGH"
    finally:
        harness.close()


def test_an_installed_plugin_is_found_through_its_entry_point(
    installed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, site = installed
    monkeypatch.syspath_prepend(str(site))
    found = {p.name: p for p in load_plugins().plugins}
    assert found["acme_energy"].version == "0.1.0"  # the distribution's version
    assert {"banking", "manufacturing"} <= set(found)
    harness = BatonHarness(None, tmp_path / "baton.db")
    try:
        names = harness.data("admin", "{ plugins { name } }")["plugins"]
        assert {"name": "acme_energy"} in names
        created = harness.data(
            "account_manager",
            """mutation { createCustomer(input: {name: "Acme",
              specialNeeds: {acmeEnergy: {serviceLevel: GOLD, contractReference: "FC-1"}}})
              { customer { specialNeeds { acmeEnergy { serviceLevel contractReference } } } } }""",
        )
        needs = created["createCustomer"]["customer"]["specialNeeds"]["acmeEnergy"]
        assert needs == {"serviceLevel": "GOLD", "contractReference": "FC-1"}
    finally:
        harness.close()
