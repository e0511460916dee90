"""Changing the catalog after creation: update or delete projects, update models.

Deleting a project is refused while it still holds data (interactions, metrics, A/B tests or
unrevoked keys): the operator must see what would be lost, and nothing is deleted by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import delete as sa_delete
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.catalog import attach_model, load_project
from store.db import session_scope
from store.errors import InvalidInputError, NotFoundError
from store.models import (
    AbTest,
    ApiKey,
    Interaction,
    InteractionLabel,
    Metric,
    Model,
    Project,
    ProjectModel,
)
from store.settings import Settings, get_settings
from store.upstream_keys import check_api_key_env

_UNSET: Any = object()


class ProjectNotEmptyError(InvalidInputError):
    """A project cannot be deleted while it holds data; `holdings` says what it holds."""

    def __init__(self, key: str, holdings: dict[str, int]) -> None:
        self.key = key
        self.holdings = holdings
        listed = ", ".join(f"{count} {what}" for what, count in holdings.items())
        super().__init__(f"project {key} is not empty: it still holds {listed}")


@dataclass(frozen=True)
class ProjectDetails:
    """A project with its default model's key and the keys of the models it may use."""

    id: int
    key: str
    name: str
    description: str | None
    default_model: str | None
    models: list[str]
    created_at: Any


def _details(session: Session, project: Project) -> ProjectDetails:
    models = session.exec(
        select(Model)
        .join(ProjectModel, col(ProjectModel.model_id) == col(Model.id))
        .where(ProjectModel.project_id == project.id)
        .order_by(col(Model.key))
    ).all()
    default = next((m.key for m in models if m.id == project.default_model_id), None)
    assert project.id is not None
    return ProjectDetails(
        id=project.id,
        key=project.key,
        name=project.name,
        description=project.description,
        default_model=default,
        models=[m.key for m in models],
        created_at=project.created_at,
    )


def describe_project(engine: Engine, *, key: str) -> ProjectDetails:
    """One project with its models and default model."""
    with Session(engine) as session:
        return _details(session, load_project(session, key))


def describe_projects(engine: Engine) -> list[ProjectDetails]:
    """Every project with its models and default model, by key."""
    with Session(engine) as session:
        projects = session.exec(select(Project).order_by(col(Project.key))).all()
        return [_details(session, project) for project in projects]


def update_project(
    engine: Engine,
    *,
    key: str,
    name: str | None = None,
    description: str | None = _UNSET,
    default_model: str | None = _UNSET,
) -> ProjectDetails:
    """Rename a project, change its description, or set (attaching) / clear its default model."""
    if default_model is not _UNSET and default_model is not None:
        attach_model(engine, project_key=key, model_key=default_model, default=True)
    with session_scope(engine) as session:
        project = load_project(session, key)
        if name is not None:
            if not name.strip():
                raise InvalidInputError("a project name cannot be empty")
            project.name = name
        if description is not _UNSET:
            project.description = description
        if default_model is None:
            project.default_model_id = None
        session.add(project)
        session.flush()
        return _details(session, project)


def project_holdings(engine: Engine, *, key: str) -> dict[str, int]:
    """What a project holds that deleting it would lose (only non-zero counts)."""
    with Session(engine) as session:
        project = load_project(session, key)
        counts = {
            "interactions": (Interaction, col(Interaction.project_id) == project.id),
            "metrics": (Metric, col(Metric.project_id) == project.id),
            "A/B tests": (AbTest, col(AbTest.project_id) == project.id),
            "active API keys": (
                ApiKey,
                (col(ApiKey.project_id) == project.id) & col(ApiKey.revoked_at).is_(None),
            ),
        }
        holdings: dict[str, int] = {}
        for what, (table, condition) in counts.items():
            count = session.execute(
                sa_select(func.count()).select_from(table).where(condition)
            ).scalar_one()
            if count:
                holdings[what] = int(count)
        return holdings


def delete_project(engine: Engine, *, key: str) -> None:
    """Delete an empty project (its model links and revoked keys go with it)."""
    holdings = project_holdings(engine, key=key)
    if holdings:
        raise ProjectNotEmptyError(key, holdings)
    with session_scope(engine) as session:
        project = load_project(session, key)
        session.execute(sa_delete(ProjectModel).where(col(ProjectModel.project_id) == project.id))
        session.execute(sa_delete(ApiKey).where(col(ApiKey.project_id) == project.id))
        # Labels have no foreign key to cascade (migration 0002); an empty project has none,
        # unless interactions were deleted outside Interlog.
        session.execute(
            sa_delete(InteractionLabel).where(col(InteractionLabel.project_id) == project.id)
        )
        session.delete(project)


def update_model(
    engine: Engine,
    *,
    key: str,
    name: str | None = None,
    upstream_urls: list[str] | None = None,
    upstream_model: str | None = _UNSET,
    api_key_env: str | None = _UNSET,
    multimodal: bool | None = None,
    connect_timeout: float | None = _UNSET,
    timeout: float | None = _UNSET,
    settings: Settings | None = None,
) -> Model:
    """Change a model's upstreams or options; only the arguments given change. A new
    `api_key_env` must be a name the operator allows (store/upstream_keys.py) under SETTINGS
    (default: the process's)."""
    if api_key_env is not _UNSET and api_key_env is not None:
        check_api_key_env(api_key_env, settings or get_settings())
    if upstream_urls is not None:
        if not upstream_urls:
            raise InvalidInputError("a model needs at least one upstream URL")
        for url in upstream_urls:
            if not url.startswith(("http://", "https://")):
                raise InvalidInputError(f"upstream URL {url!r} must start with http:// or https://")
    for label, value in (("connect_timeout", connect_timeout), ("timeout", timeout)):
        if value is not _UNSET and value is not None and value <= 0:
            raise InvalidInputError(f"{label} must be a positive number of seconds")
    with session_scope(engine) as session:
        model = session.exec(select(Model).where(Model.key == key)).first()
        if model is None:
            raise NotFoundError("model", key, "Register it with `interlog models add KEY`.")
        if name is not None:
            model.name = name
        if upstream_urls is not None:
            model.upstream_urls = [url.rstrip("/") for url in upstream_urls]
        if upstream_model is not _UNSET:
            model.upstream_model = upstream_model
        if api_key_env is not _UNSET:
            model.api_key_env = api_key_env
        if multimodal is not None:
            model.multimodal = multimodal
        if connect_timeout is not _UNSET:
            model.connect_timeout = connect_timeout
        if timeout is not _UNSET:
            model.timeout = timeout
        session.add(model)
        session.flush()
        session.refresh(model)
        session.expunge(model)
        return model


def model_projects(engine: Engine, *, key: str) -> list[str]:
    """Keys of the projects that may route to a model."""
    with Session(engine) as session:
        model = session.exec(select(Model).where(Model.key == key)).first()
        if model is None:
            raise NotFoundError("model", key)
        return list(
            session.exec(
                select(Project.key)
                .join(ProjectModel, col(ProjectModel.project_id) == col(Project.id))
                .where(ProjectModel.model_id == model.id)
                .order_by(col(Project.key))
            ).all()
        )
