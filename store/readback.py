"""Reading interactions back with their labels, metric values and comparisons.

Filters are SQLAlchemy conditions built by the `*_condition` functions below, so REST query
parameters and GraphQL's and/or/not filter trees compose the same building blocks;
`filter_conditions` compiles the shared filter grammar (store.filters) from them, and
`check_metric_keys` / `label_key_warnings` check its names against the store. Pages use a
keyset cursor on (created_at, completion_id): stable under concurrent inserts, newest first by
default. Every read runs under a ReadGuard (store.read_guard): a statement timeout, and
cancellation when the client goes away. Over 400 lines: the conditions and the reads that use
them are one concept, and splitting them would only move imports around.
"""

from __future__ import annotations

import base64
import math
import operator
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    ScalarSelect,
    Table,
    and_,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)

from store.errors import InvalidInputError, NotFoundError
from store.filters import (
    Filters,
    LabelFilter,
    MetricFilter,
    check_condition_counts,
    missing_label_key_warning,
    parse_time,
)
from store.models import (
    AbTest,
    Comparison,
    Interaction,
    InteractionLabel,
    Metric,
    MetricValue,
    Model,
    Project,
)
from store.read_guard import ReadGuard, read_connection

INTERACTION: Table = Interaction.__table__  # type: ignore[attr-defined]
LABEL: Table = InteractionLabel.__table__  # type: ignore[attr-defined]
METRIC: Table = Metric.__table__  # type: ignore[attr-defined]
METRIC_VALUE: Table = MetricValue.__table__  # type: ignore[attr-defined]
COMPARISON: Table = Comparison.__table__  # type: ignore[attr-defined]
MODEL: Table = Model.__table__  # type: ignore[attr-defined]
PROJECT: Table = Project.__table__  # type: ignore[attr-defined]
AB_TEST: Table = AbTest.__table__  # type: ignore[attr-defined]
MAX_PAGE = 500
#: Most metric names an unknown-metric error lists.
_LISTED_METRICS = 50

Condition = ColumnElement[bool]


@dataclass(frozen=True)
class MetricInfo:
    id: int
    key: str
    name: str
    kind: str
    scoring: str
    description: str | None
    created_at: datetime


@dataclass(frozen=True)
class ScoreView:
    """One metric value of an interaction."""

    id: uuid.UUID
    metric: MetricInfo
    value: float
    details: str | None
    reason: str | None
    user_id: str | None
    created_at: datetime

    @property
    def metric_key(self) -> str:
        return self.metric.key


@dataclass(frozen=True)
class ComparisonView:
    """A preference that involves an interaction."""

    id: uuid.UUID
    project_id: int
    metric: MetricInfo
    preferred_completion_id: uuid.UUID
    other_completion_id: uuid.UUID
    tie: str | None
    user_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class InteractionView:
    """An interaction with its model, labels, scores and comparisons."""

    completion_id: uuid.UUID
    project_id: int
    session_id: uuid.UUID
    created_at: datetime
    model_id: int | None
    model_key: str | None
    model_name: str | None
    user_id: str | None
    labels: dict[str, str]
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    completion: str | None
    tool_calls: list[dict[str, Any]] | None  # OpenAI's message.tool_calls of the answer
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: float | None
    latency_ms: float | None
    status: str
    error: str | None
    source: str
    request_id: str | None
    choice_index: int
    ab_test_id: int | None
    ab_variant: str | None
    replica: str | None
    scores: list[ScoreView] = field(default_factory=list)
    comparisons: list[ComparisonView] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    items: list[InteractionView]
    next_cursor: str | None
    total_count: int
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MetricStats:
    metric: MetricInfo
    count: int
    average: float | None
    minimum: float | None
    maximum: float | None
    stddev: float | None
    total: float | None


@dataclass(frozen=True)
class Group:
    """Interactions of one model (key None: no model) with per-metric statistics."""

    key: str | None
    model_id: int | None
    count: int
    stats: list[MetricStats]


# Conditions ---------------------------------------------------------------------------------


