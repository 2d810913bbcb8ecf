"""The documentation's examples run: GraphQL blocks against demo data, CLI lines for real."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from graphql import parse
from sqlalchemy import select
from typer.testing import CliRunner

from core.cli import app as cli
from core.demo import seed_demo
from core.domain import Customer
from core.services import Services
from tests.conftest import GraphQLClient

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
CONSOLE = blocks("admin", "console")


def test_docs_have_examples() -> None:
    assert len(GRAPHQL) >= 5 and len(CONSOLE) >= 3


@pytest.mark.parametrize("example", [b for _, b in GRAPHQL], ids=[n for n, _ in GRAPHQL])
async def test_graphql_example_runs(example: str, gql: GraphQLClient, services: Services) -> None:
    await seed_demo(services, 20)
    async with services.db.reader() as session:
        customer = (await session.scalars(select(Customer).order_by(Customer.id).limit(1))).one()
    known = {"customerId": customer.id, "version": customer.version}
    operation = parse(example).definitions[0]
    names = [v.variable.name.value for v in getattr(operation, "variable_definitions", None) or ()]
    await gql.data("admin", example, {n: known[n] for n in names})


def test_console_examples_run(database_url: str) -> None:
    runner = CliRunner()
    for _, body in CONSOLE:
        for line in body.splitlines():
            if not line.startswith("$ baton "):
                continue
            args = [*shlex.split(line[len("$ baton ") :]), "--database", database_url]
            result = runner.invoke(cli, args)
            assert result.exit_code == 0, f"{line}\n{result.output}"
