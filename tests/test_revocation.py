"""Revocation at once: policy, role and user changes made by another process reach a running
server on its very next request, on SQLite and PostgreSQL, even when PostgreSQL's
notification is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from core.cli import app as cli
from tests.conftest import BACKENDS, GraphQLClient, baton_server, fresh_database
from tests.test_policy_propagation import QUERY, _seed

runner = CliRunner()


def ask(base: str, user: str, customer_id: str) -> httpx.Response:
    token = GraphQLClient(None, None).token(user)  # type: ignore[arg-type]
    return httpx.post(
        f"{base}/graphql",
        json={"query": QUERY, "variables": {"id": customer_id}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def seen(base: str, user: str, customer_id: str) -> dict[str, Any]:
    response = ask(base, user, customer_id)
    assert response.status_code == 200, response.text
    return {
        "revenue": response.json()["data"]["customer"]["annualRevenue"],
        "roles": response.json()["data"]["viewer"]["roles"],
    }


def baton(*args: str) -> None:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, workdir: Path) -> tuple[str, str, str]:
    """(database URL, base URL, customer id) of a one-worker `baton serve`."""
    url = fresh_database(request, workdir)
    customer_id = asyncio.run(_seed(url))
    with baton_server(["--database", url]) as (_, base):
        yield url, base, customer_id  # type: ignore[misc]


def test_cli_grants_revocations_role_changes_and_deactivation_apply_on_the_next_request(
    served: tuple[str, str, str],
) -> None:
    url, base, customer = served
    assert seen(base, "fin.he", customer) == {"revenue": None, "roles": ["finance"]}

    baton("policy", "grant", "finance", "Customer.annualRevenue", "read", "--database", url)
    assert seen(base, "fin.he", customer)["revenue"] == "4242.00"

    baton("policy", "revoke", "finance", "Customer.annualRevenue", "read", "--database", url)
    assert seen(base, "fin.he", customer)["revenue"] is None

    baton("role", "assign", "fin.he", "admin", "--database", url)
    assert seen(base, "fin.he", customer) == {"revenue": "4242.00", "roles": ["admin", "finance"]}
    baton("role", "unassign", "fin.he", "admin", "--database", url)
    assert seen(base, "fin.he", customer) == {"revenue": None, "roles": ["finance"]}

    baton("user", "deactivate", "fin.he", "--database", url)
    refused = ask(base, "fin.he", customer)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["message"] == "user 'fin.he' is deactivated"
