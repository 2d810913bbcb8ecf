"""The one place where exceptions become the contract's error codes."""

from __future__ import annotations

import logging
import re
from typing import Any

from graphql import GraphQLError

from core.api.observe import note_error
from core.db import database_unavailable
from core.errors import BatonError, ErrorCode

log = logging.getLogger("baton.api")

_DID_YOU_MEAN = re.compile(r"\s*Did you mean .*?\?$")
_VARIABLE = re.compile(
    r"^Variable '\$(?P<name>\w+)' (?:got|has) invalid value"
    r"(?: at (?P<at>[\w.\[\]]+))?: (?P<reason>.*)$",
    re.S,
)


def http_error(message: str, code: ErrorCode, **extensions: Any) -> dict[str, Any]:
    """The JSON body of an HTTP-level error (401, 400, 405, 413, 503), or of an operation
    that did not run (an unknown persisted query); ``extensions`` besides the code."""
    note_error(code)
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    """A GraphQL error as the client sees it: message, ``extensions.code``, location, path."""
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        original = database_unavailable(original) or original
    extensions: dict[str, Any]
    if isinstance(original, BatonError):
        message, extensions = original.message, {"code": original.code, **original.extensions}
    elif original is None or isinstance(original, GraphQLError):
        message, extensions = _request_error(error.message)
    else:
        log.error("unexpected error (request %s)", request_id, exc_info=original)
        message = f"Internal error; quote request id {request_id} to support"
        extensions = {"code": ErrorCode.INTERNAL, "requestId": request_id}
    note_error(extensions["code"])
    formatted: dict[str, Any] = {"message": message, "extensions": extensions}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path:
        formatted["path"] = error.path
    return formatted


def _request_error(message: str) -> tuple[str, dict[str, Any]]:
    """Errors without an exception behind them: a bad variable value, or an invalid document."""
    match = _VARIABLE.match(message)
    if match:
        path = match["name"] + (match["at"] or "")
        reason = _DID_YOU_MEAN.sub("", match["reason"]).strip()
        return (
            f"Invalid value for {path}: {reason}",
            {"code": ErrorCode.BAD_USER_INPUT, "fields": [{"path": path, "reason": reason}]},
        )
    return _DID_YOU_MEAN.sub("", message), {"code": ErrorCode.GRAPHQL_VALIDATION_FAILED}
