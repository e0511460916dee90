"""Input types with Adaptive's names, and their translation into store read-back conditions.

The advanced filter is a tree (`and` / `or` / `not` over leaf conditions); each leaf maps to one
store.readback condition, so GraphQL and REST filter with the same SQL. Label and score leaves
are conditions of the shared grammar (store.filters): `neq` on a label is also true when the key
is absent, a score bound compares the mean of the completion's values. `filter_leaves` collects
them all, for the caps and for the checks of metric and label names.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import strawberry
from sqlalchemy import and_, not_, or_, true

from ingest.graphql.context import InvalidInput
from ingest.graphql.scalars import JSON, IdOrKey, InputDatetime
from ingest.graphql.types import CompletionSource, MetricKind, MetricScoringType, SortDirection
from store import filters as grammar
from store.readback import (
    INTERACTION,
    Condition,
    completion_condition,
    label_filter_condition,
    metric_condition,
    metric_filter_condition,
    model_condition,
    session_condition,
    source_condition,
    time_condition,
    user_condition,
)


@strawberry.input
class MetricCreate:
    name: str
    key: str | None = None
    kind: MetricKind
    scoring_type: MetricScoringType = MetricScoringType.HIGHER_IS_BETTER
    description: str | None = None
    unit: str | None = None


@strawberry.input
class ScoreAddInput:
    value: JSON
    details: str | None = None
    reason: str | None = None
    user_id: str | None = None


@strawberry.input
class FeedbackAddInput:
    """adaptive-sdk 0.13's input for addDirectFeedback."""

    value: JSON
    details: str | None = None
    reason: str | None = None
    user_id: str | None = None


@strawberry.input
class TimeRange:
    from_: InputDatetime = strawberry.field(name="from")
    to: InputDatetime


@strawberry.input
class IdOrKeyCondition:
    eq: str | None = None
    in_: list[str] | None = strawberry.field(name="in", default=None)
    neq: str | None = None


@strawberry.input
class StringCondition:
    eq: str | None = None
    in_: list[str] | None = strawberry.field(name="in", default=None)
    neq: str | None = None


@strawberry.input
class TextCondition:
    eq: str | None = None
    contains: str | None = None


@strawberry.input
class LabelCondition:
    key: str
    value: StringCondition | None = None


@strawberry.input
class FloatNumericCondition:
    eq: float | None = None
    neq: float | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@strawberry.input
class ScoreCondition:
    metric: str
    value: FloatNumericCondition | None = None


@strawberry.input
class CompletionFilterExpression:
    and_: list[CompletionFilterExpression] | None = strawberry.field(name="and", default=None)
    or_: list[CompletionFilterExpression] | None = strawberry.field(name="or", default=None)
    not_: CompletionFilterExpression | None = strawberry.field(name="not", default=None)
    timerange: TimeRange | None = None
    model: IdOrKeyCondition | None = None
    label: LabelCondition | None = None
    scores: ScoreCondition | None = None
    source: CompletionSource | None = None
    session_id: uuid.UUID | None = None
    created_by: IdOrKeyCondition | None = None
    user_id: str | None = None
    completion_id: uuid.UUID | None = None
    completion: TextCondition | None = None


@strawberry.input
class LabelFilter:
    key: str
    value: list[str] | None = None


@strawberry.input
class CompletionScoreFilterInput:
    metric: str
    gt: float | None = None
    gte: float | None = None
    eq: float | None = None
    lt: float | None = None
    lte: float | None = None


@strawberry.input
class ListCompletionsFilterInput:
    project: IdOrKey
    models: list[str] | None = None
    timerange: TimeRange | None = None
    session_id: uuid.UUID | None = None
    user_id: str | None = None
    labels: list[LabelFilter] | None = None
    scores: list[CompletionScoreFilterInput] | None = None
    completion_id: uuid.UUID | None = None
    source: list[CompletionSource] | None = None
    advanced_filter: CompletionFilterExpression | None = None


