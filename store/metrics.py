"""Metric definitions: per project, a key, a kind (scalar or bool) and which direction is better.

A metric must be registered before values are logged against it, so a typo in a metric key is
refused instead of silently creating a new series.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from store.db import session_scope
from store.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from store.models import Comparison, Metric, MetricKind, MetricValue, Project, ScoringType

METRIC_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def register_hint(project_key: str | None, metric_key: str) -> str:
    """How to register a metric, for messages that refuse an unknown one."""
    project = project_key or "PROJECT"
    return f"Register it with `interlog metrics create {project} {metric_key} --kind scalar|bool`."


def parse_kind(kind: str) -> MetricKind:
    """'scalar' or 'bool' in any case (GraphQL sends SCALAR / BOOL)."""
    try:
        return MetricKind(kind.lower())
    except ValueError:
        raise InvalidInputError(f"invalid metric kind {kind!r}: use 'scalar' or 'bool'") from None


def parse_scoring(scoring: str) -> ScoringType:
    """'higher_is_better' or 'lower_is_better' in any case."""
    try:
        return ScoringType(scoring.lower())
    except ValueError:
        raise InvalidInputError(
            f"invalid scoring type {scoring!r}: use 'higher_is_better' or 'lower_is_better'"
        ) from None


def find_project(engine: Engine, *, id_or_key: str | int) -> Project:
    """A project by numeric id or key (GraphQL's IdOrKey)."""
    with Session(engine) as session:
        project = session.exec(sm_select(Project).where(Project.key == str(id_or_key))).first()
        if project is None and str(id_or_key).isdigit():
            project = session.get(Project, int(id_or_key))
        if project is None:
            raise NotFoundError(
                "project", id_or_key, "Create it with `interlog projects create KEY`."
            )
        return project


def project_by_id(engine: Engine, *, project_id: int) -> Project | None:
    with Session(engine) as session:
        return session.get(Project, project_id)


def create_metric(
    engine: Engine,
    *,
    project_key: str,
    key: str,
    kind: str = MetricKind.SCALAR.value,
    scoring: str = ScoringType.HIGHER_IS_BETTER.value,
    name: str | None = None,
    description: str | None = None,
) -> Metric:
    """Register a metric in a project; values can be logged against it from then on."""
    if not METRIC_KEY_PATTERN.match(key or ""):
        raise InvalidInputError(
            f"invalid metric key {key!r}: use 1-128 letters, digits, '_', '.', ':' or '-'"
        )
    metric_kind = parse_kind(kind)
    scoring_type = parse_scoring(scoring)
    project = find_project(engine, id_or_key=project_key)
    assert project.id is not None
    try:
        with session_scope(engine) as session:
            metric = Metric(
                project_id=project.id,
                key=key,
                name=name or key,
                kind=metric_kind.value,
                scoring=scoring_type.value,
                description=description,
            )
            session.add(metric)
            session.flush()
            return metric
    except IntegrityError as exc:
        raise AlreadyExistsError("metric", f"{key} in project {project.key}") from exc


def list_metrics(engine: Engine, *, project_id: int | None = None) -> list[Metric]:
    """Metrics of one project (or of every project when project_id is None), by key."""
    with Session(engine) as session:
        statement = sm_select(Metric).order_by(col(Metric.project_id), col(Metric.key))
        if project_id is not None:
            statement = statement.where(Metric.project_id == project_id)
        return list(session.exec(statement).all())


def lookup_metric(
    connection: Connection | Session, *, project_id: int, id_or_key: str | int
) -> Metric | None:
    """A project's metric by key (or numeric id), or None."""
    statement = sm_select(Metric).where(
        Metric.project_id == project_id, Metric.key == str(id_or_key)
    )
    if isinstance(connection, Session):
        metric = connection.exec(statement).first()
        if metric is None and str(id_or_key).isdigit():
            found = connection.get(Metric, int(id_or_key))
            metric = found if found is not None and found.project_id == project_id else None
        return metric
    with Session(connection) as session:
        return lookup_metric(session, project_id=project_id, id_or_key=id_or_key)


def lookup_metric_in(engine: Engine, *, project_id: int, id_or_key: str | int) -> Metric | None:
    """A project's metric by key or id, or None."""
    with Session(engine) as session:
        return lookup_metric(session, project_id=project_id, id_or_key=id_or_key)


def get_metric(engine: Engine, *, project_id: int, id_or_key: str | int) -> Metric:
    """A project's metric by key or id; NotFoundError says how to register it."""
    with Session(engine) as session:
        metric = lookup_metric(session, project_id=project_id, id_or_key=id_or_key)
        if metric is None:
            project = session.get(Project, project_id)
            hint = register_hint(project.key if project else None, str(id_or_key))
            raise NotFoundError("metric", id_or_key, hint)
        return metric


def metric_usage(engine: Engine, *, metric_ids: Iterable[int]) -> dict[int, tuple[bool, bool]]:
    """For each metric id: (has direct scores, has comparison scores)."""
    ids = list(metric_ids)
    if not ids:
        return {}
    with engine.connect() as connection:
        direct = set(
            connection.execute(
                select(col(MetricValue.metric_id))
                .where(col(MetricValue.metric_id).in_(ids))
                .group_by(col(MetricValue.metric_id))
            ).scalars()
        )
        compared = set(
            connection.execute(
                select(col(Comparison.metric_id))
                .where(col(Comparison.metric_id).in_(ids))
                .group_by(col(Comparison.metric_id))
            ).scalars()
        )
    return {metric_id: (metric_id in direct, metric_id in compared) for metric_id in ids}
