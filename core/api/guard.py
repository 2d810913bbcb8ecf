"""Authorisation applied by the field machinery: every field of every type, checked once per
resolution against the request's PermissionView, so a new field is protected the day it appears.

- Query and Mutation fields are operations: ``(Query.customers, call)``.
- Arguments that filter or order (inputs with ``authz_read_fields``) need read on those fields;
  mutation inputs (``authz_write_fields``) need write on every field they set.
- Every other field needs ``(Type.field, read)``, except ``id``, ``version``, containers
  (``metadata={"authz": "container"}``) and types that only carry others (``authz_exempt``).
- A field derived from another type's field names it (``metadata={"authz":
  "Customer.annualRevenue"}``) and needs read on that one instead: a roll-up of revenue is as
  readable as revenue itself, whatever the policies say later.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema, default_field_resolver
from strawberry.extensions import FieldExtension
from strawberry.types import Info

from core.api.context import context_of
from core.errors import BadUserInput, ForbiddenField
from core.services.audit import to_camel

STRUCTURAL = frozenset({"id", "version"})
ROOTS = ("Query", "Mutation")
# Its fields check, before they stream, the right of the query they mirror
# (core.notify.subscriptions_api): one right for polling and live delivery.
SUBSCRIPTION = "Subscription"
DEFINITION = "strawberry-definition"
Resolver = Callable[..., Any]


def guarded_fields(schema: GraphQLSchema) -> Iterator[tuple[str, str, GraphQLField]]:
    """Every ``(type, field)`` whose reading needs ``(Type.field, read)``."""
    for type_name, type_ in schema.type_map.items():
        if (
            not isinstance(type_, GraphQLObjectType)
            or type_name.startswith("__")
            or type_name in (*ROOTS, SUBSCRIPTION)
        ):
            continue
        definition = type_.extensions.get(DEFINITION)
        if getattr(getattr(definition, "origin", None), "authz_exempt", False):
            continue
        for field_name, field in type_.fields.items():
            if field_name not in STRUCTURAL and _authz(field) is None:
                yield type_name, field_name, field


def delegated_fields(schema: GraphQLSchema) -> Iterator[tuple[str, str, GraphQLField]]:
    """Every field authorised by another object: ``(type, field, field)`` for each, the
    object being ``_authz(field)``."""
    for type_ in schema.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for field_name, field in type_.fields.items():
                if "." in (_authz(field) or ""):
                    yield type_.name, field_name, field


def operations(schema: GraphQLSchema) -> list[str]:
    """Every operation (``Query.customers``, ``Mutation.createCustomer``): each needs ``call``."""
    return [
        f"{root}.{name}"
        for root in ROOTS
        if isinstance(t := schema.type_map.get(root), GraphQLObjectType)
        for name in t.fields
    ]


def policy_objects(schema: GraphQLSchema) -> tuple[list[str], list[str]]:
    """The guarded fields (``Customer.name``) and the operations of ``schema``, by name."""
    return [f"{t}.{f}" for t, f, _ in guarded_fields(schema)], operations(schema)


def protect(schema: GraphQLSchema) -> None:
    """Wrap the field resolvers of ``schema`` in place (once, when the schema is built).

    Root fields are guarded by ``OperationGuard`` instead, which sees converted arguments.
    """
    for type_name, field_name, field in guarded_fields(schema):
        field.resolve = _readable(type_name, field_name, field.resolve or default_field_resolver)
    for _, _, field in delegated_fields(schema):
        type_name, _, field_name = str(_authz(field)).partition(".")
        field.resolve = _readable(type_name, field_name, field.resolve or default_field_resolver)


def guard_operations(*roots: type) -> None:
    """Attach ``OperationGuard`` to every field of the root types (idempotent)."""
    for root in roots:
        for field in root.__strawberry_definition__.fields:  # type: ignore[attr-defined]
            if not any(isinstance(e, OperationGuard) for e in field.extensions):
                field.extensions.append(OperationGuard())


def _authz(field: GraphQLField) -> str | None:
    """The field's ``authz`` metadata: ``"container"``, another object, or None."""
    definition = field.extensions.get(DEFINITION) if field.extensions else None
    return definition.metadata.get("authz") if definition else None


def _readable(type_name: str, field_name: str, inner: Resolver) -> Resolver:
    obj = f"{type_name}.{field_name}"

    def resolve(root: Any, info: Any, **kwargs: Any) -> Any:
        if not context_of(info).permissions.can_read(type_name, field_name):
            raise ForbiddenField(obj)
        return inner(root, info, **kwargs)

    return resolve


def authorize_operation(info: Info, arguments: dict[str, Any]) -> None:
    """The operation may be called, and its arguments only read and write what they may."""
    view = context_of(info).permissions
    root = info.operation.operation.value.capitalize()  # "Query" or "Mutation"
    view.require_call(f"{root}.{info.field_name}")
    for name, value in arguments.items():
        if (path := _nul_at(value, name)) is not None:
            # PostgreSQL cannot store it, and no name, id or note needs it.
            raise BadUserInput.one(path, "must not contain the NUL character", root="")
    for value in arguments.values():
        entity = getattr(value, "authz_entity", None)
        if entity is None:
            continue
        if hasattr(value, "authz_write_fields"):
            for required in value.authz_operations():
                view.require_call(required)
            view.require_write(entity, value.authz_write_fields())
            for type_name, fields in getattr(value, "authz_nested_writes", dict)().items():
                view.require_write(type_name, fields)
        if hasattr(value, "authz_read_fields"):
            view.require_read(entity, value.authz_read_fields(), "filter or order")


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first string in ``value`` (an argument) with a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Enum | type):
        return None
    if isinstance(value, list | tuple):
        items: Iterator[tuple[str, Any]] = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif hasattr(value, "__strawberry_definition__"):
        items = ((f"{path}.{to_camel(k)}", v) for k, v in vars(value).items())
    else:
        return None
    return next((found for key, v in items if (found := _nul_at(v, key)) is not None), None)


class OperationGuard(FieldExtension):
    """Checks a root field (``Query.customers``, ``Mutation.createCustomer``) before it runs."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        authorize_operation(info, kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        authorize_operation(info, kwargs)
        result = next_(source, info, **kwargs)
        return await result if inspect.isawaitable(result) else result
