"""Listing A/B tests for people: each test of the visible projects with its variants and status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from store.models import AbTest, Metric, Project


@dataclass(frozen=True)
class AbTestInfo:
    """An A/B test as listed: its project, metric, variants (model and weight) and status."""

    id: int
    key: str
    project_key: str
    mode: str
    status: str
    metric_key: str | None
    variants: list[dict[str, Any]] = field(default_factory=list)
    winner: str | None = None
    end_reason: str | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None

    def traffic_shares(self) -> dict[str, float]:
        """Each variant's configured share of traffic (weights normalised to sum to 1)."""
        weights = {str(v.get("model")): float(v.get("weight", 1.0) or 0.0) for v in self.variants}
        total = sum(weights.values())
        return {name: (w / total if total else 0.0) for name, w in weights.items()}


def list_ab_tests(engine: Engine, *, project_ids: Sequence[int] | None) -> list[AbTestInfo]:
    """A/B tests of the given projects (every project when None), newest first."""
    statement = (
        select(AbTest, col(Project.key), col(Metric.key))
        .join(Project, col(Project.id) == col(AbTest.project_id))
        .outerjoin(Metric, col(Metric.id) == col(AbTest.metric_id))
        .order_by(col(AbTest.created_at).desc(), col(AbTest.id).desc())
    )
    if project_ids is not None:
        statement = statement.where(col(AbTest.project_id).in_(list(project_ids)))
    with Session(engine) as session:
        rows = session.execute(statement).all()
    return [
        AbTestInfo(
            id=int(test.id),
            key=test.key,
            project_key=project_key,
            mode=test.mode,
            status=test.status,
            metric_key=metric_key,
            variants=list(test.variants or []),
            winner=test.winner,
            end_reason=test.end_reason,
            created_at=test.created_at,
            ended_at=test.ended_at,
        )
        for test, project_key, metric_key in rows
    ]