@strawberry.input
class CursorPageInput:
    first: int | None = None
    after: str | None = None
    before: str | None = None
    last: int | None = None
    offset: int | None = None


@strawberry.input
class OrderPair:
    field: str
    order: SortDirection


def _string_condition(
    condition: IdOrKeyCondition | StringCondition, leaf: Any, what: str
) -> Condition:
    parts: list[Condition] = []
    if condition.eq is not None:
        parts.append(leaf([condition.eq]))
    if condition.in_ is not None:
        parts.append(leaf(condition.in_))
    if condition.neq is not None:
        parts.append(not_(leaf([condition.neq])))
    if not parts:
        raise InvalidInput(f"{what} condition needs `eq`, `in` or `neq`")
    return and_(*parts)


def _label_filters(condition: LabelCondition) -> list[grammar.LabelFilter]:
    """The grammar's label conditions of one label leaf (all must hold)."""
    key, value = condition.key, condition.value
    if value is None:
        return [grammar.LabelFilter(key, "exists")]
    labels = []
    if value.eq is not None:
        labels.append(grammar.LabelFilter(key, "=", (value.eq,)))
    if value.in_ is not None:
        labels.append(grammar.LabelFilter(key, "in", tuple(value.in_)))
    if value.neq is not None:
        labels.append(grammar.LabelFilter(key, "!=", (value.neq,)))
    if not labels:
        raise InvalidInput("label condition needs `eq`, `in` or `neq`")
    return labels


def _label(condition: LabelCondition, project_id: int | None) -> Condition:
    labels = _label_filters(condition)
    return and_(*[label_filter_condition(label, project_id=project_id) for label in labels])


_BOUNDS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "neq": "!="}


def _metric_filters(metric: str, bounds: Any) -> list[grammar.MetricFilter]:
    """The grammar's metric conditions of one score leaf; none: it only needs a value."""
    return [
        grammar.MetricFilter(metric, op, float(getattr(bounds, name)))  # type: ignore[arg-type]
        for name, op in _BOUNDS.items()
        if getattr(bounds, name, None) is not None
    ]


def _score(metric: str, bounds: Any) -> Condition:
    metrics = _metric_filters(metric, bounds)
    if not metrics:
        return metric_condition(metric)
    return and_(*[metric_filter_condition(m) for m in metrics])


def _text(condition: TextCondition) -> Condition:
    column = INTERACTION.c.completion
    parts: list[Condition] = []
    if condition.eq is not None:
        parts.append(column == condition.eq)
    if condition.contains is not None:
        parts.append(column.icontains(condition.contains, autoescape=True))
    return and_(*parts) if parts else true()


def expression_condition(
    expression: CompletionFilterExpression, project_id: int | None = None
) -> Condition:
    """One SQL condition for a filter tree; an empty expression matches everything."""
    parts: list[Condition] = []
    if expression.and_ is not None:
        parts.append(and_(true(), *[expression_condition(e, project_id) for e in expression.and_]))
    if expression.or_:
        parts.append(or_(*[expression_condition(e, project_id) for e in expression.or_]))
    if expression.not_ is not None:
        parts.append(not_(expression_condition(expression.not_, project_id)))
    if expression.timerange is not None:
        parts.append(time_condition(expression.timerange.from_, expression.timerange.to))
    if expression.model is not None:
        parts.append(_string_condition(expression.model, model_condition, "model"))
    if expression.label is not None:
        parts.append(_label(expression.label, project_id))
    if expression.scores is not None:
        parts.append(_score(expression.scores.metric, expression.scores.value))
    if expression.source is not None:
        parts.append(source_condition([expression.source.value]))
    if expression.session_id is not None:
        parts.append(session_condition(expression.session_id))
    if expression.created_by is not None:
        leaf = lambda users: INTERACTION.c.user_id.in_(users)  # noqa: E731
        parts.append(_string_condition(expression.created_by, leaf, "createdBy"))
    if expression.user_id is not None:
        parts.append(user_condition(expression.user_id))
    if expression.completion_id is not None:
        parts.append(completion_condition([expression.completion_id]))
    if expression.completion is not None:
        parts.append(_text(expression.completion))
    return and_(true(), *parts)


