"""Projects, models and which models a project may use: the configuration the gateway routes by."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.db import session_scope
from store.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from store.models import Model, Project, ProjectModel
from store.settings import Settings, get_settings
from store.upstream_keys import check_api_key_env


def load_project(session: Session, key: str) -> Project:
    """The project with this key, in the caller's session; NotFoundError says how to add it."""
    project = session.exec(select(Project).where(Project.key == key)).first()
    if project is None:
        raise NotFoundError("project", key, "Create it with `interlog projects create KEY`.")
    return project


def _model(session: Session, key: str) -> Model:
    model = session.exec(select(Model).where(Model.key == key)).first()
    if model is None:
        raise NotFoundError(
            "model", key, "Register it with `interlog models add KEY --upstream URL`."
        )
    return model


def create_project(
    engine: Engine, *, key: str, name: str | None = None, description: str | None = None
) -> Project:
    """Create a project; its key is what clients put in `model`."""
    if not key or "/" in key:
        raise InvalidInputError(
            f"invalid project key {key!r}: it must be non-empty and have no '/'"
        )
    try:
        with session_scope(engine) as session:
            project = Project(key=key, name=name or key, description=description)
            session.add(project)
            session.flush()
            return project
    except IntegrityError as exc:
        raise AlreadyExistsError("project", key) from exc


def get_project(engine: Engine, *, key: str) -> Project:
    with Session(engine) as session:
        return load_project(session, key)


def list_projects(engine: Engine) -> list[Project]:
    with Session(engine) as session:
        return list(session.exec(select(Project).order_by(col(Project.key))).all())


def create_model(
    engine: Engine,
    *,
    key: str,
    upstream_urls: list[str],
    upstream_model: str | None = None,
    api_key_env: str | None = None,
    multimodal: bool = False,
    connect_timeout: float | None = None,
    timeout: float | None = None,
    name: str | None = None,
    settings: Settings | None = None,
) -> Model:
    """Register a model served by one or more OpenAI-compatible upstream replicas.

    `api_key_env` must be a name the operator allows (store/upstream_keys.py) under SETTINGS
    (default: the process's)."""
    if not key or "/" in key:
        raise InvalidInputError(f"invalid model key {key!r}: it must be non-empty and have no '/'")
    if api_key_env is not None:
        check_api_key_env(api_key_env, settings or get_settings())
    if not upstream_urls:
        raise InvalidInputError("a model needs at least one upstream URL")
    for url in upstream_urls:
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"upstream URL {url!r} must start with http:// or https://")
    try:
        with session_scope(engine) as session:
            model = Model(
                key=key,
                name=name or key,
                upstream_urls=[url.rstrip("/") for url in upstream_urls],
                upstream_model=upstream_model,
                api_key_env=api_key_env,
                multimodal=multimodal,
                connect_timeout=connect_timeout,
                timeout=timeout,
            )
            session.add(model)
            session.flush()
            return model
    except IntegrityError as exc:
        raise AlreadyExistsError("model", key) from exc


def get_model(engine: Engine, *, key: str) -> Model:
    with Session(engine) as session:
        return _model(session, key)


def list_models(engine: Engine) -> list[Model]:
    with Session(engine) as session:
        return list(session.exec(select(Model).order_by(col(Model.key))).all())


def attach_model(
    engine: Engine, *, project_key: str, model_key: str, default: bool = False
) -> None:
    """Let a project route to a model; `default` also makes it the project's default model."""
    with session_scope(engine) as session:
        project = load_project(session, project_key)
        model = _model(session, model_key)
        assert project.id is not None and model.id is not None
        if session.get(ProjectModel, (project.id, model.id)) is None:
            session.add(ProjectModel(project_id=project.id, model_id=model.id))
        if default:
            project.default_model_id = model.id
            session.add(project)


def detach_model(engine: Engine, *, project_key: str, model_key: str) -> None:
    """Stop a project routing to a model (and unset it as default)."""
    with session_scope(engine) as session:
        project = load_project(session, project_key)
        model = _model(session, model_key)
        link = session.get(ProjectModel, (project.id, model.id))
        if link is None:
            raise NotFoundError("model", f"{model_key} in project {project_key}")
        session.delete(link)
        if project.default_model_id == model.id:
            project.default_model_id = None
            session.add(project)


def set_default_model(engine: Engine, *, project_key: str, model_key: str) -> None:
    """Make an attached model the project's default (attaching it if needed)."""
    attach_model(engine, project_key=project_key, model_key=model_key, default=True)


def project_models(engine: Engine, *, project_key: str) -> list[Model]:
    """The models a project may route to."""
    with Session(engine) as session:
        project = load_project(session, project_key)
        statement = (
            select(Model)
            .join(ProjectModel, col(ProjectModel.model_id) == col(Model.id))
            .where(ProjectModel.project_id == project.id)
            .order_by(col(Model.key))
        )
        return list(session.exec(statement).all())
