"""The documentation's examples run: GraphQL blocks against demo data, CLI lines for real."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from graphql import parse
from sqlalchemy import select
from typer.testing import CliRunner

from core.cli import app as cli
from core.demo import seed_demo
from core.domain import Customer
from core.services import Services
from tests.conftest import JWT_SECRET, GraphQLClient

DOCS = Path(__file__).parents[1] / "docs"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(folder: str, language: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((DOCS / folder).glob("*.md")):
        for lang, body in BLOCK.findall(path.read_text()):
            if lang == language:
                found.append((f"{path.name}:{len(found)}", body))
    return found


GRAPHQL = blocks("frontend", "graphql") + blocks("admin", "graphql")
CONSOLE = blocks("admin", "console") + blocks(".", "console")


def test_docs_have_examples() -> None:
    assert len(GRAPHQL) >= 5 and len(CONSOLE) >= 3


@pytest.mark.parametrize("example", [b for _, b in GRAPHQL], ids=[n for n, _ in GRAPHQL])
async def test_graphql_example_runs(example: str, gql: GraphQLClient, services: Services) -> None:
    await seed_demo(services, 20)
    async with services.db.reader() as session:
        customer = (await session.scalars(select(Customer).order_by(Customer.id).limit(1))).one()
    known = {"customerId": customer.id, "version": customer.version}
    await gql.data("admin", example, {n: known[n] for n in variable_names(example)})


def variable_names(document: str) -> list[str]:
    operation = parse(document).definitions[0]
    return [v.variable.name.value for v in getattr(operation, "variable_definitions", None) or ()]


def test_console_examples_run(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the examples write files (the audit anchor)
    monkeypatch.setenv("BATON_JWT_SECRET", JWT_SECRET)  # as in production: `baton token` signs
    runner = CliRunner()
    for _, body in CONSOLE:
        for line in map(str.strip, body.splitlines()):
            if not line.startswith("$ baton "):
                continue
            args = [*shlex.split(line[len("$ baton ") :]), "--database", database_url]
            result = runner.invoke(cli, args)
            assert result.exit_code == 0, f"{line}\n{result.output}"


def contains(actual: object, expected: object) -> bool:
    """``expected`` is part of ``actual``: dict keys a subset, lists item by item."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return actual == expected


def _remember(found: dict[str, Any], data: object) -> None:
    """Pick up the ids (and the handover's version) a guide's later requests refer to."""
    if isinstance(data, dict):
        for key, name in (("customer", "customerId"), ("request", "requestId")):
            if isinstance(data.get(key), dict) and "id" in data[key]:
                found.setdefault(name, data[key]["id"])
        if isinstance(data.get("handover"), dict) and "version" in data["handover"]:
            found["handoverId"] = data["handover"]["id"]
            found["version"] = data["handover"]["version"]
        for value in data.values():
            _remember(found, value)


@pytest.mark.parametrize("guide", sorted((DOCS / "guides").glob("*.md")), ids=lambda p: p.name)
async def test_guide_sessions_run_as_written(
    guide: Path, gql: GraphQLClient, services: Services
) -> None:
    """Each ```graphql block runs as the user its first line names (``# as USER``), with the
    ids returned so far; a ```json block after it must be part of the answer."""
    await seed_demo(services, 20)
    found: dict[str, Any] = {}
    body: dict[str, Any] = {}
    for language, text in BLOCK.findall(guide.read_text()):
        if language == "json":
            expected = json.loads(text)
            actual = body if "errors" in expected else body.get("data")
            assert contains(actual, expected), f"{guide.name}: {body} lacks {expected}"
            continue
        if language != "graphql":
            continue
        user = re.match(r"# as (\S+)\n", text)
        assert user, f"{guide.name}: a session block starts with '# as USER'"
        body = await gql.execute(user[1], text, {n: found[n] for n in variable_names(text)})
        _remember(found, body.get("data"))


def test_every_hook_is_documented_with_its_signature() -> None:
    import inspect

    from sdk import hookspecs

    reference = (DOCS / "plugins" / "hooks.md").read_text()
    documented = re.findall(r"^### `(baton_\w+)\((.*?)\) -> (.+)`$", reference, re.M)
    actual = []
    for name in hookspecs.HOOKS:
        hook = getattr(hookspecs, name)
        params = ", ".join(
            f"{p}: {hook.__annotations__[p]}" for p in inspect.signature(hook).parameters
        )
        actual.append((name, params, hook.__annotations__["return"]))
    assert documented == actual


def test_the_tutorial_shows_the_module_the_scaffold_writes(tmp_path: Path) -> None:
    from core.scaffold import scaffold

    tutorial = (DOCS / "plugins" / "tutorial.md").read_text()
    (module,) = [body for lang, body in BLOCK.findall(tutorial) if lang == "python"]
    root = scaffold("acme_energy", tmp_path)
    assert module == (root / "baton_acme_energy" / "__init__.py").read_text()
