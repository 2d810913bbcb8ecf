"""Connection pages answered without per-field execution (issue 21).

graphql-core resolves and completes every field of every node through a Python call or
three (strawberry's resolver, the permission wrapper, the completion), which is most of a list
request's time. Most list queries select only what a page already holds: plain fields of the
nodes (and of their plain objects), the users they reference, cursors, ``pageInfo`` and
``totalCount``. For those, ``PagePlan.complete`` builds the response value directly
(``core.api.completers``), and the execution context below returns it as the field's
completed value. A page whose nodes need only columns is loaded as rows, not entities.

The permission view is still the judge, decided once per (type, field) of the selection: the
page is completed here only when the viewer may read every guarded field the selection
touches. Anything else — a denied field (which must answer FORBIDDEN_FIELD where it stands),
a field with a resolver of its own, an argument, a directive, an abstract type — goes through
normal execution, so both paths give the same response for the same request.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

from core.api.completers import edge_completer
from core.api.context import RequestContext
from core.api.json_nodes import JsonEdges, json_edges
from core.api.selection import (
    DEFINITION,
    Field,
    Unsupported,
    named,
    python_names,
    select_fields,
    user_references,
)
from core.authz.view import PermissionView
from core.services.pagination import Page

# The types a connection page is made of, by their role in the page.
CONNECTION_FIELDS = frozenset({"__typename", "edges", "pageInfo", "totalCount"})
EDGE_FIELDS = frozenset({"__typename", "cursor", "node"})
PAGE_INFO_FIELDS = frozenset({"__typename", "hasNextPage", "endCursor"})


class Completed:
    """A field's value already completed for the response: execution takes it as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, passing ``Completed`` values through untouched."""

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if type(result) is Completed:
            return result.value
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )


# One alias of the users table, and its join, per referencing column; built once (an alias per
# request costs more than the rest of the statement).
_USER_TABLES: dict[tuple[str, Any], tuple[Any, Any]] = {}


@dataclass
class Rows:
    """Columns to load for a page of rows: label → expression, the users joined to them, and
    the attributes read of each joined user (by the attribute referencing it)."""

    columns: dict[str, Any]
    joins: list[tuple[Any, Any]]
    users: dict[str, tuple[str, ...]]
    tables: dict[str, Any] = field(default_factory=dict)  # attribute → its joined users

    def join_user(
        self,
        attribute: str,
        user_id: Any,
        names: tuple[str, ...] | None,
        user_columns: Mapping[str, Any],
    ) -> None:
        if names is None or attribute in self.users or any(n not in user_columns for n in names):
            return  # loaded by the users loader instead
        joined = _USER_TABLES.get((attribute, user_id))
        if joined is None:
            table = user_columns["id"].table.alias(f"{attribute}_user")
            joined = _USER_TABLES.setdefault((attribute, user_id), (table, table.c.id == user_id))
        table = self.tables[attribute] = joined[0]
        self.joins.append(joined)
        for name in names:
            self.columns[f"{attribute}__{name}"] = table.c[user_columns[name].key]
        self.users[attribute] = names

    def joined_users(self, rows: list[Any]) -> dict[str, Any]:
        """The joined users of ``rows`` by id, as objects with the attributes read."""
        found: dict[str, Any] = {}
        for attribute, names in self.users.items():
            for row in rows:
                user_id = getattr(row, attribute)
                if user_id is not None and user_id not in found:
                    found[user_id] = SimpleNamespace(
                        **{n: getattr(row, f"{attribute}__{n}") for n in names}
                    )
        return found


@dataclass(frozen=True)
class PagePlan:
    """A connection selection that can be completed at once, and the viewer may read."""

    connection: GraphQLObjectType
    selection: tuple[Field, ...]

    def columns(self, available: Mapping[str, Any]) -> Rows | None:
        """What to load for the selected nodes as rows, when ``available`` (the node type's
        ``sql_columns``: attribute → SQL expression) holds all of it; else None (the page is
        then loaded as entities). A referenced user whose selected fields are all columns
        too is joined into the same statement instead of loaded by a second one."""
        from core.api.types import User

        rows = Rows({}, [], {})
        for node in self._nodes():
            type_ = named(node.type)
            references = user_references(type_)
            for f in node.selection:
                if f.name == "__typename":
                    continue
                name = (
                    references.get(f.name)
                    or type_.fields[f.name].extensions[DEFINITION].python_name
                )
                if name not in available or (f.selection and f.name not in references):
                    return None
                rows.columns[name] = available[name]
                if f.name in references:
                    rows.join_user(name, available[name], python_names(f), User.sql_columns)
        return rows

    def json_edges(
        self, available: Mapping[str, Any], rows: Rows, dialect: str
    ) -> JsonEdges | None:
        """The nodes as JSON the database writes (``core.api.json_nodes``), when it can."""
        from core.api.types import User

        return json_edges(self.selection, available, rows.tables, User.sql_columns, dialect)

    def _nodes(self) -> Iterator[Field]:
        for f in self.selection:
            for edge_field in f.selection if f.name == "edges" else ():
                if edge_field.name == "node":
                    yield edge_field

    async def complete(
        self,
        context: RequestContext,
        page: Page[Any],
        nodes: list[Any],
        count: Callable[[], Awaitable[int]],
        users: dict[str, Any] | None = None,
        edges: dict[str, Any] | None = None,
    ) -> Completed | None:
        """The whole connection value, or None when normal execution must answer (a null
        where the schema promises a value: execution reports that error where it stands).

        ``edges``: the value of each ``edges`` field already written (``JsonEdges``)."""
        try:
            known = users or {}
            if edges is None:
                known = await _users(context, self.selection, nodes, known)
            value: dict[str, Any] = {}
            for f in self.selection:
                if f.name == "__typename":
                    value[f.key] = self.connection.name
                elif f.name == "totalCount":
                    value[f.key] = await count()
                elif f.name == "pageInfo":
                    value[f.key] = _page_info(f, page)
                elif edges is not None:
                    value[f.key] = edges[f.key]
                else:
                    edge = edge_completer(f)
                    shown = any(e.name == "cursor" for e in f.selection)
                    cursors = page.cursors if shown else itertools.repeat(None, len(nodes))
                    value[f.key] = [edge(pair, known) for pair in zip(cursors, nodes, strict=True)]
        except Unsupported:
            return None
        return Completed(value)