def model_condition(keys: Sequence[str]) -> Condition:
    """Interactions of any of these models (by key, or numeric id)."""
    ids = [int(k) for k in keys if str(k).isdigit()]
    by_key = select(MODEL.c.id).where(MODEL.c.key.in_(list(keys)))
    return or_(INTERACTION.c.model_id.in_(by_key), INTERACTION.c.model_id.in_(ids))


def label_condition(
    key: str, values: Sequence[str] | None = None, *, project_id: int | None = None
) -> Condition:
    """A label with this key (with one of `values` when given) is on the interaction.

    With `project_id`, the labels are looked up first through the (project, key, value) index,
    which is much faster on SQLite than probing every interaction of the project.
    """
    if project_id is None:
        where = [LABEL.c.completion_id == INTERACTION.c.completion_id, LABEL.c.key == key]
        if values is not None:
            where.append(LABEL.c.value.in_(list(values)))
        return exists().where(*where)
    matching = select(LABEL.c.completion_id).where(
        LABEL.c.project_id == project_id, LABEL.c.key == key
    )
    if values is not None:
        matching = matching.where(LABEL.c.value.in_(list(values)))
    return INTERACTION.c.completion_id.in_(matching)


def time_condition(start: datetime | None = None, end: datetime | None = None) -> Condition:
    """Created at or after `start` and before `end`."""
    parts = []
    if start is not None:
        parts.append(INTERACTION.c.created_at >= start)
    if end is not None:
        parts.append(INTERACTION.c.created_at < end)
    return and_(*parts) if parts else and_(True)


def session_condition(session_id: uuid.UUID | str) -> Condition:
    return INTERACTION.c.session_id == _uuid(session_id, "session_id")


def user_condition(user_id: str) -> Condition:
    return INTERACTION.c.user_id == str(user_id)


def completion_condition(completion_ids: Sequence[uuid.UUID | str]) -> Condition:
    return INTERACTION.c.completion_id.in_([_uuid(i, "completion_id") for i in completion_ids])


def status_condition(statuses: Sequence[str]) -> Condition:
    return INTERACTION.c.status.in_(list(statuses))


def source_condition(sources: Sequence[str]) -> Condition:
    return INTERACTION.c.source.in_([s.upper() for s in sources])


def metric_condition(
    key: str,
    *,
    gt: float | None = None,
    gte: float | None = None,
    lt: float | None = None,
    lte: float | None = None,
    eq: float | None = None,
) -> Condition:
    """The interaction has a value of metric `key` within the range (any value if no bound)."""
    metric_value, metric = METRIC_VALUE.alias("mv"), METRIC.alias("m")  # also inside a join
    value = metric_value.c.value
    where = [
        metric_value.c.completion_id == INTERACTION.c.completion_id,
        metric.c.id == metric_value.c.metric_id,
        metric.c.key == key,
    ]
    if gt is not None:
        where.append(value > gt)
    if gte is not None:
        where.append(value >= gte)
    if lt is not None:
        where.append(value < lt)
    if lte is not None:
        where.append(value <= lte)
    if eq is not None:
        where.append(value == eq)
    return exists().where(*where).correlate(INTERACTION)


