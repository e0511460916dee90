"""A/B tests: a project's traffic shared between models by weight (minimal; issue 8 extends it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.catalog import load_project
from store.db import session_scope
from store.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from store.models import AbTest, AbTestMode, AbTestStatus, Metric, Model, Project, ProjectModel


def _checked_variants(
    session: Session, project: Project, variants: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Variants as stored: each names a model attached to the project, with a positive weight."""
    if len(variants) < 2:
        raise InvalidInputError("an A/B test needs at least two variants")
    attached = set(
        session.exec(
            select(Model.key)
            .join(ProjectModel, col(ProjectModel.model_id) == col(Model.id))
            .where(ProjectModel.project_id == project.id)
        ).all()
    )
    checked: list[dict[str, Any]] = []
    for variant in variants:
        model_key = variant.get("model")
        weight = variant.get("weight", 1.0)
        if not isinstance(model_key, str) or model_key not in attached:
            raise InvalidInputError(
                f"variant model {model_key!r} is not attached to project {project.key}: "
                f"run `interlog models attach {project.key} {model_key}`"
            )
        if not isinstance(weight, int | float) or weight <= 0:
            raise InvalidInputError(f"variant {model_key}: weight must be a positive number")
        checked.append({"model": model_key, "weight": float(weight)})
    if len({variant["model"] for variant in checked}) != len(checked):
        raise InvalidInputError("each variant must name a different model")
    return checked


def create_ab_test(
    engine: Engine,
    *,
    project_key: str,
    key: str,
    variants: list[dict[str, Any]],
    metric_key: str | None = None,
    mode: str = AbTestMode.METRIC.value,
    auto_deploy: bool = False,
) -> AbTest:
    """Start an A/B test; a project has at most one active test, which routing then follows."""
    if mode not in {m.value for m in AbTestMode}:
        raise InvalidInputError(f"unknown A/B test mode {mode!r}")
    try:
        with session_scope(engine) as session:
            project = load_project(session, project_key)
            if _active(session, project.id) is not None:
                raise InvalidInputError(
                    f"project {project_key} already has an active A/B test; end it first"
                )
            metric_id = None
            if metric_key is not None:
                metric = session.exec(
                    select(Metric).where(Metric.project_id == project.id, Metric.key == metric_key)
                ).first()
                if metric is None:
                    raise NotFoundError("metric", metric_key)
                metric_id = metric.id
            assert project.id is not None
            test = AbTest(
                project_id=project.id,
                key=key,
                metric_id=metric_id,
                mode=mode,
                variants=_checked_variants(session, project, variants),
                auto_deploy=auto_deploy,
            )
            session.add(test)
            session.flush()
            return test
    except IntegrityError as exc:
        raise AlreadyExistsError("A/B test", f"{key} in project {project_key}") from exc


def _active(session: Session, project_id: int | None) -> AbTest | None:
    return session.exec(
        select(AbTest)
        .where(AbTest.project_id == project_id, AbTest.status == AbTestStatus.ACTIVE.value)
        .order_by(col(AbTest.id).desc())
    ).first()


def active_ab_test(engine: Engine, *, project_id: int | None) -> AbTest | None:
    """The project's active A/B test, if any (the newest one, should there be several)."""
    with Session(engine) as session:
        return _active(session, project_id)
