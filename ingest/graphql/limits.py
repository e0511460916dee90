"""Limits on what one GraphQL document may ask for, checked before it is validated or run.

Without them one request could ask for anything: 1,000 aliases of `completions(page: {first:
100})` ran 30 s, answered 18 MB and slowed /healthz to 1.1 s. Four numbers (store/settings.py):

- tokens (INTERLOG_GRAPHQL_MAX_TOKENS, 3,000): the parser stops past them (an 8 MB document
  took 29 s to parse on a loaded machine, in the event loop), and a document longer than
  CHARACTERS_PER_TOKEN characters per token (150,000) is not parsed at all; adaptive-sdk's
  largest document has 220 tokens and 3 KB, a filter written in the document with every
  condition the grammar allows (50 label, 20 metric) 1,200 tokens.
- depth (INTERLOG_GRAPHQL_MAX_DEPTH, 12): fields nested in one another, `{ metrics { key } }`
  is 2. The schema has cycles (a completion's comparison scores name completions); the SDK's
  deepest document is 8. An introspection field (`__schema`, `__type`) counts as one level:
  graphql-core's validation bounds its nesting. Fragments and selections nested more than
  MAX_NESTING deep count as too deep.
- aliases (INTERLOG_GRAPHQL_MAX_ALIASES, 30): aliased fields, counted once per place a fragment
  is spread (only aliases let one field be asked for many times: same-named fields merge).
  adaptive-sdk sends none.
- cost (INTERLOG_GRAPHQL_MAX_COST, 10,000): the completions the document may return. A
  `completions` page counts its `first` (100 when absent), times the lists around it: under
  `completionsGrouped`, whose groups (one per model, not paged) count as GROUPS_PER_GROUPING;
  `completionsGrouped` itself, a pass over every matching row, counts as one default page. One
  page of 500 costs 500; the SDK's grouped listing 1,100 (5,100 with `first: 500`).

Fragments are measured once each (a document spreading a fragment twice in each of 30 nested
fragments would be walked 2^30 times otherwise: strawberry's own QueryDepthLimiter and
MaxAliasesLimiter walk it so, as validation rules that also answer HTTP 200). A refusal is an
error with `original_error` QueryRefused, set before validation and execution; the router
answers it with HTTP 400 in GraphQL's error shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from graphql.utilities import get_operation_ast, value_from_ast_untyped
from strawberry.extensions import SchemaExtension

from ingest.graphql.inputs import DEFAULT_PAGE
from store.settings import Settings, get_settings

#: How many groups a `completionsGrouped` counts as in the cost (one group per model).
GROUPS_PER_GROUPING = 10
#: Characters allowed per token of the token limit: whitespace, comments and one long string
#: are lexed character by character in Python (4 MB of them took 1 to 2.5 s).
CHARACTERS_PER_TOKEN = 50
#: Selection sets (fields, fragments, inline fragments) nested deeper than this are refused as
#: too deep whatever the depth limit: the measure recurses, and Python's stack is finite.
MAX_NESTING = 128


@dataclass(frozen=True)
class QueryLimits:
    max_tokens: int
    max_depth: int
    max_aliases: int
    max_cost: int

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryLimits:
        return cls(
            max_tokens=settings.graphql_max_tokens,
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_cost=settings.graphql_max_cost,
        )


class QueryRefused(Exception):
    """A document over a limit: answered 400 with CODE, never run."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code
        self.extensions = {"code": code, "type": "invalid_request_error"}

    def graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, original_error=self, extensions=self.extensions)