def plan_page(info: Info) -> PagePlan | None:
    """The plan for completing this connection field at once, or None for normal execution.

    Decided before anything is loaded, once per (type, field) the selection touches.
    """
    raw = info._raw_info
    context = raw.context
    guarded = getattr(info.schema, "guarded", None)
    if not isinstance(context, RequestContext) or guarded is None or len(raw.field_nodes) != 1:
        return None
    connection = raw.return_type
    while isinstance(connection, GraphQLNonNull):
        connection = connection.of_type
    try:
        if not isinstance(connection, GraphQLObjectType):
            raise Unsupported
        selection = select_fields(raw.fragments, raw.field_nodes[0].selection_set, connection)
        _check_shape(selection)
        _check_readable(context.permissions, guarded, selection)
    except Unsupported:
        return None
    return PagePlan(connection, selection)


def _check_shape(connection: tuple[Field, ...]) -> None:
    """A connection selection: edges (cursor, node), pageInfo, totalCount, __typename."""
    for f in connection:
        if f.name not in CONNECTION_FIELDS:
            raise Unsupported
        allowed = {"edges": EDGE_FIELDS, "pageInfo": PAGE_INFO_FIELDS}.get(f.name, frozenset())
        if any(sub.name not in allowed for sub in f.selection):
            raise Unsupported
        for edge_field in f.selection if f.name == "edges" else ():
            if edge_field.name == "node":
                _check_plain(edge_field)


def _check_plain(field: Field) -> None:
    """Every field below ``field`` is a plain attribute (no resolver of its own), or a user
    reference the node type declares (``user_references``)."""
    parent = named(field.type)
    references = user_references(parent)
    for f in field.selection:
        if f.name == "__typename":
            continue
        definition = parent.fields[f.name].extensions.get(DEFINITION)
        plain = definition is not None and definition.base_resolver is None
        if not plain and f.name not in references:
            raise Unsupported
        if f.selection:
            _check_plain(f)


def _check_readable(
    view: PermissionView, guarded: frozenset[tuple[str, str]], selection: tuple[Field, ...]
) -> None:
    """The viewer may read every guarded field the selection touches (as ``protect`` would
    check each of them)."""
    for parent, name in _touched(selection):
        if (parent, name) in guarded and not view.can_read(parent, name):
            raise Unsupported


def _touched(selection: tuple[Field, ...]) -> Iterator[tuple[str, str]]:
    for f in selection:
        if f.selection:
            parent = named(f.type).name
            for sub in f.selection:
                yield parent, sub.name
            yield from _touched(f.selection)


async def _users(
    context: RequestContext, selection: tuple[Field, ...], nodes: list[Any], known: dict[str, Any]
) -> dict[str, Any]:
    """The users the nodes (and their plain objects) reference in the selection, by id:
    ``known`` ones (joined into the page's rows), the rest loaded at once."""
    from core.api.types import User

    ids: set[str] = set()
    for f in selection:
        for edge_field in f.selection if f.name == "edges" else ():
            if edge_field.name == "node":
                _referenced(edge_field, nodes, ids)
    ids -= known.keys()
    if not ids:
        return known
    ordered = sorted(ids)
    models = await context.users.load_many(ordered)
    loaded = {i: User.from_model(m) for i, m in zip(ordered, models, strict=True) if m}
    return {**known, **loaded}


def _referenced(field: Field, objects: list[Any], ids: set[str]) -> None:
    """Add to ``ids`` the users ``field``'s selection references on ``objects``, at any depth."""
    type_ = named(field.type)
    references = user_references(type_)
    for f in field.selection:
        if f.name in references:
            attribute = references[f.name]
            ids |= {i for o in objects if (i := getattr(o, attribute)) is not None}
        elif f.selection:
            python_name = type_.fields[f.name].extensions[DEFINITION].python_name
            inner: list[Any] = []
            for o in objects:
                value = getattr(o, python_name)
                if isinstance(value, list):
                    inner.extend(v for v in value if v is not None)
                elif value is not None:
                    inner.append(value)
            _referenced(f, inner, ids)


def _page_info(field: Field, page: Page[Any]) -> dict[str, Any]:
    values = {
        "__typename": "PageInfo",
        "hasNextPage": page.has_next,
        "endCursor": page.cursors[-1] if page.cursors else None,
    }
    return {f.key: values[f.name] for f in field.selection}
