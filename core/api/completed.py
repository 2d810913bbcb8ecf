"""Connection pages answered without per-field execution (issue 21).

graphql-core resolves and completes every field of every node through a Python call or
three (strawberry's resolver, the permission wrapper, the completion), which is most of a list
request's time. Most list queries select only what a page already holds: plain fields of the
nodes (and of their plain objects), the users they reference, cursors, ``pageInfo`` and
``totalCount``. For those, ``complete_page`` builds the response value directly, and the
execution context below returns it as the field's completed value.

The permission view is still the judge, decided once per (type, field) of the selection: the
page is completed here only when the viewer may read every guarded field the selection
touches. Anything else — a denied field (which must answer FORBIDDEN_FIELD where it stands),
a field with a resolver of its own, an argument, a directive, an abstract type — goes through
normal execution, so both paths give the same response for the same request.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    InlineFragmentNode,
    SelectionSetNode,
    is_specified_scalar_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

from core.api.context import RequestContext
from core.authz.view import PermissionView
from core.services.pagination import Page

DEFINITION = "strawberry-definition"
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


class Unsupported(Exception):
    """The selection needs normal execution."""


@dataclass(frozen=True)
class Field:
    """One selected field of an object type: its response key and definition."""

    key: str
    name: str
    type: GraphQLOutputType
    selection: tuple[Field, ...] = ()


def _python_names(field: Field) -> tuple[str, ...] | None:
    """The attributes ``field``'s plain sub-selection reads, or None if it selects deeper."""
    type_ = _named(field.type)
    names = []
    for f in field.selection:
        if f.selection:
            return None
        if f.name != "__typename":
            names.append(type_.fields[f.name].extensions[DEFINITION].python_name)
    return tuple(names)


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
        table = joined[0]
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
            type_ = _named(node.type)
            references = _user_references(type_)
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
                    rows.join_user(name, available[name], _python_names(f), User.sql_columns)
        return rows

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
    ) -> Completed | None:
        """The whole connection value, or None when normal execution must answer (a null
        where the schema promises a value: execution reports that error where it stands)."""
        try:
            users = await _users(context, self.selection, nodes, users or {})
            value: dict[str, Any] = {}
            for f in self.selection:
                if f.name == "__typename":
                    value[f.key] = self.connection.name
                elif f.name == "totalCount":
                    value[f.key] = await count()
                elif f.name == "pageInfo":
                    value[f.key] = _page_info(f, page)
                else:  # edges
                    edge = _edge_completer(f)
                    shown = any(e.name == "cursor" for e in f.selection)
                    cursors = page.cursors if shown else itertools.repeat(None, len(nodes))
                    value[f.key] = [edge(pair, users) for pair in zip(cursors, nodes, strict=True)]
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
        selection = _fields(raw.fragments, raw.field_nodes[0].selection_set, connection)
        _check_shape(selection)
        _check_readable(context.permissions, guarded, selection)
    except Unsupported:
        return None
    return PagePlan(connection, selection)


def _fields(
    fragments: dict[str, FragmentDefinitionNode],
    selection_set: SelectionSetNode | None,
    parent: Any,
) -> tuple[Field, ...]:
    """The fields selected on ``parent`` (an object type), fragments flattened."""
    if selection_set is None or not isinstance(parent, GraphQLObjectType):
        raise Unsupported
    found: dict[str, Field] = {}
    for node in _flatten(fragments, selection_set, parent):
        if node.arguments or node.directives:
            raise Unsupported
        name = node.name.value
        key = node.alias.value if node.alias else name
        if name == "__typename":
            field = Field(key, name, parent)
        else:
            definition = parent.fields.get(name)
            if definition is None:
                raise Unsupported
            inner = _named(definition.type)
            sub = (
                _fields(fragments, node.selection_set, inner)
                if isinstance(inner, GraphQLObjectType)
                else ()
            )
            field = Field(key, name, definition.type, sub)
        if key in found and (found[key].name != name or field.selection):
            raise Unsupported  # merging sub-selections of one key: leave it to execution
        found[key] = field
    return tuple(found.values())


def _flatten(
    fragments: dict[str, FragmentDefinitionNode],
    selection_set: SelectionSetNode,
    parent: GraphQLObjectType,
) -> Iterator[FieldNode]:
    for selection in selection_set.selections:
        if selection.directives:
            raise Unsupported
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != parent.name:
                raise Unsupported
            yield from _flatten(fragments, selection.selection_set, parent)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is None or fragment.type_condition.name.value != parent.name:
                raise Unsupported
            yield from _flatten(fragments, fragment.selection_set, parent)


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


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
    parent = _named(field.type)
    references = _user_references(parent)
    for f in field.selection:
        if f.name == "__typename":
            continue
        definition = parent.fields[f.name].extensions.get(DEFINITION)
        plain = definition is not None and definition.base_resolver is None
        if not plain and f.name not in references:
            raise Unsupported
        if f.selection:
            _check_plain(f)