@dataclass(frozen=True)
class Shape:
    """What a selection set asks for: fields nested (depth), aliases, and cost at one pass."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0


_EMPTY = Shape()


def _too_long(limits: QueryLimits) -> QueryRefused:
    return QueryRefused(
        f"the query has more than {limits.max_tokens} tokens or "
        f"{CHARACTERS_PER_TOKEN * limits.max_tokens} characters (INTERLOG_GRAPHQL_MAX_TOKENS)",
        "query_too_long",
    )


def _too_deep(limits: QueryLimits) -> QueryRefused:
    return QueryRefused(
        f"the query nests fields more than {limits.max_depth} deep (INTERLOG_GRAPHQL_MAX_DEPTH)",
        "query_too_deep",
    )


class _Measure:
    """Measures one operation; fragments once each, cycles counted as empty (validation then
    refuses them)."""

    def __init__(
        self, document: DocumentNode, variables: Mapping[str, Any], limits: QueryLimits
    ) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = dict(variables)
        self.limits = limits
        self.memo: dict[str, Shape] = {}
        self.nesting = 0
        self.check_depth = True

    def operation(self, operation: OperationDefinitionNode) -> Shape:
        values: dict[str, Any] = {}
        for definition in operation.variable_definitions or ():
            if definition.default_value is not None:
                values[definition.variable.name.value] = value_from_ast_untyped(
                    definition.default_value
                )
        self.variables = {**values, **self.variables}
        return self.selections(operation.selection_set, 0)

    def selections(self, selection_set: SelectionSetNode, depth: int) -> Shape:
        """The shape of SELECTION_SET entered at DEPTH fields (refused as soon as the depth
        passes the limit)."""
        self.nesting += 1
        if self.nesting > MAX_NESTING or (self.check_depth and depth >= self.limits.max_depth):
            raise _too_deep(self.limits)
        deepest = aliases = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                shape = self.field(selection, depth)
            elif isinstance(selection, InlineFragmentNode):
                shape = self.selections(selection.selection_set, depth)
            elif isinstance(selection, FragmentSpreadNode):
                shape = self.fragment(selection.name.value, depth)
            else:  # pragma: no cover - graphql-core has no other selection
                continue
            if self.check_depth and depth + shape.depth > self.limits.max_depth:
                raise _too_deep(self.limits)
            deepest = max(deepest, shape.depth)
            aliases += shape.aliases
            cost += shape.cost
        self.nesting -= 1
        return Shape(deepest, aliases, cost)

    def field(self, field: FieldNode, depth: int) -> Shape:
        """The shape of FIELD at DEPTH: itself (1 deep), its selections, its alias."""
        own, times = self.field_cost(field)
        inner = _EMPTY
        if field.selection_set is not None and field.name.value.startswith("__"):
            # Introspection (`__schema`, `__type`): graphql-core's validation bounds how deep
            # it nests (MaxIntrospectionDepthRule), so it counts as one level here, as in
            # strawberry's QueryDepthLimiter: the standard introspection query nests 15.
            outer, self.check_depth = self.check_depth, False
            try:
                inner = self.selections(field.selection_set, depth + 1)
            finally:
                self.check_depth = outer
            inner = Shape(0, inner.aliases, inner.cost)
        elif field.selection_set is not None:
            inner = self.selections(field.selection_set, depth + 1)
        alias = field.alias is not None
        return Shape(1 + inner.depth, inner.aliases + alias, own + times * inner.cost)

    def fragment(self, name: str, depth: int) -> Shape:
        if name not in self.memo:
            definition = self.fragments.get(name)
            if definition is None:
                return _EMPTY  # validation refuses an unknown fragment
            self.memo[name] = _EMPTY  # a cycle through it counts as empty
            self.memo[name] = self.selections(definition.selection_set, depth)
        return self.memo[name]

    def field_cost(self, field: FieldNode) -> tuple[int, int]:
        """(cost of FIELD itself, times each of its sub-selections is resolved) per pass."""
        if field.name.value == "completionsGrouped":
            return DEFAULT_PAGE, GROUPS_PER_GROUPING
        for argument in field.arguments or ():
            if argument.name.value == "page":
                size = self.page_size(value_from_ast_untyped(argument.value, self.variables))
                return size, size
        return 0, 1

    @staticmethod
    def page_size(page: Any) -> int:
        """The `first` of a page input (as the resolver reads it: absent or 0 is the default)."""
        first = page.get("first") if isinstance(page, dict) else None
        if isinstance(first, float) and first.is_integer():
            first = int(first)
        if isinstance(first, int) and not isinstance(first, bool) and first > 0:
            return first
        return DEFAULT_PAGE


def _operations(document: DocumentNode, name: str | None) -> Iterator[OperationDefinitionNode]:
    """The operation that will run, or every operation when that is not clear (validation or
    execution then refuse the document)."""
    chosen = get_operation_ast(document, name)
    if chosen is not None:
        yield chosen
        return
    yield from (d for d in document.definitions if isinstance(d, OperationDefinitionNode))


def check_document(
    document: DocumentNode,
    *,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    limits: QueryLimits,
) -> Shape:
    """The shape of the operation that will run; QueryRefused when it breaks a limit."""
    total = _EMPTY
    for operation in _operations(document, operation_name):
        measure = _Measure(document, variables if isinstance(variables, Mapping) else {}, limits)
        shape = measure.operation(operation)
        total = Shape(
            max(total.depth, shape.depth), total.aliases + shape.aliases, total.cost + shape.cost
        )
    if total.aliases > limits.max_aliases:
        raise QueryRefused(
            f"the query has {total.aliases} aliases; at most {limits.max_aliases} are allowed "
            "(INTERLOG_GRAPHQL_MAX_ALIASES)",
            "too_many_aliases",
        )
    if total.cost > limits.max_cost:
        raise QueryRefused(
            f"the query may return {total.cost} completions (each page's `first`, 100 when "
            f"absent, times the lists around it); at most {limits.max_cost} are allowed "
            "(INTERLOG_GRAPHQL_MAX_COST)",
            "query_too_costly",
        )
    return total


class QueryLimiter(SchemaExtension):
    """Applies the limits of the request's app's settings: the token limit while parsing, the
    others between parsing and validation."""

    _cached: QueryLimits | None = None

    def _limits(self) -> QueryLimits:
        if self._cached is not None:
            return self._cached
        request = getattr(self.execution_context.context, "request", None)
        settings = getattr(getattr(request, "app", None), "state", None)
        settings = getattr(settings, "settings", None)
        self._cached = QueryLimits.from_settings(
            settings if isinstance(settings, Settings) else get_settings()
        )
        return self._cached

    def on_parse(self) -> Iterator[None]:
        """Parses the document here, under the token limit: strawberry then uses it. A refusal
        is raised, so strawberry answers it as the request's one error and parses nothing."""
        context, limits = self.execution_context, self._limits()
        context.parse_options["max_tokens"] = limits.max_tokens
        if context.graphql_document is None and context.query:
            if len(context.query) > CHARACTERS_PER_TOKEN * limits.max_tokens:
                raise _too_long(limits)
            try:
                context.graphql_document = parse(context.query, **context.parse_options)
            except GraphQLSyntaxError as error:
                if f"more than {limits.max_tokens} tokens" in error.message:
                    raise _too_long(limits) from error
                if "nested too deeply" in error.message:  # graphql-core's parser: 200 levels
                    raise _too_deep(limits) from error
                # Any other syntax error: strawberry parses it again and reports it.
            except RecursionError as error:  # the parser's stack
                raise _too_deep(limits) from error
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.pre_execution_errors is None:
            try:
                check_document(
                    context.graphql_document,
                    operation_name=context.operation_name,
                    variables=context.variables,
                    limits=self._limits(),
                )
            except QueryRefused as refused:
                # Set before validation runs: strawberry then skips it and never executes.
                context.pre_execution_errors = [refused.graphql_error()]
        yield


def refusal_of(errors: list[GraphQLError] | None) -> QueryRefused | None:
    """The limit a result's errors report, if it was refused by one."""
    for error in errors or ():
        if isinstance(error.original_error, QueryRefused):
            return error.original_error
    return None