def _uuid(value: uuid.UUID | str, name: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInputError(f"{name} must be a UUID, not {value!r}") from None


# The shared filter grammar (store.filters) ----------------------------------------------------

_COMPARE: dict[str, Callable[[Any, float], Condition]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "!=": operator.ne,
}


def label_filter_condition(label: LabelFilter, *, project_id: int | None = None) -> Condition:
    """One label condition of the grammar; `k!=v` is also true when the interaction has no `k`."""
    if label.op == "exists":
        return label_condition(label.key, project_id=project_id)
    if label.op == "!=":
        return not_(label_condition(label.key, label.values[:1], project_id=project_id))
    return label_condition(label.key, label.values, project_id=project_id)


def metric_mean(key: str) -> ScalarSelect[Any]:
    """The mean of the interaction's values of metric `key` (NULL when it has none)."""
    metric_value, metric = METRIC_VALUE.alias("mv"), METRIC.alias("m")
    return (
        select(func.avg(metric_value.c.value))
        .select_from(metric_value.join(metric, metric.c.id == metric_value.c.metric_id))
        .where(metric_value.c.completion_id == INTERACTION.c.completion_id, metric.c.key == key)
        .correlate(INTERACTION)
        .scalar_subquery()
    )


def metric_filter_condition(metric: MetricFilter) -> Condition:
    """A metric condition of the grammar: the mean of the interaction's values of the metric
    compared with the number (as in analytics); an interaction without values never matches."""
    return _COMPARE[metric.op](metric_mean(metric.key), metric.value)


def filter_conditions(filters: Filters, *, project_id: int | None = None) -> list[Condition]:
    """The shared filters as conditions over `interaction`, all to hold (AND).

    The caller still restricts the scope; `project_id` (the scope's project, if one) lets label
    conditions use the (project, key, value) index. Text search is analytics' (its copy holds
    the prompt as text): here it is refused rather than answered differently.
    """
    check_condition_counts(labels=len(filters.label_filters), metrics=len(filters.metric_filters))
    if filters.search:
        raise InvalidInputError("search is answered by analytics and exports, not by read-back")
    where: list[Condition] = []
    for column, table, key in (
        (INTERACTION.c.project_id, PROJECT, filters.project),
        (INTERACTION.c.model_id, MODEL, filters.model),
        (INTERACTION.c.ab_test_id, AB_TEST, filters.ab_test),
    ):
        if key is not None:
            where.append(column.in_(select(table.c.id).where(table.c.key == key)))
    if filters.variant is not None:
        where.append(INTERACTION.c.ab_variant == filters.variant)
    if filters.user is not None:
        where.append(user_condition(filters.user))
    if filters.status is not None:
        where.append(status_condition([filters.status]))
    if filters.session is not None:
        where.append(session_condition(filters.session))
    if filters.since is not None or filters.until is not None:
        where.append(time_condition(parse_time(filters.since), parse_time(filters.until)))
    where += [label_filter_condition(f, project_id=project_id) for f in filters.label_filters]
    where += [metric_filter_condition(f) for f in filters.metric_filters]
    return where


def _in_scope(column: Any, project_id: int | None, project_key: str | None) -> list[Condition]:
    where: list[Condition] = []
    if project_id is not None:
        where.append(column == project_id)
    if project_key is not None:
        where.append(column.in_(select(PROJECT.c.id).where(PROJECT.c.key == project_key)))
    return where


def check_metric_keys(connection: Connection, filters: Filters, project_id: int | None) -> None:
    """InvalidInputError naming the valid metrics when a metric condition of FILTERS names a
    metric that no project in scope has (PROJECT_ID, or every project when None; narrowed by
    `filters.project`)."""
    check_metric_names(
        connection,
        [metric.key for metric in filters.metric_filters],
        project_id=project_id,
        project_key=filters.project,
    )


def check_metric_names(
    connection: Connection,
    keys: Iterable[str],
    *,
    project_id: int | None,
    project_key: str | None = None,
) -> None:
    """InvalidInputError naming the valid metrics when one of KEYS is no metric in scope."""
    wanted = set(keys)
    if not wanted:
        return
    statement = select(METRIC.c.key).distinct()
    statement = statement.where(*_in_scope(METRIC.c.project_id, project_id, project_key))
    known = sorted(set(connection.scalars(statement)))
    unknown = sorted(wanted.difference(known))
    if not unknown:
        return
    if not known:
        valid = "no metric is registered in scope (`interlog metrics create` registers one)"
    else:
        valid = "valid metrics: " + ", ".join(known[:_LISTED_METRICS])
        if len(known) > _LISTED_METRICS:
            valid += f" and {len(known) - _LISTED_METRICS} more"
    raise InvalidInputError(f"unknown metric {', '.join(map(repr, unknown))}; {valid}")


def label_key_warnings(
    connection: Connection, filters: Filters, project_id: int | None
) -> list[str]:
    """A warning per label key of FILTERS that no interaction in scope has (PROJECT_ID, or every
    project when None; narrowed by `filters.project`), e.g. "no interaction has label key
    'project'; to filter by project use project=...". One EXISTS per key on the label index."""
    missing = missing_label_keys(
        connection,
        [label.key for label in filters.label_filters],
        project_id=project_id,
        project_key=filters.project,
    )
    return [missing_label_key_warning(key) for key in missing]


def missing_label_keys(
    connection: Connection,
    keys: Iterable[str],
    *,
    project_id: int | None,
    project_key: str | None = None,
) -> list[str]:
    """The KEYS that no interaction in scope has as a label, in order, without repeats.

    Each key is one EXISTS on the (project_id, key, value) index, all in one statement; without
    a project id, per project (a handful of rows), so the index still leads with project_id."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return []
    probes = []
    for index, key in enumerate(wanted):
        if project_id is not None:
            scope = _in_scope(LABEL.c.project_id, project_id, project_key)
            probe = exists().where(*scope, LABEL.c.key == key)
        else:
            project = PROJECT.alias(f"p{index}")
            has_key = exists().where(LABEL.c.project_id == project.c.id, LABEL.c.key == key)
            projects = select(literal(1)).select_from(project).where(has_key)
            if project_key is not None:
                projects = projects.where(project.c.key == project_key)
            probe = projects.exists()
        probes.append(probe.label(f"k{index}"))
    found = connection.execute(select(*probes)).one()
    return [key for key, present in zip(wanted, found, strict=True) if not present]


def check_filter_keys(
    engine: Engine,
    *,
    label_keys: Iterable[str],
    metric_keys: Iterable[str],
    project_id: int | None,
    guard: ReadGuard | None = None,
) -> list[str]:
    """For filters given as keys (GraphQL's trees): InvalidInputError for an unknown metric,
    and the warnings of the absent label keys."""
    with read_connection(engine, guard) as connection:
        check_metric_names(connection, metric_keys, project_id=project_id)
        missing = missing_label_keys(connection, label_keys, project_id=project_id)
    return [missing_label_key_warning(key) for key in missing]


def _matches_nothing(filters: Filters, missing: Sequence[str]) -> bool:
    """Whether a label condition needs a key that no interaction in scope has."""
    absent = set(missing)
    return any(f.key in absent and f.op != "!=" for f in filters.label_filters)


# Cursors ------------------------------------------------------------------------------------


def encode_cursor(created_at: datetime, completion_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{completion_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, completion_id = raw.split("|")
        return datetime.fromisoformat(created_at), uuid.UUID(completion_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(f"invalid cursor {cursor!r}: pass a cursor from a page") from None


def _after_cursor(cursor: str, *, ascending: bool) -> Condition:
    created_at, completion_id = decode_cursor(cursor)
    created, cid = INTERACTION.c.created_at, INTERACTION.c.completion_id
    if ascending:
        return or_(created > created_at, and_(created == created_at, cid > completion_id))
    return or_(created < created_at, and_(created == created_at, cid < completion_id))


# Reads --------------------------------------------------------------------------------------


def _scope(project_id: int | None, conditions: Sequence[Condition]) -> list[Condition]:
    where = list(conditions)
    if project_id is not None:
        where.append(INTERACTION.c.project_id == project_id)
    return where


def _metric_info(row: Any) -> MetricInfo:
    return MetricInfo(
        id=row.m_id,
        key=row.m_key,
        name=row.m_name,
        kind=row.m_kind,
        scoring=row.m_scoring,
        description=row.m_description,
        created_at=row.m_created_at,
    )


_METRIC_COLUMNS = (
    METRIC.c.id.label("m_id"),
    METRIC.c.key.label("m_key"),
    METRIC.c.name.label("m_name"),
    METRIC.c.kind.label("m_kind"),
    METRIC.c.scoring.label("m_scoring"),
    METRIC.c.description.label("m_description"),
    METRIC.c.created_at.label("m_created_at"),
)


def _views(connection: Connection, rows: Sequence[Any]) -> list[InteractionView]:
    ids = [row.completion_id for row in rows]
    scores: dict[uuid.UUID, list[ScoreView]] = {i: [] for i in ids}
    comparisons: dict[uuid.UUID, list[ComparisonView]] = {i: [] for i in ids}
    if ids:
        statement = (
            select(METRIC_VALUE, *_METRIC_COLUMNS)
            .join(METRIC, METRIC.c.id == METRIC_VALUE.c.metric_id)
            .where(METRIC_VALUE.c.completion_id.in_(ids))
            .order_by(METRIC_VALUE.c.created_at, METRIC_VALUE.c.id)
        )
        for row in connection.execute(statement):
            scores[row.completion_id].append(
                ScoreView(
                    id=row.id,
                    metric=_metric_info(row),
                    value=row.value,
                    details=row.details,
                    reason=row.reason,
                    user_id=row.user_id,
                    created_at=row.created_at,
                )
            )
        involved = or_(
            COMPARISON.c.preferred_completion_id.in_(ids), COMPARISON.c.other_completion_id.in_(ids)
        )
        statement = (
            select(COMPARISON, *_METRIC_COLUMNS)
            .join(METRIC, METRIC.c.id == COMPARISON.c.metric_id)
            .where(involved)
            .order_by(COMPARISON.c.created_at, COMPARISON.c.id)
        )
        for row in connection.execute(statement):
            view = ComparisonView(
                id=row.id,
                project_id=row.project_id,
                metric=_metric_info(row),
                preferred_completion_id=row.preferred_completion_id,
                other_completion_id=row.other_completion_id,
                tie=row.tie,
                user_id=row.user_id,
                created_at=row.created_at,
            )
            for completion_id in {row.preferred_completion_id, row.other_completion_id}:
                if completion_id in comparisons:
                    comparisons[completion_id].append(view)
    views = []
    for row in rows:
        values = {name: getattr(row, name) for name in _VIEW_FIELDS}
        views.append(
            InteractionView(
                **values,
                labels=dict(row.labels or {}),
                scores=scores[row.completion_id],
                comparisons=comparisons[row.completion_id],
            )
        )
    return views


_VIEW_FIELDS = [
    name
    for name in InteractionView.__dataclass_fields__
    if name not in ("labels", "scores", "comparisons")
]


def _interaction_select() -> Any:
    columns = [c for c in INTERACTION.c if c.name not in ("model_key", "model_name")]
    return select(
        *columns, MODEL.c.key.label("model_key"), MODEL.c.name.label("model_name")
    ).select_from(INTERACTION.outerjoin(MODEL, MODEL.c.id == INTERACTION.c.model_id))


def list_interactions(
    engine: Engine,
    *,
    project_id: int | None,
    conditions: Sequence[Condition] = (),
    filters: Filters | None = None,
    limit: int = 50,
    cursor: str | None = None,
    ascending: bool = False,
    guard: ReadGuard | None = None,
) -> Page:
    """A page of interactions matching every condition and FILTERS, newest first unless
    `ascending`. FILTERS' metric names must exist in scope (InvalidInputError otherwise); its
    label keys that no interaction in scope has come back as `warnings`."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}")
    where = _scope(project_id, conditions)
    if filters is not None:
        where += filter_conditions(filters, project_id=project_id)
    paged = [*where, _after_cursor(cursor, ascending=ascending)] if cursor else where
    created, cid = INTERACTION.c.created_at, INTERACTION.c.completion_id
    order = [created.asc(), cid.asc()] if ascending else [created.desc(), cid.desc()]
    statement = _interaction_select().where(*paged).order_by(*order).limit(limit + 1)
    warnings: list[str] = []
    with read_connection(engine, guard) as connection:
        if filters is not None:
            check_metric_keys(connection, filters, project_id)
            missing = missing_label_keys(
                connection,
                [label.key for label in filters.label_filters],
                project_id=project_id,
                project_key=filters.project,
            )
            warnings = [missing_label_key_warning(key) for key in missing]
            if _matches_nothing(filters, missing):
                return Page(items=[], next_cursor=None, total_count=0, warnings=warnings)
        rows = list(connection.execute(statement))
        total = connection.execute(
            select(func.count()).select_from(INTERACTION).where(*where)
        ).scalar_one()
        views = _views(connection, rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = views[-1]
        next_cursor = encode_cursor(last.created_at, last.completion_id)
    return Page(items=views, next_cursor=next_cursor, total_count=int(total), warnings=warnings)


def find_interaction(
    engine: Engine,
    *,
    completion_id: uuid.UUID | str,
    project_id: int | None,
    guard: ReadGuard | None = None,
) -> InteractionView | None:
    """One interaction of the project (any project when project_id is None), or None."""
    try:
        target = _uuid(completion_id, "completion_id")
    except InvalidInputError:
        return None
    where = _scope(project_id, [INTERACTION.c.completion_id == target])
    with read_connection(engine, guard) as connection:
        rows = list(connection.execute(_interaction_select().where(*where)))
        return _views(connection, rows)[0] if rows else None


def get_interaction(
    engine: Engine,
    *,
    completion_id: uuid.UUID | str,
    project_id: int | None,
    guard: ReadGuard | None = None,
) -> InteractionView:
    """One interaction; NotFoundError naming the completion id when it is not visible."""
    view = find_interaction(engine, completion_id=completion_id, project_id=project_id, guard=guard)
    if view is None:
        raise NotFoundError("completion", completion_id)
    return view


def group_by_model(
    engine: Engine,
    *,
    project_id: int | None,
    conditions: Sequence[Condition] = (),
    guard: ReadGuard | None = None,
) -> list[Group]:
    """Interaction counts and per-metric value statistics for each model, by model key."""
    where = _scope(project_id, conditions)
    counts = (
        select(INTERACTION.c.model_id, MODEL.c.key, func.count().label("n"))
        .select_from(INTERACTION.outerjoin(MODEL, MODEL.c.id == INTERACTION.c.model_id))
        .where(*where)
        .group_by(INTERACTION.c.model_id, MODEL.c.key)
    )
    value = METRIC_VALUE.c.value
    stats = (
        select(
            INTERACTION.c.model_id,
            *_METRIC_COLUMNS,
            func.count().label("n"),
            func.sum(value).label("total"),
            func.min(value).label("low"),
            func.max(value).label("high"),
            func.sum(value * value).label("squares"),
        )
        .select_from(
            INTERACTION.join(
                METRIC_VALUE, METRIC_VALUE.c.completion_id == INTERACTION.c.completion_id
            ).join(METRIC, METRIC.c.id == METRIC_VALUE.c.metric_id)
        )
        .where(*where)
        .group_by(INTERACTION.c.model_id, *_METRIC_COLUMNS)
        .order_by(METRIC.c.key)
    )
    with read_connection(engine, guard) as connection:
        count_rows = list(connection.execute(counts))
        stat_rows = list(connection.execute(stats))
    by_model: dict[int | None, list[MetricStats]] = {}
    for row in stat_rows:
        n, total, squares = int(row.n), float(row.total), float(row.squares)
        mean = total / n
        variance = max(squares / n - mean * mean, 0.0)
        by_model.setdefault(row.model_id, []).append(
            MetricStats(
                metric=_metric_info(row),
                count=n,
                average=mean,
                minimum=float(row.low),
                maximum=float(row.high),
                stddev=math.sqrt(variance),
                total=total,
            )
        )
    groups = [
        Group(
            key=row.key,
            model_id=row.model_id,
            count=int(row.n),
            stats=by_model.get(row.model_id, []),
        )
        for row in count_rows
    ]
    return sorted(groups, key=lambda g: (g.key is None, g.key or ""))


def model_id_condition(model_id: int | None) -> Condition:
    """Interactions of exactly this model (None: interactions without a model)."""
    column = INTERACTION.c.model_id
    return column.is_(None) if model_id is None else column == model_id
