"""Schema assembly: one place builds the schema the app serves and `baton schema export` prints."""

from __future__ import annotations

from functools import partial
from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from core.api.assignment import AssignmentRule, ReassignmentRequest
from core.api.completed import ExecutionContext
from core.api.documents import DocumentCache
from core.api.guard import guard_operations, guarded_fields, protect
from core.api.handover import Handover, WorkflowEvent
from core.api.inputs import CreateCustomerInput, UpdateCustomerInput
from core.api.limits import LimitsExtension, QueryLimits
from core.api.mutation import Mutation, customer_writes
from core.api.observe import OperationObserver
from core.api.query import Query
from core.api.special_needs import SpecialNeedsTypes, build_types, with_special_needs
from core.api.types import AuditEntry, Customer, User
from core.notify.subscriptions_api import Subscription
from core.plugins import PluginRegistry, builtin_plugins


class BatonSchema(strawberry.Schema):
    """The schema with the plugins' typed ``Customer.specialNeeds``.

    Errors are logged where they are formatted (``core.api.errors``), not here.
    """

    documents: DocumentCache | None = None  # the prepared documents, when limits apply
    # (type, field) pairs that need read permission: what ``protect`` checks field by field.
    guarded: frozenset[tuple[str, str]] | None = None
    completed_pages = 0  # pages answered by ``core.api.completed`` (tests, benchmarks)
    row_pages = 0  # of those, pages loaded as rows of columns, not entities

    def __init__(self, special_needs: SpecialNeedsTypes | None, **kwargs: Any) -> None:
        self.special_needs = special_needs
        super().__init__(**kwargs)

    def get_fields(self, type_definition: StrawberryObjectDefinition) -> list[StrawberryField]:
        fields = super().get_fields(type_definition)
        if type_definition.origin is Customer and self.special_needs is not None:
            fields = [*fields, _special_needs_field(self.special_needs)]
        return fields

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        return None


def _special_needs_field(types: SpecialNeedsTypes) -> StrawberryField:
    def special_needs(self: Customer) -> Any:
        return types.value(self.special_needs_data)

    special_needs.__annotations__ = {"return": types.output | None}
    return strawberry.field(
        special_needs,
        description="Typed special needs from the plugins; each field is authorised.",
        metadata={"authz": "container"},
    )


def build_schema(
    plugins: PluginRegistry | None = None,
    *,
    authorization: bool = True,
    limits: QueryLimits | None = None,
) -> BatonSchema:
    """The GraphQL schema, with the typed special-needs fields and inputs of ``plugins``,
    refusing documents over ``limits`` (none when not given, as for the SDL export).

    Root fields are nullable: an error in one (NOT_FOUND, FORBIDDEN) nulls only that field,
    never the sibling fields of the same request.
    """
    special_needs = build_types(plugins.plugins if plugins else ())
    mutation: type = Mutation
    if special_needs is not None:
        writes = customer_writes(
            with_special_needs(CreateCustomerInput, special_needs),
            with_special_needs(UpdateCustomerInput, special_needs),
        )
        mutation = strawberry.type(type("Mutation", (writes, Mutation), {}))
    guard_operations(Query, mutation)
    # One cache per schema: its entries hold this schema's validation results.
    documents = DocumentCache()
    schema = BatonSchema(
        special_needs,
        query=Query,
        mutation=mutation,
        subscription=Subscription,
        types=[
            Customer,
            User,
            AuditEntry,
            AssignmentRule,
            ReassignmentRequest,
            Handover,
            WorkflowEvent,
        ],
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=ExecutionContext,
        extensions=[
            OperationObserver,
            *([partial(LimitsExtension, limits, documents)] if limits else []),
        ],
    )
    schema.guarded = frozenset()
    if authorization:  # off only for the benchmark's baseline (Settings.authorization)
        protect(schema._schema)
        schema.guarded = frozenset((t, f) for t, f, _ in guarded_fields(schema._schema))
    schema.documents = documents
    return schema


def export_sdl() -> str:
    """The schema with the built-in plugins as SDL, as committed in ``schema/schema.graphql``."""
    return build_schema(builtin_plugins()).as_str() + "\n"
