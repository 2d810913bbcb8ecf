"""Completers: a connection page's selection compiled once into functions that turn each node
(an entity or a row, and the page's users by id) into its response value, as graphql-core
would complete it; a page pays one call per field, not a walk of the selection per row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    is_specified_scalar_type,
)

from core.api.selection import DEFINITION, Field, Unsupported, named, user_references

# A value (and the page's users by id) → its response value.
Completer = Callable[[Any, dict[str, Any]], Any]


def edge_completer(field: Field) -> Completer:
    """Completes an edge given as ``(cursor, node)``."""
    parts: list[tuple[str, Completer]] = []
    for f in field.selection:
        if f.name == "__typename":
            parts.append((f.key, _constant(named(field.type).name)))
        elif f.name == "cursor":
            parts.append((f.key, _item(0, _as_is)))
        else:
            parts.append((f.key, _item(1, _object_completer(f, named(f.type)))))
    return _dict_of(parts)


def _object_completer(field: Field, type_: GraphQLObjectType) -> Completer:
    references = user_references(type_)
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
    user = _object_completer(field, named(field.type))
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
