"""Fuzzing: schemathesis sends generated queries and mutations of the exported SDL to the app.

Every root field is one test per backend; each generated document goes to the real app
in-process, first as a finance user (mostly refused: the authorisation paths) and then as an
admin (the resolvers and services). However odd the input, the answer is never a 5xx, never an
``INTERNAL`` error, and every error carries one of the contract's codes.

The suite runs a few derandomised examples per operation; ``BATON_FUZZ_EXAMPLES=100`` (with
``BATON_TEST_DATABASES=sqlite``) is the larger run of docs/operations.md, "Fuzzing".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import graphql
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select
from starlette.testclient import TestClient

from core.app import create_app
from core.clock import FixedClock
from core.config import Settings
from core.demo import ADMIN_ID, USERS, seed_demo
from core.domain import AssignmentRule, Customer
from core.identity import issue_token
from core.services import Services
from tests.conftest import BACKENDS, JWT_SECRET, fresh_database

EXAMPLES = int(os.environ.get("BATON_FUZZ_EXAMPLES", "4"))
VIEWERS = ("fin.he", ADMIN_ID)  # finance first: its refusals must not depend on the admin's writes

# The contract's codes, and those of HTTP-level errors (core/api/http.py).
CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "FORBIDDEN_FIELD",
    "BAD_USER_INPUT",
    "GRAPHQL_VALIDATION_FAILED",
    "NOT_FOUND",
    "CONFLICT",
    "INVALID_STATE",
    "QUERY_TOO_COMPLEX",
    "BAD_REQUEST",
    "METHOD_NOT_ALLOWED",
    "PAYLOAD_TOO_LARGE",
}

# Ids of the seeded database (filled by `fuzz_client`), so that generated arguments name real
# entities as well as absent ones. The viewers are left out: a fuzzed `deactivateUser` of the
# admin would turn the rest of the run into 401s.
KNOWN_IDS: list[str] = []


def _json_object(fields: dict[str, graphql.ValueNode]) -> graphql.ObjectValueNode:
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
            for k, v in fields.items()
        ]
    )


_known_id = st.integers(min_value=0, max_value=1 << 16).map(
    lambda i: KNOWN_IDS[i % len(KNOWN_IDS)] if KNOWN_IDS else ""
)
_json_leaf = st.one_of(
    st.integers().map(nodes.Int), st.text().map(nodes.String), st.booleans().map(nodes.Boolean)
)
schemathesis.graphql.scalar("ID", st.one_of(_known_id, st.text()).map(nodes.String))
schemathesis.graphql.scalar(
    "Decimal", st.one_of(st.decimals().map(nodes.String), st.integers().map(nodes.Int))
)
schemathesis.graphql.scalar(
    "JSON",
    st.one_of(
        _json_leaf,
        st.lists(_json_leaf, max_size=3).map(nodes.List),
        st.dictionaries(st.text(), _json_leaf, max_size=3).map(_json_object),
    ),
)

SCHEMA = schemathesis.graphql.from_path(Path(__file__).parents[1] / "schema" / "schema.graphql")


@schemathesis.check
def follows_error_contract(ctx: Any, response: schemathesis.Response, case: Any) -> None:
    """No 5xx, no ``INTERNAL`` error, and every error carries a code of the contract."""
    assert response.status_code < 500, f"HTTP {response.status_code}: {response.text[:500]}"
    for error in response.json().get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code != "INTERNAL", f"INTERNAL error: {error}"
        assert code in CODES, f"error without a contract code: {error}"


async def _known_ids(services: Services) -> list[str]:
    async with services.db.reader() as session:
        customers = list(await session.scalars(select(Customer.id)))
        rules = list(await session.scalars(select(AssignmentRule.id)))
    return [u.id for u in USERS if u.id not in VIEWERS] + customers + rules


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_client(request: pytest.FixtureRequest, workdir: Path) -> Iterator[TestClient]:
    """The app on a fresh database with a small demo data set, shared by every operation.

    Module-scoped: seeding once per backend keeps the run short, and the fuzzed mutations
    leave state behind that later operations then read.
    """
    url = fresh_database(request, workdir)
    app = create_app(
        Settings(database_url=url, jwt_secret=JWT_SECRET),
        clock=FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
    )
    with TestClient(app, base_url="http://baton.test") as client:
        client.portal.call(seed_demo, app.state.services, 12)
        KNOWN_IDS[:] = client.portal.call(_known_ids, app.state.services)
        yield client
    KNOWN_IDS.clear()


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    now = datetime.now(UTC)
    return {v: issue_token(v, JWT_SECRET, now=now, ttl=timedelta(days=1)) for v in VIEWERS}


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    # One app per backend serves every example, on purpose (see `fuzz_client`).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_fuzzed_operation_follows_the_error_contract(
    case: Any, fuzz_client: TestClient, tokens: dict[str, str]
) -> None:
    for viewer in VIEWERS:
        response = fuzz_client.post(
            "/graphql",
            json={"query": case.body},
            headers={"Authorization": f"Bearer {tokens[viewer]}"},
        )
        case.validate_response(
            response, checks=[response_schema_conformance, follows_error_contract]
        )
