"""Nodes written as JSON by the database, for pages loaded as rows (issue 21).

When every field a page's nodes select is a column whose JSON the database writes exactly as
graphql-core would serialise it, the list statement selects each node as one JSON text
(``json_object`` on SQLite, ``json_build_object`` on PostgreSQL) and the response embeds it as
it is: no Python call per field or per row. What the viewer may not read is never selected: the
plan exists only when every field it touches is readable (``core.api.completed``).

Exact means: strings of the specified ``String`` and ``ID`` scalars from string columns, enums
stored by member name whose GraphQL name is that name, a null only where the schema allows
one (a required field only from a NOT NULL column), and the users joined into the page's
statement. Anything else (numbers, dates, decimals, lists, cursors) is completed in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    is_specified_scalar_type,
)

from core.api.selection import DEFINITION, Field, named, user_references
from core.lru import LRU

Columns = Callable[[str], Any]  # python attribute name → its SQL column, or None


@dataclass(frozen=True)
class JsonEdges:
    """The node columns to select (label → JSON text expression) and how each ``edges`` field
    of the selection is written from them."""

    columns: dict[str, Any]
    # edges response key → the edge's parts: (quoted key, label of a node column or None for
    # the quoted constant that follows)
    edges: dict[str, list[tuple[str, str | None, str]]]

    def values(self, rows: list[Any]) -> dict[str, orjson.Fragment]:
        """The JSON of each ``edges`` field for ``rows``, ready to embed in the response."""
        found = {}
        for key, parts in self.edges.items():
            items = (
                "{"
                + ",".join(
                    f"{quoted}:{getattr(row, label) if label else constant}"
                    for quoted, label, constant in parts
                )
                + "}"
                for row in rows
            )
            found[key] = orjson.Fragment("[" + ",".join(items) + "]")
        return found


# Plans by selection, columns and dialect: building the JSON expressions costs more than
# running them, and frontends send the same few selections.
_PLANS: LRU[tuple[Any, ...], JsonEdges | None] = LRU(512)
_NONE = JsonEdges({}, {})  # remembered "no plan"


def json_edges(
    selection: tuple[Field, ...],
    columns: Mapping[str, Any],
    user_tables: Mapping[str, Any],
    user_columns: Mapping[str, Any],
    dialect: str,
) -> JsonEdges | None:
    """The plan for ``selection`` (a connection's) over ``columns`` (attribute → column of
    the page's rows), or None when a field the nodes select is not written exactly by the
    database (or an edge shows its cursor)."""
    key = (selection, id(columns), tuple(user_tables.items()), id(user_columns), dialect)
    found = _PLANS.get(key)
    if found is None:
        found = _PLANS.put(
            key, _plan(selection, columns.get, user_tables, user_columns, dialect) or _NONE
        )
    return None if found is _NONE else found


def _plan(
    selection: tuple[Field, ...],
    columns: Columns,
    user_tables: Mapping[str, Any],
    user_columns: Mapping[str, Any],
    dialect: str,
) -> JsonEdges | None:
    build = sa.func.json_build_object if dialect == "postgresql" else sa.func.json_object
    selected: dict[str, Any] = {}
    edges: dict[str, list[tuple[str, str | None, str]]] = {}
    for f in selection:
        if f.name != "edges":
            continue
        parts: list[tuple[str, str | None, str]] = []
        for edge_field in f.selection:
            quoted = orjson.dumps(edge_field.key).decode()
            if edge_field.name == "__typename":
                parts.append((quoted, None, orjson.dumps(named(edge_field.type).name).decode()))
            elif edge_field.name == "node":
                node = _object(
                    edge_field, named(edge_field.type), columns, user_tables, user_columns, build
                )
                if node is None:
                    return None
                label = f"node_json_{len(selected)}"
                selected[label] = (
                    sa.type_coerce(node, sa.Text)
                    if dialect != "postgresql"
                    else sa.cast(node, sa.Text)
                )
                parts.append((quoted, label, ""))
            else:  # a cursor: encoded in Python
                return None
        edges[f.key] = parts
    return JsonEdges(selected, edges)


def _object(
    field: Field,
    type_: GraphQLObjectType,
    columns: Columns,
    user_tables: Mapping[str, Any],
    user_columns: Mapping[str, Any],
    build: Any,
) -> Any | None:
    references = user_references(type_)
    arguments: list[Any] = []
    for f in field.selection:
        if f.name == "__typename":
            value: Any = sa.literal(type_.name, sa.String)
        elif f.name in references:
            table = user_tables.get(references[f.name])
            if table is None:
                return None  # loaded by the users loader, not by the statement

            def joined(name: str, table: Any = table) -> Any:
                return table.c[user_columns[name].key] if name in user_columns else None

            user = _object(f, named(f.type), joined, {}, user_columns, build)
            if user is None:
                return None
            value = sa.case((table.c.id.is_(None), sa.null()), else_=user)
        elif f.selection:
            return None
        else:
            python_name = type_.fields[f.name].extensions[DEFINITION].python_name
            value = _leaf(f.type, columns(python_name))
            if value is None:
                return None
        arguments += [sa.literal(f.key, sa.String), value]
    return build(*arguments)


def _leaf(type_: Any, column: Any) -> Any | None:
    """``column`` if the database writes its values as graphql-core serialises them for
    ``type_``, else None."""
    if column is None:
        return None
    required = isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if required else type_
    expression = getattr(column, "expression", column)
    stored = getattr(expression, "type", None)
    if required and getattr(expression, "nullable", True):
        return None  # a null would be an error to report where it stands
    if isinstance(inner, GraphQLEnumType):
        return column if _stored_by_name(inner, stored) else None
    if (
        isinstance(inner, GraphQLScalarType)
        and is_specified_scalar_type(inner)
        and inner.name in ("String", "ID")
        and isinstance(stored, sa.String)
        and not isinstance(stored, sa.Enum)
    ):
        return column
    return None


def _stored_by_name(type_: GraphQLEnumType, stored: Any) -> bool:
    """Every value the column stores serialises to itself."""
    if not isinstance(stored, sa.Enum) or stored.enum_class is None:
        return False
    try:
        return all(type_.serialize(stored.enum_class[name]) == name for name in stored.enums)
    except (GraphQLError, KeyError):
        return False
