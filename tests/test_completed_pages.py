"""Connection pages completed at once (``core.api.completed``) answer exactly what normal
execution answers, for every viewer and selection; a denied field always goes through normal
execution, where it is FORBIDDEN_FIELD."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as event_api
from starlette.applications import Starlette

from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

_roles = itertools.count()
# Node selections to combine: plain fields, referenced users, plain objects.
PARTS = {
    "name": "name",
    "territory": "territory",
    "valueTier": "valueTier",
    "kind": "kind",
    "annualRevenue": "annualRevenue",
    "productLines": "productLines",
    "createdAt": "createdAt",
    "version": "version",
    "owner": "owner { id name email }",
    "backupOwner": "backupOwner { name }",
    "firstContact": "firstContact { id }",
    "ownership": "ownership { assignedBy since owner { name } }",
    "contacts": "contacts { name email }",
    "typename": "__typename",
}
# Field permissions to grant at random (the rest of what a role needs is granted always).
GRANTABLE = [
    "Customer.name",
    "Customer.territory",
    "Customer.valueTier",
    "Customer.annualRevenue",
    "Customer.productLines",
    "Customer.owner",
    "Customer.backupOwner",
    "Customer.contacts",
    "User.name",
    "Ownership.assignedBy",
    "Ownership.owner",
]
ALWAYS = [
    ("Customer.kind", "read"),
    ("Customer.createdAt", "read"),
    ("Customer.firstContact", "read"),
    ("Ownership.since", "read"),
    ("User.email", "read"),
    ("Query.customers", "call"),
]


def schema_of(app: Starlette) -> Any:
    return app.state.schema


@pytest.fixture
async def customers(services: Services, admin: str) -> None:
    """Customers with owners, backups, contacts and revenue; some unowned. ``am.page`` owns
    some and has no role yet: each example gives it one."""
    await services.users.create(Actor.system(), "am.page", "Page Owner", roles=[])
    for i in range(7):
        await services.customers.create(
            Actor("admin"),
            {
                "name": f"Page {i}",
                "territory": f"CN/East/{i}",
                "value_tier": ["STRATEGIC", "HIGH", "LOW"][i % 3],
                "annual_revenue": Decimal(1000 * i + 5),
                "product_lines": ["erp", "iot"][: i % 3],
                "contacts": [{"name": f"Contact {i}", "email": f"c{i}@example.com"}],
                "backup_owner_id": "am.wu" if i % 2 else None,
            },
            owner_id=[None, "am.chen", "am.page"][i % 3],
        )


def without_locations(body: dict[str, Any]) -> dict[str, Any]:
    """The response, its errors without ``locations`` (the directive shifts the columns)."""
    errors = [{k: v for k, v in e.items() if k != "locations"} for e in body.get("errors", [])]
    return {**body, "errors": errors}


def document(parts: list[str], aliased: list[bool], fragment: bool, extras: str) -> str:
    body = " ".join(
        f"a{i}: {PARTS[p]}" if alias else PARTS[p]
        for i, (p, alias) in enumerate(zip(parts, aliased, strict=False))
    )
    node = "...N" if fragment else body
    tail = f" fragment N on Customer {{ id {body} }}" if fragment else ""
    return (
        "query($first: Int!) { customers(first: $first) { "
        f"{extras} edges EDGES {{ cursor node {{ id {node} }} }} }} }}{tail}"
    )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    # Each example is two requests on a real database: report a failure as found.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    granted=st.sets(st.sampled_from(GRANTABLE)),
    scope=st.sampled_from(["OWN", "ALL"]),
    parts=st.lists(st.sampled_from(sorted(PARTS)), min_size=1, max_size=6, unique=True),
    aliased=st.lists(st.booleans(), min_size=6, max_size=6),
    fragment=st.booleans(),
    extras=st.sampled_from(["", "totalCount", "pageInfo { hasNextPage endCursor } __typename"]),
    first=st.integers(0, 8),
)
async def test_a_completed_page_equals_normal_execution(
    app: Starlette,
    gql: GraphQLClient,
    services: Services,
    customers: None,
    granted: set[str],
    scope: str,
    parts: list[str],
    aliased: list[bool],
    fragment: bool,
    extras: str,
    first: int,
) -> None:
    n = next(_roles)
    role, user = f"page_role_{n}", f"page.user{n}"
    for obj, action in [*ALWAYS, *((g, "read") for g in sorted(granted))]:
        await services.policies.grant(Actor.system(), role, obj, action)
    await services.policies.grant(Actor.system(), role, "Customer", f"scope:{scope}")
    if scope == "OWN":  # the owner of some customers, with this role alone
        viewer = "am.page"
        await services.policies.assign_role(Actor.system(), viewer, role, add=True)
    else:
        viewer = user
        await services.users.create(Actor.system(), user, user, roles=[role])
    query = document(parts, aliased, fragment, extras)
    before, rows_before = schema_of(app).completed_pages, schema_of(app).row_pages
    completed = await gql.execute(viewer, query.replace("EDGES", ""), {"first": first})
    took_fast_path = schema_of(app).completed_pages > before
    event(f"completed at once: {took_fast_path}")
    event(f"loaded as rows: {schema_of(app).row_pages > rows_before}")
    # A directive is one of the things the fast path leaves to normal execution.
    executed = await gql.execute(
        viewer, query.replace("EDGES", "@include(if: true)"), {"first": first}
    )
    if scope == "OWN":
        await services.policies.assign_role(Actor.system(), viewer, role, add=False)
    assert schema_of(app).completed_pages == before + took_fast_path
    assert without_locations(completed) == without_locations(executed)
    if took_fast_path:
        assert "errors" not in completed


async def test_the_list_of_the_benchmark_is_completed_at_once(
    app: Starlette, gql: GraphQLClient, customers: None
) -> None:
    query = """{ customers(first: 5) { edges { node { id name territory valueTier
        owner { id name } } } pageInfo { hasNextPage endCursor } } }"""
    before = schema_of(app).completed_pages
    body = await gql.execute("am.chen", query)
    assert schema_of(app).completed_pages == before + 1
    edges = body["data"]["customers"]["edges"]
    assert {e["node"]["owner"]["id"] for e in edges} == {"am.chen"}
    assert len(edges) == 2  # the customers am.chen owns (i % 3 == 1 among 0..6)


async def test_the_benchmark_list_loads_only_the_columns_it_shows(
    app: Starlette, gql: GraphQLClient, services: Services, customers: None
) -> None:
    """The page is loaded as rows of the selected columns, each node written as JSON by the
    database: a profile column nobody asked for (and which a role may not read) is never
    fetched from the database."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    query = """{ customers(first: 5) { edges { node { id name valueTier owner { name } } }
        pageInfo { endCursor } } }"""
    before = schema_of(app).row_pages
    engine = services.db.engine.sync_engine
    event_api.listen(engine, "before_cursor_execute", record)
    try:
        body = await gql.execute("am.chen", query)
    finally:
        event_api.remove(engine, "before_cursor_execute", record)
    assert schema_of(app).row_pages == before + 1
    assert {e["node"]["owner"]["name"] for e in body["data"]["customers"]["edges"]} == {"Am.Chen"}
    listing = [s for s in statements if "FROM customers" in s and "LIMIT" in s]
    assert len(listing) == 1, statements
    for column in ("annual_revenue", "payment_terms_days", "contacts", "special_needs"):
        assert column not in listing[0]
    # Every node field is a string or an enum stored by name: the database writes the JSON.
    assert "json_object(" in listing[0] or "json_build_object(" in listing[0]


async def test_a_denied_field_is_left_to_normal_execution(
    app: Starlette, gql: GraphQLClient, services: Services, customers: None
) -> None:
    await services.users.create(Actor.system(), "fin.he", "He", roles=["finance"])
    before = schema_of(app).completed_pages
    query = "{ customers(first: 2) { edges { node { name paymentTermsDays annualRevenue } } } }"
    body = await gql.execute("fin.he", query)
    assert schema_of(app).completed_pages == before
    assert set(error_codes(body)) == {"FORBIDDEN_FIELD"}
    assert all(e["node"]["annualRevenue"] is None for e in body["data"]["customers"]["edges"])
