"""Prepared documents: parse, validation and the limits' measure done once per distinct
document, in a bounded LRU keyed by the document text; and the sha256 hashes of the texts
clients registered as automatic persisted queries (``core.api.request``), which name entries of
the same LRU and are forgotten with them.

Frontends send the same few documents again and again, so a request pays for walking its
document only the first time. The measure depends on the request's variables wherever a
``first`` comes from a variable, so it is cached per document and per the values of exactly
those variables: a request with another ``first`` is measured anew, and the limits hold for
every request's variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema

from core.lru import LRU

# A variable the request did not send (its definition's default applies), told apart from null.
_ABSENT = object()
# Distinct sets of variable values remembered per document: `first` takes few values in practice.
VALUE_SETS_PER_DOCUMENT = 16


@dataclass
class Prepared:
    """One document text: its parse, its validation errors per rule set, its measures."""

    document: DocumentNode
    errors: dict[tuple[type[ASTValidationRule], ...], list[GraphQLError]] = field(
        default_factory=dict
    )
    # (operation name) → the variable names its measure reads, and measures by their values.
    measures: dict[str | None, tuple[tuple[str, ...], LRU[tuple[Any, ...], Any]]] = field(
        default_factory=dict
    )
    sha256: str | None = None  # the text's hash, once a client registered it as persisted


class DocumentCache:
    """The process's prepared documents (``maxsize`` distinct texts at most)."""

    def __init__(self, maxsize: int = 512) -> None:
        self._documents: LRU[str, Prepared] = LRU(maxsize, self._forget)
        # sha256 → text of the registered persisted queries: only texts in ``_documents``.
        self._persisted: dict[str, str] = {}
        self.parses = 0  # read by tests and the benchmark: parses must not grow with requests

    def _forget(self, _query: str, prepared: Prepared) -> None:
        if prepared.sha256 is not None:
            self._persisted.pop(prepared.sha256, None)

    def register(self, sha256: str, query: str) -> bool:
        """Remember ``sha256`` as the hash of ``query`` (already verified) while the prepared
        entry of ``query`` is kept; False if there is none (the text did not parse)."""
        prepared = self._documents.get(query)
        if prepared is None:
            return False
        prepared.sha256 = sha256
        self._persisted[sha256] = query
        return True

    def persisted(self, sha256: str) -> str | None:
        """The text registered under ``sha256``, if its prepared entry is still kept."""
        query = self._persisted.get(sha256)
        if query is not None:
            self._documents.get(query)  # now the most recently used
        return query

    def document(self, query: str, parse: Callable[[str], DocumentNode]) -> Prepared:
        """The prepared entry for ``query``, parsing it (``parse`` may raise) on a miss."""
        prepared = self._documents.get(query)
        if prepared is None:
            self.parses += 1
            prepared = self._documents.put(query, Prepared(parse(query)))
        return prepared

    @staticmethod
    def errors(
        prepared: Prepared,
        schema: GraphQLSchema,
        rules: tuple[type[ASTValidationRule], ...],
        validate: Callable[[GraphQLSchema, DocumentNode, tuple[Any, ...]], list[GraphQLError]],
    ) -> list[GraphQLError]:
        """The validation errors of the document under ``rules`` (computed once per rule set)."""
        found = prepared.errors.get(rules)
        if found is None:
            found = prepared.errors[rules] = validate(schema, prepared.document, rules)
        return found

    @staticmethod
    def measure(
        prepared: Prepared,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        compute: Callable[[], tuple[Any, tuple[str, ...]]],
    ) -> Any:
        """The measure of ``operation_name`` for these ``variables``.

        ``compute`` walks the document and returns the measure and the names of the variables
        it read; the result is reused for any request whose values of those names are equal.
        """
        variables = variables or {}
        known = prepared.measures.get(operation_name)
        if known is not None:
            names, by_values = known
            key = tuple(_key(variables.get(name, _ABSENT)) for name in names)
            found = by_values.get(key)
            if found is not None:
                return found
        found, names = compute()
        if known is None or known[0] != names:
            known = prepared.measures[operation_name] = (names, LRU(VALUE_SETS_PER_DOCUMENT))
        known[1].put(tuple(_key(variables.get(name, _ABSENT)) for name in names), found)
        return found


def _key(value: Any) -> Any:
    """What the measure makes of a variable: an int (a page size) counts by value, anything
    else only by whether it was sent (the walk then uses the default either way)."""
    if value is _ABSENT:
        return _ABSENT
    return value if isinstance(value, int) else None
