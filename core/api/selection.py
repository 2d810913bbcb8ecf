"""The selection of a connection field, as ``core.api.completed`` reads it: fields by response
key with fragments flattened, and what each node type declares about its fields."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    InlineFragmentNode,
    SelectionSetNode,
)

DEFINITION = "strawberry-definition"


class Unsupported(Exception):
    """The selection needs normal execution."""


@dataclass(frozen=True)
class Field:
    """One selected field of an object type: its response key and definition."""

    key: str
    name: str
    type: GraphQLOutputType
    selection: tuple[Field, ...] = ()


def python_names(field: Field) -> tuple[str, ...] | None:
    """The attributes ``field``'s plain sub-selection reads, or None if it selects deeper."""
    type_ = named(field.type)
    names = []
    for f in field.selection:
        if f.selection:
            return None
        if f.name != "__typename":
            names.append(type_.fields[f.name].extensions[DEFINITION].python_name)
    return tuple(names)


def select_fields(
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
            inner = named(definition.type)
            sub = (
                select_fields(fragments, node.selection_set, inner)
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


def named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def user_references(type_: GraphQLObjectType) -> dict[str, str]:
    """GraphQL field name → the attribute holding a user id, as the type declares them."""
    definition = type_.extensions.get(DEFINITION)
    origin = getattr(definition, "origin", None)
    return dict(getattr(origin, "user_references", {}))
