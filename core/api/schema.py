"""Schema assembly: one place builds the schema the app serves and `baton schema export` prints."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig

from core.api.assignment import AssignmentRule, ReassignmentRequest
from core.api.guard import guard_operations, protect
from core.api.handover import Handover, WorkflowEvent
from core.api.mutation import Mutation
from core.api.query import Query
from core.api.types import AuditEntry, Customer, User


class BatonSchema(strawberry.Schema):
    """Errors are logged where they are formatted (``core.api.errors``), not here."""

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        return None


def build_schema(*, authorization: bool = True) -> BatonSchema:
    """The GraphQL schema (plugins will add their typed fields here).

    Root fields are nullable: an error in one (NOT_FOUND, FORBIDDEN) nulls only that field,
    never the sibling fields of the same request.
    """
    guard_operations(Query, Mutation)
    schema = BatonSchema(
        query=Query,
        mutation=Mutation,
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
    )
    if authorization:  # off only for the benchmark's baseline (Settings.authorization)
        protect(schema._schema)
    return schema


def export_sdl() -> str:
    """The schema as SDL, as committed in ``schema/schema.graphql``."""
    return build_schema().as_str() + "\n"
