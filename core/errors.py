"""Domain errors. Each carries the contract's error code; the API maps them in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Every ``extensions.code`` the server can send, and the only way to name one.

    Raise sites use a ``BatonError`` subclass (whose ``code`` is one of these) or pass a member
    to ``core.api.errors.http_error``; the error table of ``docs/frontend/graphql.md`` must list
    each member (``tests/test_error_codes.py`` checks both).
    """

    UNAUTHENTICATED = "UNAUTHENTICATED"
    BAD_REQUEST = "BAD_REQUEST"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    FORBIDDEN = "FORBIDDEN"
    FORBIDDEN_FIELD = "FORBIDDEN_FIELD"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    INVALID_STATE = "INVALID_STATE"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    TIMEOUT = "TIMEOUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldError:
    """One invalid input value: where it is (``input.name``) and why it was refused."""

    path: str
    reason: str


class BatonError(Exception):
    """Base class: ``code`` is the GraphQL ``extensions.code``."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class NotFound(BatonError):
    """The id names nothing the viewer can see."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, type_name: str, entity_id: str) -> None:
        super().__init__(f"{type_name} {entity_id!r} not found")


class Conflict(BatonError):
    """A stale ``expectedVersion`` or a concurrent change won."""

    code = ErrorCode.CONFLICT


class ServiceUnavailable(BatonError):
    """The database could not be reached in time; nothing was written, retry later."""

    code = ErrorCode.SERVICE_UNAVAILABLE


class InvalidState(BatonError):
    """The step is not allowed from the entity's current state."""

    code = ErrorCode.INVALID_STATE

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message, state=state)


class Forbidden(BatonError):
    """The viewer may not perform this operation or write these fields."""

    code = ErrorCode.FORBIDDEN


class ForbiddenField(BatonError):
    """The viewer may not read this field; it resolves to null, its siblings still resolve."""

    code = ErrorCode.FORBIDDEN_FIELD

    def __init__(self, obj: str) -> None:
        super().__init__(f"Not allowed to read {obj}", object=obj)


class BadUserInput(BatonError):
    """One or more input values are invalid; nothing was written.

    Paths are relative to ``root``: services validate a use case's ``input`` object, so the
    default root is ``input`` (``input.paymentTermsDays``); argument checks pass ``root=""``.
    """

    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, errors: list[FieldError], root: str = "input") -> None:
        self.errors = [FieldError(f"{root}.{e.path}" if root else e.path, e.reason) for e in errors]
        summary = "; ".join(f"{e.path}: {e.reason}" for e in self.errors)
        super().__init__(
            f"Invalid input: {summary}",
            fields=[{"path": e.path, "reason": e.reason} for e in self.errors],
        )

    @classmethod
    def one(cls, path: str, reason: str, root: str = "input") -> BadUserInput:
        return cls([FieldError(path, reason)], root=root)


class QueryTooComplex(BatonError):
    """The document exceeds a query limit (depth, aliases, tokens, cost); nothing executed."""

    code = ErrorCode.QUERY_TOO_COMPLEX

    def __init__(self, name: str, label: str, value: int, maximum: int) -> None:
        super().__init__(
            f"query {label} {value} exceeds the limit of {maximum}",
            limit={"name": name, "value": value, "max": maximum},
        )
