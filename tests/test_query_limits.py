"""Query limits over HTTP: depth, aliases, tokens and cost refused before anything executes;
the introspection switch; the execution timeout."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import hypothesis
import pytest
from graphql import (
    GraphQLObjectType,
    build_schema,
    get_named_type,
    is_leaf_type,
    parse,
)
from hypothesis import strategies as st

from core.api.limits import measure
from core.api.schema import build_schema as build_baton_schema
from core.clock import FixedClock
from core.config import Settings
from tests.conftest import GraphQLClient, client_of, error_codes, running, write_lock

CREATE = 'mutation { createCustomer(input: {name: "Acme"}) { customer { id } } }'
COUNT = "{ customers { totalCount } }"
SCHEMA = build_baton_schema()._schema
CUSTOMER_TYPE = SCHEMA.type_map["Customer"]


def every_field(type_: Any, levels: int) -> str:
    """A selection of every argument-free field of ``type_``, ``levels`` objects deep."""
    fields = []
    for name, field in type_.fields.items():
        inner = get_named_type(field.type)
        if is_leaf_type(inner):
            fields.append(name)
        elif levels and isinstance(inner, GraphQLObjectType) and not field.args:
            fields.append(f"{name} {{ {every_field(inner, levels - 1)} }}")
    return " ".join(fields) or "__typename"


def page(first: str, alias: str = "customers") -> str:
    return (
        f"{alias}: customers(first: {first}) {{ totalCount "
        f"edges {{ cursor node {{ {every_field(CUSTOMER_TYPE, 1)} }} }} }}"
    )


def managers(levels: int) -> str:
    """``owner { manager { manager … { id } } }``: one more level of depth each."""
    return "owner { " + "manager { " * levels + "id" + " }" * levels + " }"


def the_limit(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
    limit: dict[str, Any] = error["extensions"]["limit"]
    assert error["message"].endswith(f"{limit['value']} exceeds the limit of {limit['max']}")
    return limit


async def test_the_defaults_allow_a_full_page_of_every_customer_field(
    gql: GraphQLClient, admin: str
) -> None:
    data = await gql.data("admin", "{ " + page("100") + " }")
    assert data["customers"]["totalCount"] == 0


async def test_introspection_nests_type_references_deeper_than_the_depth_limit(
    gql: GraphQLClient, admin: str
) -> None:
    # GraphiQL's schema query has this shape (its `defaultValue` aside, see the report).
    type_ref = "kind name " + "ofType { kind name " * 8 + "}" * 8
    query = (
        "{ __schema { types { name fields { name args { name type { "
        + type_ref
        + " } } type { "
        + type_ref
        + " } } } } }"
    )
    assert (await gql.data("admin", query))["__schema"]["types"]


async def test_a_deep_query_is_refused(gql: GraphQLClient, admin: str) -> None:
    query = "{ customers { edges { node { " + managers(9) + " } } } }"
    limit = the_limit(await gql.execute("admin", query))
    assert limit == {"name": "depth", "value": 14, "max": 12}


async def test_depth_counts_through_fragments(gql: GraphQLClient, admin: str) -> None:
    query = """
      { customers { edges { node { ...Owner } } } }
      fragment Owner on Customer { owner { ...Up } }
      fragment Up on User { manager { manager { manager { ... on User { manager { ...Top } } } } } }
      fragment Top on User { manager { manager { manager { manager { id } } } } }
    """
    assert the_limit(await gql.execute("admin", query))["value"] == 13


async def test_an_over_limit_mutation_writes_nothing(gql: GraphQLClient, admin: str) -> None:
    mutation = (
        'mutation { createCustomer(input: {name: "Deep"}) { customer { ' + managers(11) + " } } }"
    )
    assert the_limit(await gql.execute("admin", mutation))["name"] == "depth"
    assert (await gql.data("admin", COUNT))["customers"]["totalCount"] == 0
    audit = await gql.data(
        "admin", '{ auditLog(filter: {action: "createCustomer"}) { totalCount } }'
    )
    assert audit["auditLog"]["totalCount"] == 0


async def test_too_many_aliases_are_refused(gql: GraphQLClient, admin: str) -> None:
    query = "{ " + " ".join(f"a{i}: viewer {{ roles }}" for i in range(31)) + " }"
    assert the_limit(await gql.execute("admin", query)) == {
        "name": "aliases",
        "value": 31,
        "max": 30,
    }


async def test_aliases_spread_through_fragments_count_every_time(
    gql: GraphQLClient, admin: str
) -> None:
    # 4 aliases written, each fragment spread twice: 16 aliased fields run per ...Twice.
    fragments = """
      fragment Twice on Query { ...Pair ...Pair }
      fragment Pair on Query { ...Quad ... on Query { ...Quad } }
      fragment Quad on Query { a: viewer { roles } b: viewer { roles } ...Rest ...Rest }
      fragment Rest on Query { c: viewer { roles } }
    """
    assert (await gql.data("admin", "{ ...Twice }" + fragments))["a"]["roles"] == ["admin"]
    limit = the_limit(await gql.execute("admin", "{ ...Twice ...Twice }" + fragments))
    assert limit == {"name": "aliases", "value": 32, "max": 30}


async def test_too_many_tokens_are_refused_not_a_syntax_error(
    gql: GraphQLClient, admin: str
) -> None:
    query = "{ " + "__typename " * 4000 + "}"
    limit = the_limit(await gql.execute("admin", query))
    assert limit == {"name": "tokens", "value": 4002, "max": 4000}


async def test_an_invalid_document_within_the_limits_is_still_a_syntax_error(
    gql: GraphQLClient, admin: str
) -> None:
    body = await gql.execute("admin", "{ viewer { roles }")
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_connections_multiply_the_cost_of_their_selection(
    gql: GraphQLClient, admin: str
) -> None:
    query = "{ " + page("100", "a") + " " + page("100", "b") + " }"
    limit = the_limit(await gql.execute("admin", query))
    single = measure(SCHEMA, parse("{ " + page("100") + " }")).cost
    assert limit == {"name": "cost", "value": 2 * single, "max": 20000}
    assert 10000 < single < 20000


async def test_the_cost_of_first_comes_from_the_variable(gql: GraphQLClient, admin: str) -> None:
    query = "query($n: Int!) { " + page("$n", "a") + " " + page("$n", "b") + " }"
    assert the_limit(await gql.execute("admin", query, {"n": 100}))["name"] == "cost"
    data = await gql.data("admin", query, {"n": 10})
    assert data["a"]["totalCount"] == 0


async def test_an_omitted_first_costs_the_default_page(gql: GraphQLClient, admin: str) -> None:
    omitted = " ".join(page("20", f"a{i}").replace("(first: 20)", "") for i in range(8))
    limit = the_limit(await gql.execute("admin", "{ " + omitted + " }"))
    assert limit["value"] == 8 * measure(SCHEMA, parse("{ " + page("20") + " }")).cost


async def test_a_page_over_100_is_still_bad_user_input(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", "{ customers(first: 5000) { totalCount } }")
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_limits_apply_per_operation_in_a_batch(gql: GraphQLClient, admin: str) -> None:
    deep = "{ customers { edges { node { " + managers(9) + " } } } }"
    response = await gql.http.post(
        "/graphql",
        json=[{"query": COUNT}, {"query": deep}],
        headers={"Authorization": f"Bearer {gql.token('admin')}"},
    )
    fine, refused = response.json()
    assert fine["data"]["customers"]["totalCount"] == 0
    assert the_limit(refused)["name"] == "depth"


async def test_introspection_can_be_switched_off(
    settings: Settings, clock: FixedClock, admin: str
) -> None:
    async with (
        running(replace(settings, introspection=False), clock) as app,
        client_of(app, clock) as gql,
    ):
        for query in ("{ __schema { types { name } } }", '{ __type(name: "Customer") { name } }'):
            body = await gql.execute("admin", query)
            assert body["data"] is None
            assert [e["message"] for e in body["errors"]] == ["introspection is disabled"]
            assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
        assert (await gql.data("admin", "{ __typename }")) == {"__typename": "Query"}


async def test_a_request_over_the_timeout_is_cancelled_and_rolled_back(
    gql: GraphQLClient, settings: Settings, clock: FixedClock, database_url: str, admin: str
) -> None:
    async with (
        running(replace(settings, execution_timeout=0.5), clock) as app,
        client_of(app, clock) as impatient,
    ):
        # Signed in and the policies loaded first: the deadline counts from execution, so a
        # slow first sign-in on a busy machine could start the mutation after the lock is gone.
        assert (await impatient.data("admin", COUNT))["customers"]["totalCount"] == 0
        async with write_lock(database_url):
            request = asyncio.create_task(impatient.execute("admin", CREATE))
            await asyncio.sleep(2.5)  # past the deadline, while the mutation waits on the lock
        body = await request
    assert body["data"] is None
    assert error_codes(body) == ["TIMEOUT"]
    assert (await gql.data("admin", COUNT))["customers"]["totalCount"] == 0


# Cost over nested connections, on a schema that has them (Baton's connections do not nest).
NESTED = build_schema("""
    type Query { items(first: Int = 20): ItemConnection }
    type ItemConnection { totalCount: Int edges: [ItemEdge] }
    type ItemEdge { node: Item }
    type Item { id: ID children(first: Int = 20): ItemConnection }