def filter_conditions(
    filter: ListCompletionsFilterInput, project_id: int | None = None
) -> list[Condition]:
    """Conditions of the simple filter fields plus the advanced filter (project aside)."""
    conditions: list[Condition] = []
    if filter.models:
        conditions.append(model_condition(filter.models))
    if filter.timerange is not None:
        conditions.append(time_condition(filter.timerange.from_, filter.timerange.to))
    if filter.session_id is not None:
        conditions.append(session_condition(filter.session_id))
    if filter.user_id is not None:
        conditions.append(user_condition(filter.user_id))
    for label in filter.labels or ():
        conditions.append(label_filter_condition(_simple_label(label), project_id=project_id))
    for score in filter.scores or ():
        conditions.append(_score(score.metric, score))
    if filter.completion_id is not None:
        conditions.append(completion_condition([filter.completion_id]))
    if filter.source:
        conditions.append(source_condition([s.value for s in filter.source]))
    if filter.advanced_filter is not None:
        conditions.append(expression_condition(filter.advanced_filter, project_id))
    return conditions


def _simple_label(label: LabelFilter) -> grammar.LabelFilter:
    if label.value is None:
        return grammar.LabelFilter(label.key, "exists")
    values = tuple(label.value)
    return grammar.LabelFilter(label.key, "=" if len(values) == 1 else "in", values)


@dataclass
class FilterLeaves:
    """Every label and metric condition of a filter, wherever it sits in the tree."""

    labels: list[grammar.LabelFilter] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)  # one entry per metric condition

    def check_counts(self) -> None:
        """InvalidInputError beyond the grammar's caps of label and metric conditions."""
        grammar.check_condition_counts(labels=len(self.labels), metrics=len(self.metric_keys))

    def add_score(self, metric: str, bounds: Any) -> None:
        self.metric_keys += [metric] * max(1, len(_metric_filters(metric, bounds)))

    def add_expression(self, expression: CompletionFilterExpression) -> None:
        for child in [*(expression.and_ or ()), *(expression.or_ or ())]:
            self.add_expression(child)
        if expression.not_ is not None:
            self.add_expression(expression.not_)
        if expression.label is not None:
            self.labels += _label_filters(expression.label)
        if expression.scores is not None:
            self.add_score(expression.scores.metric, expression.scores.value)


def filter_leaves(filter: ListCompletionsFilterInput) -> FilterLeaves:
    """The label and metric conditions of the simple fields and of the advanced filter."""
    leaves = FilterLeaves(labels=[_simple_label(label) for label in filter.labels or ()])
    for score in filter.scores or ():
        leaves.add_score(score.metric, score)
    if filter.advanced_filter is not None:
        leaves.add_expression(filter.advanced_filter)
    return leaves


DEFAULT_PAGE = 100


def page_window(page: CursorPageInput) -> tuple[int, str | None]:
    """(limit, cursor) for forward paging; backward paging and offsets are not supported."""
    if page.before is not None or page.last is not None or page.offset:
        raise InvalidInput("only forward paging is supported: use `first` and `after`")
    return (page.first or DEFAULT_PAGE), page.after


def ascending_order(order: list[OrderPair] | None, *, default_ascending: bool = False) -> bool:
    """True for ascending creation time; only `created_at` ordering is supported."""
    if not order:
        return default_ascending
    pair = order[0]
    if pair.field not in ("created_at", "createdAt", "group"):
        raise InvalidInput(f"cannot order by {pair.field!r}: order by `created_at`")
    return pair.order == SortDirection.ASC
