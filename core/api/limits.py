"""Query limits: tokens, depth, aliases and cost, all checked before anything executes.

Cost: every field costs 1; a field with a ``first`` argument (a connection or a capped list)
multiplies the cost of its selection by ``first`` (the literal, the variable's value, or the
argument's default). Fragments are expanded where they are spread, each measured once.
Introspection fields (``__schema``, ``__type``) add no depth: GraphiQL's schema query nests type
references deeper than any data query, and the introspection switch governs them instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    Lexer,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    TokenKind,
    ValidationRule,
    VariableNode,
    get_named_type,
    parse,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from core.api.documents import DocumentCache, Prepared
from core.errors import QueryTooComplex
from core.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


@dataclass(frozen=True)
class QueryLimits:
    """The maxima a document must stay within, and whether introspection is allowed."""

    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    introspection: bool = True


@dataclass(frozen=True)
class Measure:
    """What a selection (or a whole operation) amounts to."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0


_NOTHING = Measure()
_INTROSPECTION = frozenset({"__schema", "__type"})
Parent = GraphQLNamedType | None  # None: unknown to the schema (validation will say so)


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: dict[str, Any] | None = None,
) -> Measure:
    """The largest depth, alias count and cost among the operations that may run.

    Tolerates invalid documents (unknown fields, fragment cycles): validation reports those.
    """
    return measure_reading(schema, document, operation_name, variables)[0]


def measure_reading(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: dict[str, Any] | None = None,
) -> tuple[Measure, tuple[str, ...]]:
    """``measure``, and the names of the variables whose values it depended on."""
    walk = _Walk(schema, document, variables or {})
    measures = [
        walk.operation(op)
        for op in document.definitions
        if isinstance(op, OperationDefinitionNode)
        and (operation_name is None or (op.name is not None and op.name.value == operation_name))
    ]
    found = Measure(
        depth=max((m.depth for m in measures), default=0),
        aliases=max((m.aliases for m in measures), default=0),
        cost=max((m.cost for m in measures), default=0),
    )
    return found, tuple(sorted(walk.read))


def count_tokens(source: str) -> int:
    """Lexical tokens in ``source``, counted as ``parse(max_tokens=…)`` counts them."""
    lexer = Lexer(Source(source))
    count = 0
    try:
        while lexer.advance().kind != TokenKind.EOF:
            count += 1
    except GraphQLSyntaxError:
        pass  # the count so far is what parsing got through
    return count


def check(limits: QueryLimits, found: Measure) -> None:
    """Raise ``QueryTooComplex`` naming the first limit ``found`` exceeds."""
    for name, label, value, maximum in (
        ("depth", "depth", found.depth, limits.max_depth),
        ("aliases", "alias count", found.aliases, limits.max_aliases),
        ("cost", "cost", found.cost, limits.max_cost),
    ):
        if value > maximum:
            raise QueryTooComplex(name, label, value, maximum)


class _Walk:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.defaults: dict[str, int] = {}
        self.measured: dict[str, Measure] = {}
        self.entered: set[str] = set()
        self.read: set[str] = set()  # variables whose values the measure depends on

    def operation(self, node: OperationDefinitionNode) -> Measure:
        self.defaults = {
            d.variable.name.value: int(d.default_value.value)
            for d in node.variable_definitions or ()
            if isinstance(d.default_value, IntValueNode)
        }
        self.measured.clear()  # a fragment's `first: $var` may differ between operations
        return self.selections(node.selection_set, self.schema.get_root_type(node.operation))

    def selections(self, selection_set: SelectionSetNode, parent: Parent) -> Measure:
        depth = aliases = cost = 0
        for part in self._parts(selection_set, parent):
            depth, aliases, cost = max(depth, part.depth), aliases + part.aliases, cost + part.cost
        return Measure(depth, aliases, cost)

    def _parts(self, selection_set: SelectionSetNode, parent: Parent) -> Iterator[Measure]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                yield self.selections(selection.selection_set, on)
            elif isinstance(selection, FragmentSpreadNode):
                yield self.fragment(selection.name.value)

    def fragment(self, name: str) -> Measure:
        if name in self.measured:
            return self.measured[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.entered:
            return _NOTHING  # unknown or cyclic: validation refuses the document
        self.entered.add(name)
        found = self.selections(
            definition.selection_set, self.schema.get_type(definition.type_condition.name.value)
        )
        self.entered.discard(name)
        self.measured[name] = found
        return found

    def field(self, node: FieldNode, parent: Parent) -> Measure:
        definition = (
            parent.fields.get(node.name.value)
            if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        inner = _NOTHING
        if node.selection_set is not None:
            returns = get_named_type(definition.type) if definition else None
            inner = self.selections(node.selection_set, returns)
        introspection = node.name.value in _INTROSPECTION
        return Measure(
            depth=0 if introspection else inner.depth + 1,
            aliases=inner.aliases + (node.alias is not None),
            cost=1 + self.page_size(node, definition) * inner.cost,
        )

    def page_size(self, node: FieldNode, definition: GraphQLField | None) -> int:
        """``first`` for a field that has it (at most the page-size cap, which execution
        enforces as BAD_USER_INPUT), else 1."""
        if definition is None or "first" not in definition.args:
            return 1
        default = definition.args["first"].default_value
        size = default if isinstance(default, int) else DEFAULT_PAGE_SIZE
        given = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if isinstance(given, IntValueNode):
            size = int(given.value)
        elif isinstance(given, VariableNode):
            name = given.name.value
            self.read.add(name)
            value = self.variables.get(name, self.defaults.get(name, size))
            size = value if isinstance(value, int) else size
        return max(0, min(size, MAX_PAGE_SIZE))


class _NoIntrospection(ValidationRule):
    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value in _INTROSPECTION:
            self.report_error(GraphQLError("introspection is disabled", node))


class LimitsExtension(SchemaExtension):
    """Parses with the token limit and measures the document before validation runs, each
    once per distinct document (``DocumentCache``); validation is cached the same way.

    Measuring comes first because validation itself is what alias- and fragment-heavy
    documents make expensive.
    """

    def __init__(self, limits: QueryLimits, documents: DocumentCache) -> None:
        self.limits = limits
        self.documents = documents
        self.prepared: Prepared | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            self.prepared = self.documents.document(context.query, self._parse)
            context.graphql_document = self.prepared.document
        yield

    def _parse(self, query: str) -> DocumentNode:
        maximum = self.limits.max_tokens
        try:
            return parse(query, max_tokens=maximum)
        except GraphQLSyntaxError:
            tokens = count_tokens(query)
            if tokens > maximum:
                raise QueryTooComplex("tokens", "token count", tokens, maximum) from None
            raise

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        schema = context.schema._schema
        document = context.graphql_document
        if self.prepared is None:  # a document given without its text: nothing to key by
            self.prepared = Prepared(document)
        found = self.documents.measure(
            self.prepared,
            context.operation_name,
            context.variables,
            lambda: measure_reading(schema, document, context.operation_name, context.variables),
        )
        check(self.limits, found)
        if not self.limits.introspection:
            context.validation_rules = (*context.validation_rules, _NoIntrospection)
        context.pre_execution_errors = self.documents.errors(
            self.prepared, schema, tuple(context.validation_rules), validate_document
        )
        yield