""")
SIZES = st.lists(st.one_of(st.none(), st.integers(0, 100)), min_size=1, max_size=5)


def nested(sizes: list[int | None]) -> tuple[str, dict[str, int]]:
    """Connections inside connections, each ``first`` a literal, a variable or omitted."""
    variables: dict[str, int] = {}
    inner = "id"
    for level, size in reversed(list(enumerate(sizes))):
        field = "items" if level == 0 else "children"
        if size is None:
            argument = ""
        elif level % 2:
            variables[f"n{level}"] = size
            argument = f"(first: $n{level})"
        else:
            argument = f"(first: {size})"
        inner = f"{field}{argument} {{ totalCount edges {{ node {{ {inner} }} }} }}"
        if level:
            inner = f"id {inner}"
    declared = ", ".join(f"${name}: Int" for name in variables)
    return (f"query({declared}) {{ {inner} }}" if declared else f"{{ {inner} }}"), variables


@hypothesis.given(SIZES)
@hypothesis.settings(max_examples=200, deadline=None)
def test_nested_connection_cost_is_the_product_formula(sizes: list[int | None]) -> None:
    query, variables = nested(sizes)
    node = 2  # the innermost node: itself and its id
    for size in reversed(sizes):
        # The connection itself, plus first x (totalCount + edges + node).
        cost = 1 + (20 if size is None else size) * (1 + 1 + node)
        node = 2 + cost  # the node around it: itself, its id, the connection
    found = measure(NESTED, parse(query), variables=variables)
    assert found.cost == cost
    assert found.depth == 3 * len(sizes) + 1


def test_a_connection_of_100_inside_a_connection_of_100() -> None:
    query, variables = nested([100, 100])
    inner = 1 + 100 * 4  # itself + 100 x (totalCount, edges, node, id)
    assert measure(NESTED, parse(query), variables=variables).cost == 1 + 100 * (2 + 2 + inner)


def test_a_fragment_cycle_does_not_loop() -> None:
    document = parse(
        "{ ...A } fragment A on Query { items { edges { node { id } } } ...B } "
        "fragment B on Query { ...A }"
    )
    assert measure(NESTED, document).depth == 4


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BATON_MAX_DEPTH": "8",
        "BATON_MAX_ALIASES": "5",
        "BATON_MAX_TOKENS": "900",
        "BATON_MAX_COST": "1500",
        "BATON_EXECUTION_TIMEOUT": "2.5",
        "BATON_INTROSPECTION": "0",
    }.items():
        monkeypatch.setenv(name, value)
    found = Settings.from_env()
    assert (found.max_depth, found.max_aliases, found.max_tokens, found.max_cost) == (
        8,
        5,
        900,
        1500,
    )
    assert found.execution_timeout == 2.5
    assert found.introspection is False


def test_a_malformed_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_MAX_COST", "lots")
    with pytest.raises(ValueError, match="BATON_MAX_COST='lots': expected int"):
        Settings.from_env()
