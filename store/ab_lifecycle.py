"""An A/B test's life after creation: find it, list it, cancel it, end it (deploying the winner).

Ending is one conditional `UPDATE ... WHERE status = 'active'`, so when several gateway processes
decide to end the same test at once, exactly one wins and only that one deploys the winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.db import session_scope
from store.errors import InvalidInputError, NotFoundError
from store.models import AbTest, AbTestStatus, Metric, Model, Project, ProjectModel
from store.types import utcnow


@dataclass(frozen=True)
class AbTestDetails:
    """An A/B test with its project and metric keys."""

    id: int
    key: str
    project_id: int
    project: str
    mode: str
    status: str
    metric: str | None
    metric_id: int | None
    auto_deploy: bool
    variants: list[dict[str, Any]] = field(default_factory=list)
    winner: str | None = None
    end_reason: str | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def control(self) -> str | None:
        return str(self.variants[0]["model"]) if self.variants else None


def _statement() -> Any:
    return (
        sa_select(AbTest, col(Project.key), col(Metric.key))
        .join(Project, col(Project.id) == col(AbTest.project_id))
        .outerjoin(Metric, col(Metric.id) == col(AbTest.metric_id))
    )


def _details(test: AbTest, project_key: str, metric_key: str | None) -> AbTestDetails:
    assert test.id is not None
    return AbTestDetails(
        id=test.id,
        key=test.key,
        project_id=test.project_id,
        project=project_key,
        mode=test.mode,
        status=test.status,
        metric=metric_key,
        metric_id=test.metric_id,
        auto_deploy=bool(test.auto_deploy),
        variants=list(test.variants or []),
        winner=test.winner,
        end_reason=test.end_reason,
        created_at=test.created_at,
        ended_at=test.ended_at,
    )


def list_ab_test_details(
    engine: Engine,
    *,
    project_ids: Sequence[int] | None = None,
    project_key: str | None = None,
    status: str | None = None,
) -> list[AbTestDetails]:
    """A/B tests, newest first, of some projects (all when None), optionally of one status."""
    statement = _statement().order_by(col(AbTest.id).desc())
    if project_ids is not None:
        statement = statement.where(col(AbTest.project_id).in_(list(project_ids)))
    if project_key is not None:
        statement = statement.where(col(Project.key) == project_key)
    if status is not None:
        statement = statement.where(col(AbTest.status) == status)
    with Session(engine) as session:
        rows = session.execute(statement).all()
    return [_details(*row) for row in rows]


def get_ab_test(
    engine: Engine, *, key: str, project_key: str | None = None, project_id: int | None = None
) -> AbTestDetails:
    """One A/B test by key; name the project when the key exists in several projects."""
    statement = _statement().where(col(AbTest.key) == key)
    if project_key is not None:
        statement = statement.where(col(Project.key) == project_key)
    if project_id is not None:
        statement = statement.where(col(AbTest.project_id) == project_id)
    with Session(engine) as session:
        rows = session.execute(statement).all()
    if not rows:
        raise NotFoundError("A/B test", key)
    if len(rows) > 1:
        raise InvalidInputError(f"A/B test key {key} exists in several projects: name the project")
    return _details(*rows[0])


def end_ab_test(
    engine: Engine,
    *,
    test_id: int,
    status: str = AbTestStatus.DONE.value,
    winner: str | None = None,
    reason: str,
) -> bool:
    """End an active test; True if this call ended it (False: it had already ended).

    With auto-deploy and a winner, the winner becomes the project's default model in the same
    transaction, so the default changes exactly when the test ends.
    """
    if status not in (AbTestStatus.DONE.value, AbTestStatus.CANCELLED.value):
        raise InvalidInputError(f"an A/B test ends as done or cancelled, not {status!r}")
    with session_scope(engine) as session:
        ended = session.execute(
            update(AbTest)
            .where(col(AbTest.id) == test_id, col(AbTest.status) == AbTestStatus.ACTIVE.value)
            .values(status=status, winner=winner, end_reason=reason, ended_at=utcnow())
        )
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            return False
        test = session.get(AbTest, test_id)
        assert test is not None
        if test.auto_deploy and winner is not None and status == AbTestStatus.DONE.value:
            model = session.exec(
                select(Model)
                .join(ProjectModel, col(ProjectModel.model_id) == col(Model.id))
                .where(ProjectModel.project_id == test.project_id, Model.key == winner)
            ).first()
            project = session.get(Project, test.project_id)
            if model is not None and project is not None:
                project.default_model_id = model.id
                session.add(project)
        return True


def cancel_ab_test(
    engine: Engine, *, key: str, project_key: str | None = None, project_id: int | None = None
) -> AbTestDetails:
    """Cancel an active test (traffic goes back to the default model); 400 if it has ended."""
    test = get_ab_test(engine, key=key, project_key=project_key, project_id=project_id)
    if not end_ab_test(
        engine, test_id=test.id, status=AbTestStatus.CANCELLED.value, reason="cancelled"
    ):
        raise InvalidInputError(f"A/B test {key} has already ended ({test.status})")
    return get_ab_test(engine, key=key, project_id=test.project_id)
