"""Seed data for feedback and read-back tests: projects, models and logged interactions."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from store.catalog import attach_model, create_model, create_project
from store.ids import uuid7
from store.interactions import write_interactions
from store.metrics import create_metric
from store.models import Project
from store.types import utcnow


def seed_project(engine: Engine, key: str, *, models: tuple[str, ...] = ("m1",)) -> Project:
    """A project with attached models (models are created when missing) and two metrics."""
    from store.catalog import list_models

    project = create_project(engine, key=key)
    existing = {model.key for model in list_models(engine)}
    for model_key in models:
        if model_key not in existing:
            create_model(engine, key=model_key, upstream_urls=["http://127.0.0.1:9"])
        attach_model(engine, project_key=key, model_key=model_key)
    create_metric(engine, project_key=key, key="quality", kind="scalar")
    create_metric(engine, project_key=key, key="thumbs", kind="bool")
    return project


def log_interaction(
    engine: Engine,
    project: Project,
    *,
    model_id: int | None = None,
    labels: dict[str, str] | None = None,
    session_id: uuid.UUID | None = None,
    user_id: str | None = None,
    created_at: datetime | None = None,
    completion: str = "an answer",
    status: str = "ok",
    **extra: Any,
) -> uuid.UUID:
    """Write one interaction straight to the store and return its completion_id."""
    assert project.id is not None
    completion_id = uuid7()
    record: dict[str, Any] = {
        "completion_id": str(completion_id),
        "project_id": project.id,
        "session_id": str(session_id or uuid.uuid4()),
        "created_at": (created_at or utcnow()).isoformat(),
        "model_id": model_id,
        "labels": labels or {},
        "user_id": user_id,
        "messages": [{"role": "user", "content": "a question"}],
        "completion": completion,
        "status": status,
        "prompt_tokens": 3,
        "completion_tokens": 2,
        **extra,
    }
    write_interactions(engine, [record])
    return completion_id


def minutes_ago(minutes: float) -> datetime:
    return utcnow() - timedelta(minutes=minutes)
