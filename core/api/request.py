"""What makes an HTTP request to ``/graphql`` a GraphQL request.

A request that is not one is refused before anything executes: HTTP 400 ``BAD_REQUEST`` (or
413 ``PAYLOAD_TOO_LARGE``) with the contract's error body. Only ``application/json`` bodies
are read: the content types a browser may send cross-site without a CORS preflight
(``text/plain``, forms, multipart, none at all) are refused, so a page on another origin
cannot make a signed-in browser run a mutation (no CSRF through simple requests).

Automatic persisted queries (Apollo's protocol, which Apollo Client, urql and Relay clients
speak): an operation may carry ``extensions.persistedQuery`` ``{version: 1, sha256Hash}``,
on ``POST`` or on ``GET`` (``extensions`` as a JSON query parameter). With the text, the hash
must be the text's sha256 (else HTTP 400 ``BAD_USER_INPUT``) and is registered; without it,
a registered hash stands for its text, and an unknown one leaves the operation unresolved
(``UNRESOLVED``: answered ``PersistedQueryNotFound`` so that the client sends the text).
The hashes live in the prepared documents (``core.api.documents``) of this process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
    parse,
)
from starlette.requests import Request

from core.api.documents import DocumentCache
from core.errors import ErrorCode

Operation = dict[str, Any]
Payload = Operation | list[Operation]
# The key of an operation whose persisted query could not be resolved: its error code.
UNRESOLVED = "persistedQueryError"
HASH_FIELD = "extensions.persistedQuery.sha256Hash"


class BadRequest(Exception):
    """The request is not a GraphQL request (HTTP 400); the message says why."""


class BodyTooLarge(Exception):
    """The body is over the size limit (HTTP 413); it was not read further."""


class HashMismatch(Exception):
    """``extensions.persistedQuery.sha256Hash`` is not the sha256 of ``query`` (HTTP 400
    ``BAD_USER_INPUT``); the message says why."""


@dataclass(frozen=True)
class RequestLimits:
    """``max_batch_size`` 0 turns batching off: a JSON array is then refused."""

    max_body_bytes: int
    max_batch_size: int
    max_tokens: int
    # Where a document parsed here is kept for execution (one parse per distinct document).
    documents: DocumentCache | None = None
    # Automatic persisted queries (BATON_PERSISTED_QUERIES); they need ``documents``.
    persisted_queries: bool = True


async def read_payload(request: Request, limits: RequestLimits) -> Payload:
    """The GraphQL operation (or batch) a ``GET`` or ``POST`` carries, checked."""
    if request.method == "GET":
        return _operation(_from_query_string(request.query_params), limits, "")
    body = await _read_json_body(request, limits.max_body_bytes)
    if isinstance(body, dict):
        return _operation(body, limits, "")
    if not isinstance(body, list):
        raise BadRequest("request body must be a JSON object {query, variables, operationName}")
    if limits.max_batch_size <= 0:
        raise BadRequest("batching is off: send one operation as a JSON object")
    if not body:
        raise BadRequest("a batch must hold at least one operation")
    if len(body) > limits.max_batch_size:
        raise BadRequest(f"at most {limits.max_batch_size} operations per batch")
    return [_operation(op, limits, f"operation {i}: ") for i, op in enumerate(body)]


def _from_query_string(params: Mapping[str, str]) -> Operation:
    operation: Operation = {"query": params.get("query")}
    if (name := params.get("operationName")) is not None:
        operation["operationName"] = name
    if (variables := params.get("variables")) is not None:
        try:
            operation["variables"] = orjson.loads(variables)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("`variables` is not valid JSON") from exc
    if (extensions := params.get("extensions")) is not None:
        try:
            operation["extensions"] = orjson.loads(extensions)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("`extensions` is not valid JSON") from exc
    return operation


async def _read_json_body(request: Request, limit: int) -> Any:
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    charset = _parameter(parameters, "charset")
    if media_type.strip().lower() != "application/json" or charset not in (None, "utf-8", "utf8"):
        raise BadRequest(
            "Content-Type must be application/json (UTF-8); got "
            + repr(request.headers.get("content-type", "none"))
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge
    if not body.strip():
        raise BadRequest("request body is empty")
    try:
        bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not valid UTF-8") from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("request body is not valid JSON") from exc


def _parameter(parameters: str, name: str) -> str | None:
    for part in parameters.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"').lower()
    return None


def _operation(op: Any, limits: RequestLimits, where: str) -> Operation:
    if not isinstance(op, dict):
        raise BadRequest(f"{where}an operation must be a JSON object")
    op.pop(UNRESOLVED, None)  # only this module marks an operation unresolved
    query, variables, name = op.get("query"), op.get("variables"), op.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest(f"{where}`variables` must be an object")
    if name is not None and not isinstance(name, str):
        raise BadRequest(f"{where}`operationName` must be a string")
    extensions = op.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest(f"{where}`extensions` must be an object")
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is not None and query is None:
        return _persisted_query(op, persisted, limits, where)
    if query is None:
        raise BadRequest(f"{where}`query` is missing")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest(f"{where}`query` must be a non-empty string")
    if persisted is not None and _persisting(limits):
        sha256 = _hash_of(persisted, where)
        if hashlib.sha256(query.encode()).hexdigest() != sha256:
            raise HashMismatch(f"{where}`{HASH_FIELD}` is not the sha256 of `query`")
        _check_operation_name(query, name, limits, where)
        assert limits.documents is not None
        limits.documents.register(sha256, query)
        return op
    _check_operation_name(query, name, limits, where)
    return op


def _persisting(limits: RequestLimits) -> bool:
    return limits.persisted_queries and limits.documents is not None


def _hash_of(persisted: Any, where: str) -> str:
    """The hash of a well-formed ``extensions.persistedQuery``, lower case."""
    if not isinstance(persisted, dict):
        raise BadRequest(f"{where}`extensions.persistedQuery` must be an object")
    if persisted.get("version") != 1:
        raise BadRequest(f"{where}`extensions.persistedQuery.version` must be 1")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str):
        raise BadRequest(f"{where}`{HASH_FIELD}` must be a string")
    return sha256.lower()


def _persisted_query(op: Operation, persisted: Any, limits: RequestLimits, where: str) -> Operation:
    """An operation sent as a hash only: with the registered text, or unresolved."""
    if not _persisting(limits):
        return {**op, UNRESOLVED: ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED}
    sha256 = _hash_of(persisted, where)
    assert limits.documents is not None
    query = limits.documents.persisted(sha256)
    if query is None:
        return {**op, UNRESOLVED: ErrorCode.PERSISTED_QUERY_NOT_FOUND}
    _check_operation_name(query, op.get("operationName"), limits, where)
    return {**op, "query": query}


def reads_only(payload: Payload, limits: RequestLimits) -> bool:
    """Every operation of ``payload`` (checked by ``read_payload``) is a query."""
    for op in payload if isinstance(payload, list) else [payload]:
        if UNRESOLVED in op:
            continue  # nothing runs
        document = _document(op["query"], limits)
        chosen = get_operation_ast(document, op.get("operationName")) if document else None
        if chosen is None or chosen.operation != OperationType.QUERY:
            return False
    return True


def _document(query: str, limits: RequestLimits) -> DocumentNode | None:
    """The parsed document (from the prepared documents when there are), None if it does not
    parse or is over the token limit."""

    def parsed(text: str) -> DocumentNode:
        return parse(text, max_tokens=limits.max_tokens)

    try:
        if limits.documents is None:
            return parsed(query)
        return limits.documents.document(query, parsed).document
    except GraphQLSyntaxError:
        return None


def _check_operation_name(query: str, name: str | None, limits: RequestLimits, where: str) -> None:
    """``operationName`` must pick one operation of the document. A document that does not
    parse (or is over the token limit) is left to execution, which reports it as GraphQL."""
    document = _document(query, limits)
    if document is None:
        return
    names = [
        d.name.value if d.name else None
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    if name is not None and name not in names:
        raise BadRequest(f"{where}`operationName` {name!r} names no operation in the document")
    if name is None and len(names) > 1:
        raise BadRequest(
            f"{where}the document has {len(names)} operations; `operationName` must name one"
        )
