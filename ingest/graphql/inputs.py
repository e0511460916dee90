"""Input types with Adaptive's names, and their translation into store read-back conditions.

The advanced filter is a tree (`and` / `or` / `not` over leaf conditions); each leaf maps to one
store.readback condition, so GraphQL and REST filter with the same SQL.
"""

from __future__ import annotations

import uuid
from typing import Any

import strawberry
from sqlalchemy import and_, not_, or_, true

from ingest.graphql.context import InvalidInput
from ingest.graphql.scalars import JSON, IdOrKey, InputDatetime
from ingest.graphql.types import CompletionSource, MetricKind, MetricScoringType, SortDirection
from store.readback import (
    INTERACTION,
    Condition,
    completion_condition,
    label_condition,
    metric_condition,
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


def _label(condition: LabelCondition, project_id: int | None) -> Condition:
    if condition.value is None:
        return label_condition(condition.key, project_id=project_id)
    return _string_condition(
        condition.value,
        lambda values: label_condition(condition.key, values, project_id=project_id),
        "label",
    )


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
        bounds = expression.scores.value or FloatNumericCondition()
        condition = metric_condition(
            expression.scores.metric,
            gt=bounds.gt, gte=bounds.gte, lt=bounds.lt, lte=bounds.lte, eq=bounds.eq,
        )  # fmt: skip
        if bounds.neq is not None:
            condition = and_(
                condition, not_(metric_condition(expression.scores.metric, eq=bounds.neq))
            )
        parts.append(condition)
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
        conditions.append(label_condition(label.key, label.value, project_id=project_id))
    for score in filter.scores or ():
        conditions.append(
            metric_condition(
                score.metric, gt=score.gt, gte=score.gte, lt=score.lt, lte=score.lte, eq=score.eq
            )
        )
    if filter.completion_id is not None:
        conditions.append(completion_condition([filter.completion_id]))
    if filter.source:
        conditions.append(source_condition([s.value for s in filter.source]))
    if filter.advanced_filter is not None:
        conditions.append(expression_condition(filter.advanced_filter, project_id))
    return conditions


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
