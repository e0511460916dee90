"""Feedback: metric values and preferences (comparisons) attached to logged completions.

Public API (used by the REST and GraphQL surfaces and by external interaction logging):
  check_metric_values    resolve metrics and check kinds without writing (validate early)
  add_metric_values      write values all-or-nothing, on an Engine or inside a Connection
  add_metric_value       one value; returns its feedback id
  add_metric_values_bulk many values with a result per item (one bad item fails only itself)
  add_comparison         a preference between two logged completions
  add_text_comparison    a preference between two texts: stored as OFFLINE interactions first
  missing_completions    which completion ids are not (yet) visible in a project
  completion_projects    the project of each stored completion (admin keys act on any project)

A client-supplied `id` makes a submission idempotent: a UUID is used as is, any other string is
mapped to a UUIDv5 within the project, and resubmitting the same value returns the same id.

Every value is checked by `coerce_value` (all the functions above, and store.logged_interactions,
go through it): a scalar value must be finite and within +-METRIC_VALUE_LIMIT, so that sums,
means and variances of stored values never overflow a float.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from store.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    StoreError,
    ValueOutOfRangeError,
)
from store.ids import uuid7
from store.interactions import insert_interactions
from store.metrics import lookup_metric, register_hint
from store.models import (
    Comparison,
    Interaction,
    InteractionSource,
    Metric,
    MetricKind,
    MetricValue,
    Model,
    Project,
)
from store.types import utcnow

METRIC_VALUE_TABLE: Table = MetricValue.__table__  # type: ignore[attr-defined]
COMPARISON_TABLE: Table = Comparison.__table__  # type: ignore[attr-defined]
TIES = ("good", "bad")
#: The largest magnitude of a scalar metric value (README, "Metrics and feedback"). Far beyond any
#: score, latency or cost, yet a sum of squares of a billion such values still fits a float.
METRIC_VALUE_LIMIT = 1e12
_FEEDBACK_NAMESPACE = uuid.UUID("6f1d3c1e-7b1a-4e55-9a0e-1e7e4b9c0f10")


class MetricValueInput(TypedDict):
    """One metric value as callers submit it (REST body item, SDK feedbacks entry)."""

    metric: str
    value: Any
    completion_id: NotRequired[str | uuid.UUID]
    details: NotRequired[str | None]
    reason: NotRequired[str | None]
    user_id: NotRequired[str | None]
    id: NotRequired[str | uuid.UUID | None]


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item of a bulk submission."""

    index: int
    feedback_id: uuid.UUID | None = None
    error: StoreError | None = None


@dataclass(frozen=True)
class TextCompletion:
    """A completion given as text and the key of the model that wrote it."""

    text: str
    model: str


@dataclass(frozen=True)
class ComparisonResult:
    comparison_id: uuid.UUID
    preferred_completion_id: uuid.UUID
    other_completion_id: uuid.UUID


