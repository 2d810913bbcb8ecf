"""The committed SDL is what the code builds, and it follows the contract's conventions."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLNonNull, GraphQLObjectType, get_introspection_query

from core.api.schema import build_schema, export_sdl
from core.plugins import builtin_plugins
from tests.conftest import GraphQLClient

BUILTINS = builtin_plugins()

SDL = Path(__file__).parents[1] / "schema" / "schema.graphql"
STRUCTURAL = {"id", "version"}


def test_committed_schema_is_current() -> None:
    assert SDL.read_text() == export_sdl(), "run `baton schema export` and commit the result"


def test_restrictable_fields_of_entities_are_nullable() -> None:
    """A denied field resolves to null, so it must never null out its parent object."""
    schema = build_schema(BUILTINS)._schema
    for name in ("Customer", "User", "AuditEntry"):
        type_ = schema.type_map[name]
        assert isinstance(type_, GraphQLObjectType)
        non_null = {f for f, d in type_.fields.items() if isinstance(d.type, GraphQLNonNull)}
        assert non_null <= STRUCTURAL, f"{name}: {non_null - STRUCTURAL} must be nullable"


def test_every_entity_implements_node() -> None:
    schema = build_schema(BUILTINS)._schema
    for name in ("Customer", "User", "AuditEntry"):
        type_ = schema.type_map[name]
        assert isinstance(type_, GraphQLObjectType)
        assert [i.name for i in type_.interfaces] == ["Node"]


async def test_graphiqls_introspection_query_answers_without_errors(
    gql: GraphQLClient, admin: str
) -> None:
    """GraphiQL and codegen tools send this query, with every default value rendered."""
    body = (await gql.post(admin, get_introspection_query(descriptions=True))).json()
    assert "errors" not in body, body.get("errors")
    assert any(t["name"] == "Customer" for t in body["data"]["__schema"]["types"])