def _user_references(type_: GraphQLObjectType) -> dict[str, str]:
    """GraphQL field name → the attribute holding a user id, as the type declares them."""
    definition = type_.extensions.get(DEFINITION)
    origin = getattr(definition, "origin", None)
    return dict(getattr(origin, "user_references", {}))


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
            parent = _named(f.type).name
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
    type_ = _named(field.type)
    references = _user_references(type_)
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


# A completer turns a value (and the page's users by id) into its response value; built once
# per selection, so a page pays one call per field, not a walk of the selection per row.
Completer = Callable[[Any, dict[str, Any]], Any]


def _edge_completer(field: Field) -> Completer:
    """Completes an edge given as ``(cursor, node)``."""
    parts: list[tuple[str, Completer]] = []
    for f in field.selection:
        if f.name == "__typename":
            parts.append((f.key, _constant(_named(field.type).name)))
        elif f.name == "cursor":
            parts.append((f.key, _item(0, _as_is)))
        else:
            parts.append((f.key, _item(1, _object_completer(f, _named(f.type)))))
    return _dict_of(parts)


def _object_completer(field: Field, type_: GraphQLObjectType) -> Completer:
    references = _user_references(type_)
    parts: list[tuple[str, Completer]] = []
    for f in field.selection:
        if f.name == "__typename":
            parts.append((f.key, _constant(type_.name)))
        elif f.name in references:
            parts.append((f.key, _user_completer(f, references[f.name])))
        else:
            python_name = type_.fields[f.name].extensions[DEFINITION].python_name
            parts.append((f.key, _attribute_completer(f, python_name)))
    return _dict_of(parts)


def _dict_of(parts: list[tuple[str, Completer]]) -> Completer:
    return lambda value, users: {key: part(value, users) for key, part in parts}


def _constant(constant: Any) -> Completer:
    return lambda _value, _users: constant


def _as_is(value: Any, _users: dict[str, Any]) -> Any:
    return value


def _item(index: int, then: Completer) -> Completer:
    return lambda value, users: then(value[index], users)


def _attribute(name: str, then: Completer) -> Completer:
    return lambda value, users: then(getattr(value, name), users)


def _user_completer(field: Field, attribute: str) -> Completer:
    """Completes the user ``attribute`` names; each user once per page (rows share owners)."""
    user = _object_completer(field, _named(field.type))
    done: dict[str, Any] = {}

    def complete(obj: Any, users: dict[str, Any]) -> Any:
        user_id = getattr(obj, attribute)
        if user_id is None:
            return None
        if user_id not in done:
            found = users.get(user_id)
            done[user_id] = None if found is None else user(found, users)
        return done[user_id]

    return complete


def _attribute_completer(field: Field, name: str) -> Completer:
    """Completes the attribute ``name`` of a value: one call for a leaf (the common case)."""
    required = isinstance(field.type, GraphQLNonNull)
    type_ = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        serialize = _serializer(type_)
        strings_pass = _passes_strings(type_)

        def leaf(value: Any, _users: dict[str, Any]) -> Any:
            found = getattr(value, name)
            if strings_pass and type(found) is str:
                return found
            if found is None:
                if required:
                    raise Unsupported  # an error to report: execution reports it where it stands
                return None
            return serialize(found)

        return leaf
    return _attribute(name, _value_completer(field, field.type))


def _serializer(type_: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """``type_.serialize``, with its answers for an enum remembered (a handful of values) and
    strings passed through as the specified String and ID scalars pass them."""
    serialize = type_.serialize
    if isinstance(type_, GraphQLEnumType):
        known: dict[Any, Any] = {}

        def enum(value: Any) -> Any:
            try:
                return known[value]
            except KeyError:
                found = known[value] = serialize(value)
                return found
            except TypeError:  # unhashable: not one of the enum's values; serialize says so
                return serialize(value)

        return enum
    if _passes_strings(type_):
        return lambda value: value if type(value) is str else serialize(value)
    return serialize


def _passes_strings(type_: GraphQLScalarType | GraphQLEnumType) -> bool:
    """The specified String and ID scalars serialise a string as it is."""
    return is_specified_scalar_type(type_) and type_.name in ("String", "ID")


def _value_completer(field: Field, type_: Any) -> Completer:
    """Completes a value of ``type_`` as graphql-core does."""
    if isinstance(type_, GraphQLNonNull):
        inner = _value_completer(field, type_.of_type)

        def required(value: Any, users: dict[str, Any]) -> Any:
            if value is None:
                raise Unsupported  # an error to report: execution reports it where it stands
            return inner(value, users)

        return required
    if isinstance(type_, GraphQLList):
        item = _value_completer(field, type_.of_type)
        return lambda v, u: None if v is None else [item(i, u) for i in v]
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        serialize = _serializer(type_)
        return lambda v, _u: None if v is None else serialize(v)
    if isinstance(type_, GraphQLObjectType):
        obj = _object_completer(Field(field.key, field.name, type_, field.selection), type_)
        return lambda v, u: None if v is None else obj(v, u)
    raise Unsupported