def _shown(value: Any) -> str:
    """VALUE for an error message (a 400-digit integer is cut short)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def coerce_value(metric: Metric, value: Any) -> float:
    """The value as stored; bool metrics take true/false/0/1, scalar ones a finite number
    within +-METRIC_VALUE_LIMIT (ValueOutOfRangeError otherwise, whatever the kind)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueOutOfRangeError(f"metric {metric.key}: value must be finite, not {value!r}")
    if metric.kind == MetricKind.BOOL.value:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, int | float) and value in (0, 1):
            return float(value)
        raise InvalidInputError(
            f"metric {metric.key} is a bool metric: its value must be true, false, 0 or 1, "
            f"not {_shown(value)}"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(
            f"metric {metric.key} is a scalar metric: its value must be a number, "
            f"not {_shown(value)}"
        )
    # Compared before float(): an int too large for a float is refused here, not by OverflowError.
    if not -METRIC_VALUE_LIMIT <= value <= METRIC_VALUE_LIMIT:
        raise ValueOutOfRangeError(
            f"metric {metric.key}: value {_shown(value)} is out of range: scalar metric values "
            f"must be between {-METRIC_VALUE_LIMIT:g} and {METRIC_VALUE_LIMIT:g}"
        )
    return float(value)


def parse_completion_id(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFoundError("completion", value, "Completion ids are UUIDs.") from None


def feedback_uuid(*, project_id: int, client_id: str | uuid.UUID | None) -> uuid.UUID:
    """The feedback id: the client's UUID, a UUIDv5 of the client's string, or a new UUIDv7."""
    if client_id is None or client_id == "":
        return uuid7()
    if isinstance(client_id, uuid.UUID):
        return client_id
    try:
        return uuid.UUID(client_id)
    except ValueError:
        if len(client_id) > 256:
            raise InvalidInputError("feedback id must be at most 256 characters") from None
        return uuid.uuid5(_FEEDBACK_NAMESPACE, f"{project_id}:{client_id}")


def _project_key(connection: Connection, project_id: int) -> str | None:
    statement = select(col(Project.key)).where(col(Project.id) == project_id)
    return connection.execute(statement).scalar()


def _resolve_metric(connection: Connection, *, project_id: int, key: str) -> Metric:
    metric = lookup_metric(connection, project_id=project_id, id_or_key=key)
    if metric is None:
        hint = register_hint(_project_key(connection, project_id), key)
        raise NotFoundError("metric", key, hint)
    return metric


def _prepare(
    connection: Connection,
    *,
    project_id: int,
    item: Mapping[str, Any],
    metrics: dict[str, Metric],
    completion_id: Any = None,
) -> dict[str, Any]:
    key = str(item.get("metric") or "")
    if not key:
        raise InvalidInputError("a metric value needs `metric` (the metric key)")
    if key not in metrics:
        metrics[key] = _resolve_metric(connection, project_id=project_id, key=key)
    metric = metrics[key]
    if "value" not in item:
        raise InvalidInputError(f"metric {key}: `value` is missing")
    reason = item.get("reason")
    if reason is not None and len(str(reason)) > 64:
        raise InvalidInputError("reason must be at most 64 characters")
    target = completion_id if completion_id is not None else item.get("completion_id")
    if target is None:
        raise InvalidInputError("a metric value needs `completion_id`")
    user_id = item.get("user_id")
    return {
        "id": feedback_uuid(project_id=project_id, client_id=item.get("id")),
        "completion_id": parse_completion_id(target),
        "metric_id": metric.id,
        "value": coerce_value(metric, item["value"]),
        "details": item.get("details"),
        "reason": str(reason) if reason is not None else None,
        "user_id": str(user_id) if user_id is not None else None,
        "created_at": utcnow(),
    }


def _completion_projects(connection: Connection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    unique = list(set(ids))
    found: dict[uuid.UUID, int] = {}
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        statement = select(col(Interaction.completion_id), col(Interaction.project_id)).where(
            col(Interaction.completion_id).in_(chunk)
        )
        found.update({row[0]: row[1] for row in connection.execute(statement)})
    return found


def _require_completions(
    connection: Connection, *, project_id: int, ids: Sequence[uuid.UUID]
) -> None:
    projects = _completion_projects(connection, ids)
    for completion_id in ids:
        if projects.get(completion_id) != project_id:
            raise NotFoundError("completion", completion_id)


def _insert_ignoring_conflicts(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(table).on_conflict_do_nothing(), list(rows))


def _conflicts(connection: Connection, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Ids whose stored row differs from the submitted one (an id reused for other content)."""
    by_id = {row["id"]: row for row in rows}
    statement = select(
        col(MetricValue.id),
        col(MetricValue.completion_id),
        col(MetricValue.metric_id),
        col(MetricValue.value),
    ).where(col(MetricValue.id).in_(list(by_id)))
    conflicting = set()
    for stored_id, completion_id, metric_id, value in connection.execute(statement):
        row = by_id[stored_id]
        if (completion_id, metric_id, value) != (
            row["completion_id"],
            row["metric_id"],
            row["value"],
        ):
            conflicting.add(stored_id)
    return conflicting


def check_metric_values(
    connection: Engine | Connection, *, project_id: int, values: Sequence[Mapping[str, Any]]
) -> None:
    """Raise if any value names an unknown metric or has the wrong kind; writes nothing.

    Completion ids are not checked (the completion may not be written yet): `completion_id`
    may be omitted from each item.
    """
    if isinstance(connection, Engine):
        with connection.connect() as conn:
            return check_metric_values(conn, project_id=project_id, values=values)
    metrics: dict[str, Metric] = {}
    placeholder = uuid.UUID(int=0)
    for item in values:
        target = item.get("completion_id") or placeholder
        _prepare(
            connection, project_id=project_id, item=item, metrics=metrics, completion_id=target
        )
    return None


def add_metric_values(
    connection: Engine | Connection,
    *,
    project_id: int,
    values: Sequence[Mapping[str, Any]],
    completion_id: str | uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Store values all-or-nothing and return their feedback ids, in order.

    With a Connection, the writes join the caller's transaction (so an interaction inserted
    earlier in it is visible). `completion_id` applies to items that carry none.
    """
    if isinstance(connection, Engine):
        with connection.begin() as conn:
            return add_metric_values(
                conn, project_id=project_id, values=values, completion_id=completion_id
            )
    metrics: dict[str, Metric] = {}
    rows = [
        _prepare(
            connection,
            project_id=project_id,
            item=item,
            metrics=metrics,
            completion_id=item.get("completion_id") or completion_id,
        )
        for item in values
    ]
    _require_completions(connection, project_id=project_id, ids=[r["completion_id"] for r in rows])
    _insert_ignoring_conflicts(connection, METRIC_VALUE_TABLE, rows)
    conflicting = _conflicts(connection, rows)
    if conflicting:
        raise AlreadyExistsError(
            "feedback", f"{sorted(map(str, conflicting))[0]} (different value)"
        )
    return [row["id"] for row in rows]


def add_metric_value(
    engine: Engine,
    *,
    project_id: int,
    completion_id: str | uuid.UUID,
    metric: str,
    value: Any,
    details: str | None = None,
    reason: str | None = None,
    user_id: str | None = None,
    feedback_id: str | uuid.UUID | None = None,
) -> uuid.UUID:
    """Store one metric value for a completion of the project; returns the feedback id."""
    item: MetricValueInput = {
        "metric": metric,
        "value": value,
        "completion_id": completion_id,
        "details": details,
        "reason": reason,
        "user_id": user_id,
        "id": feedback_id,
    }
    return add_metric_values(engine, project_id=project_id, values=[item])[0]


def add_metric_values_bulk(
    engine: Engine, *, project_id: int, values: Sequence[Mapping[str, Any]]
) -> list[ItemResult]:
    """Store many values; each item succeeds or fails on its own, with its own result."""
    results: dict[int, ItemResult] = {}
    prepared: dict[int, dict[str, Any]] = {}
    with engine.begin() as connection:
        metrics: dict[str, Metric] = {}
        for index, item in enumerate(values):
            try:
                prepared[index] = _prepare(
                    connection, project_id=project_id, item=item, metrics=metrics
                )
            except StoreError as exc:
                results[index] = ItemResult(index, error=exc)
        projects = _completion_projects(connection, [r["completion_id"] for r in prepared.values()])
        for index, row in list(prepared.items()):
            if projects.get(row["completion_id"]) != project_id:
                results[index] = ItemResult(
                    index, error=NotFoundError("completion", row["completion_id"])
                )
                del prepared[index]
        rows = list(prepared.values())
        _insert_ignoring_conflicts(connection, METRIC_VALUE_TABLE, rows)
        conflicting = _conflicts(connection, rows) if rows else set()
        for index, row in prepared.items():
            if row["id"] in conflicting:
                error = AlreadyExistsError("feedback", f"{row['id']} (different value)")
                results[index] = ItemResult(index, error=error)
            else:
                results[index] = ItemResult(index, feedback_id=row["id"])
    return [results[index] for index in range(len(values))]


def completion_projects(
    engine: Engine, *, completion_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The project id of each stored completion among `completion_ids` (absent ids are left out)."""
    with engine.connect() as connection:
        return _completion_projects(connection, completion_ids)


def missing_completions(
    engine: Engine, *, project_id: int, completion_ids: Iterable[str | uuid.UUID]
) -> list[uuid.UUID]:
    """The ids that are not completions of this project (unknown, or another project's)."""
    ids = []
    for value in completion_ids:
        try:
            ids.append(parse_completion_id(value))
        except NotFoundError:
            continue
    with engine.connect() as connection:
        projects = _completion_projects(connection, ids)
    return [i for i in ids if projects.get(i) != project_id]


def _check_tie(tie: str | None) -> str | None:
    if tie is None:
        return None
    if tie not in TIES:
        raise InvalidInputError(f"invalid tie {tie!r}: use 'good' or 'bad' (or omit it)")
    return tie


def _insert_comparison(
    connection: Connection,
    *,
    project_id: int,
    metric: str,
    preferred: uuid.UUID,
    other: uuid.UUID,
    tie: str | None,
    user_id: str | None,
) -> uuid.UUID:
    if preferred == other:
        raise InvalidInputError("a comparison needs two different completions")
    resolved = _resolve_metric(connection, project_id=project_id, key=metric)
    _require_completions(connection, project_id=project_id, ids=[preferred, other])
    comparison_id = uuid7()
    connection.execute(
        COMPARISON_TABLE.insert().values(
            id=comparison_id,
            project_id=project_id,
            metric_id=resolved.id,
            preferred_completion_id=preferred,
            other_completion_id=other,
            tie=tie,
            user_id=user_id,
            created_at=utcnow(),
        )
    )
    return comparison_id


def add_comparison(
    engine: Engine,
    *,
    project_id: int,
    metric: str,
    preferred_completion_id: str | uuid.UUID,
    other_completion_id: str | uuid.UUID,
    tie: str | None = None,
    user_id: str | None = None,
) -> uuid.UUID:
    """Record that one logged completion is preferred over another (or a good/bad tie)."""
    tie = _check_tie(tie)
    preferred = parse_completion_id(preferred_completion_id)
    other = parse_completion_id(other_completion_id)
    with engine.begin() as connection:
        return _insert_comparison(
            connection,
            project_id=project_id,
            metric=metric,
            preferred=preferred,
            other=other,
            tie=tie,
            user_id=user_id,
        )


def _model_id(connection: Connection, key: str) -> int:
    model_id = connection.execute(select(col(Model.id)).where(col(Model.key) == key)).scalar()
    if model_id is None:
        raise NotFoundError(
            "model", key, "Register it with `interlog models add KEY --upstream URL`."
        )
    return int(model_id)


def add_text_comparison(
    engine: Engine,
    *,
    project_id: int,
    metric: str,
    messages: list[dict[str, Any]],
    preferred: TextCompletion,
    other: TextCompletion,
    tie: str | None = None,
    user_id: str | None = None,
) -> ComparisonResult:
    """Store both texts as OFFLINE interactions of one session, then compare them."""
    tie = _check_tie(tie)
    if not messages:
        raise InvalidInputError("a comparison of texts needs the `messages` they answer")
    now = utcnow()
    session_id = str(uuid7())
    with engine.begin() as connection:
        _resolve_metric(connection, project_id=project_id, key=metric)
        records: list[dict[str, Any]] = []
        for index, completion in enumerate((preferred, other)):
            records.append(
                {
                    "completion_id": str(uuid7()),
                    "project_id": project_id,
                    "session_id": session_id,
                    "created_at": now.isoformat(),
                    "choice_index": index,
                    "model_id": _model_id(connection, completion.model),
                    "user_id": user_id,
                    "messages": messages,
                    "completion": completion.text,
                    "finish_reason": "stop",
                    "source": InteractionSource.OFFLINE.value,
                }
            )
        insert_interactions(connection, records)
        ids = [uuid.UUID(record["completion_id"]) for record in records]
        comparison_id = _insert_comparison(
            connection,
            project_id=project_id,
            metric=metric,
            preferred=ids[0],
            other=ids[1],
            tie=tie,
            user_id=user_id,
        )
    return ComparisonResult(comparison_id, ids[0], ids[1])
