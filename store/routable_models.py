"""What a client may send as a chat request's `model`, for GET /api/v1/models: each project (its
active A/B test or its default model answers) and each `project/model` it is attached to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from store.abtests import active_ab_test
from store.models import Model, Project, ProjectModel


@dataclass(frozen=True)
class RoutableModel:
    """One `model` value: a project (`model_key` None) or one of its models."""

    id: str  # "project" or "project/model"
    project_key: str
    model_key: str | None
    created_at: datetime
    multimodal: bool  # of the model; of the default model for a project
    default: bool  # a model: the project's default; a project: it has a default model
    default_model: str | None = None  # a project: "project/model" of its default
    ab_test: str | None = None  # a project: the key of the A/B test that routes its requests


def routable_models(engine: Engine, *, project_id: int | None = None) -> list[RoutableModel]:
    """Every project (only PROJECT_ID's when given) and its attached models, by id."""
    with Session(engine) as session:
        projects = select(Project).order_by(col(Project.key))
        attached = (
            select(ProjectModel.project_id, Model)
            .join(Model, col(Model.id) == col(ProjectModel.model_id))
            .order_by(col(Model.key))
        )
        if project_id is not None:
            projects = projects.where(Project.id == project_id)
            attached = attached.where(ProjectModel.project_id == project_id)
        project_rows = list(session.exec(projects).all())
        models: dict[int, list[Model]] = {}
        for owner, model in session.exec(attached).all():
            models.setdefault(owner, []).append(model)
    out: list[RoutableModel] = []
    for project in project_rows:
        assert project.id is not None
        own = models.get(project.id, [])
        default = next((m for m in own if m.id == project.default_model_id), None)
        test = active_ab_test(engine, project_id=project.id)
        out.append(
            RoutableModel(
                id=project.key,
                project_key=project.key,
                model_key=None,
                created_at=project.created_at,
                multimodal=default is not None and default.multimodal,
                default=default is not None,
                default_model=None if default is None else f"{project.key}/{default.key}",
                ab_test=None if test is None else test.key,
            )
        )
        out.extend(
            RoutableModel(
                id=f"{project.key}/{model.key}",
                project_key=project.key,
                model_key=model.key,
                created_at=model.created_at,
                multimodal=model.multimodal,
                default=model.id == project.default_model_id,
            )
            for model in own
        )
    return out
