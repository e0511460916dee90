"""Management REST API under /api/v1/admin (admin keys only): projects, models and API keys.

A/B tests are in ingest/admin_abtests_api.py, on the same prefix."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from ingest.ab_monitor import forget_routes
from ingest.auth import require_admin
from ingest.errors import BadRequest, Conflict, NotFound
from store import catalog, catalog_admin, key_admin
from store.catalog_admin import ProjectDetails, ProjectNotEmptyError
from store.key_admin import KeyInfo
from store.keys import create_api_key
from store.models import Model
from store.upstream_keys import api_key_env_problem

router = APIRouter(
    prefix="/api/v1/admin", tags=["management"], dependencies=[Depends(require_admin)]
)

Key = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^/\s]+$")]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Url = Annotated[str, Field(min_length=8, max_length=2048, pattern=r"^https?://\S+$")]
Seconds = Annotated[float, Field(gt=0, le=86_400)]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PathKey = Annotated[str, Path(min_length=1, max_length=128)]
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def run_store(function: Any, /, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(function, *args, **kwargs)


# Projects ------------------------------------------------------------------------------------


class ProjectOut(BaseModel):
    """A project: its key (what clients send as `model`), models and default model."""

    id: int
    key: str
    name: str
    description: str | None
    default_model: str | None = Field(description="Model answering requests that name none.")
    models: list[str] = Field(description="Keys of the models the project may route to.")
    created_at: datetime

    @classmethod
    def of(cls, details: ProjectDetails) -> ProjectOut:
        return cls(**details.__dict__)


class ProjectCreate(BaseModel):
    key: Key
    name: Name | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None


class ProjectUpdate(BaseModel):
    """Only the fields sent change; `default_model: null` clears the default."""

    name: Name | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    default_model: Key | None = Field(
        default=None, description="Model key; it is attached to the project if it is not yet."
    )


class ProjectList(BaseModel):
    data: list[ProjectOut]


class Deleted(BaseModel):
    key: str
    deleted: bool = True


@router.post("/projects", status_code=201, response_model=ProjectOut)
async def create_project(request: Request, body: ProjectCreate) -> ProjectOut:
    """Create a project (tenant)."""
    engine = request.app.state.engine
    await run_store(
        catalog.create_project, engine, key=body.key, name=body.name, description=body.description
    )
    return ProjectOut.of(await run_store(catalog_admin.describe_project, engine, key=body.key))


@router.get("/projects", response_model=ProjectList)
async def list_projects(request: Request) -> ProjectList:
    """Every project with its models and default model."""
    projects = await run_store(catalog_admin.describe_projects, request.app.state.engine)
    return ProjectList(data=[ProjectOut.of(p) for p in projects])


@router.get("/projects/{key}", response_model=ProjectOut)
async def get_project(request: Request, key: PathKey) -> ProjectOut:
    """One project."""
    return ProjectOut.of(
        await run_store(catalog_admin.describe_project, request.app.state.engine, key=key)
    )


@router.patch("/projects/{key}", response_model=ProjectOut)
async def update_project(request: Request, key: PathKey, body: ProjectUpdate) -> ProjectOut:
    """Rename a project, change its description or its default model (routing follows at once)."""
    changes: dict[str, Any] = {
        name: getattr(body, name) for name in body.model_fields_set if name != "name"
    }
    if body.name is not None:
        changes["name"] = body.name
    details = await run_store(
        catalog_admin.update_project, request.app.state.engine, key=key, **changes
    )
    forget_routes(request.app, key)
    return ProjectOut.of(details)


@router.delete("/projects/{key}", response_model=Deleted, responses={409: {}})
async def delete_project(request: Request, key: PathKey) -> Deleted:
    """Delete an empty project; 409 says what it still holds (interactions, metrics, ...)."""
    try:
        await run_store(catalog_admin.delete_project, request.app.state.engine, key=key)
    except ProjectNotEmptyError as exc:
        raise Conflict(str(exc), code="project_not_empty") from exc
    forget_routes(request.app, key)
    return Deleted(key=key)


@router.put("/projects/{key}/models/{model}", response_model=ProjectOut)
async def attach_model(
    request: Request,
    key: PathKey,
    model: PathKey,
    default: Annotated[bool, Query(description="Also make it the default model.")] = False,
) -> ProjectOut:
    """Let a project route to a model (optionally as its default)."""
    engine = request.app.state.engine
    await run_store(catalog.attach_model, engine, project_key=key, model_key=model, default=default)
    forget_routes(request.app, key)
    return ProjectOut.of(await run_store(catalog_admin.describe_project, engine, key=key))


@router.delete("/projects/{key}/models/{model}", response_model=ProjectOut)
async def detach_model(request: Request, key: PathKey, model: PathKey) -> ProjectOut:
    """Stop a project routing to a model (it stops being the default too)."""
    engine = request.app.state.engine
    await run_store(catalog.detach_model, engine, project_key=key, model_key=model)
    forget_routes(request.app, key)
    return ProjectOut.of(await run_store(catalog_admin.describe_project, engine, key=key))


# Models --------------------------------------------------------------------------------------


class ModelOut(BaseModel):
    """A model served by OpenAI-compatible upstream replicas."""

    id: int
    key: str
    name: str
    upstream_urls: list[str] = Field(description="Replicas, tried in turn.")
    upstream_model: str | None = Field(description="Name the upstream expects (default: key).")
    api_key_env: str | None = Field(
        description="NAME of the environment variable holding the upstream's API key."
    )
    multimodal: bool
    connect_timeout: float | None
    timeout: float | None
    created_at: datetime

    @classmethod
    def of(cls, row: Model) -> ModelOut:
        assert row.id is not None
        return cls(
            id=row.id,
            key=row.key,
            name=row.name,
            upstream_urls=list(row.upstream_urls),
            upstream_model=row.upstream_model,
            api_key_env=row.api_key_env,
            multimodal=row.multimodal,
            connect_timeout=row.connect_timeout,
            timeout=row.timeout,
            created_at=row.created_at,
        )


class ModelCreate(BaseModel):
    key: Key
    name: Name | None = None
    upstream_urls: Annotated[list[Url], Field(min_length=1, max_length=64)]
    upstream_model: Name | None = None
    api_key_env: EnvName | None = None
    multimodal: bool = False
    connect_timeout: Seconds | None = None
    timeout: Seconds | None = None


class ModelUpdate(BaseModel):
    """Only the fields sent change; null clears an optional field."""

    name: Name | None = None
    upstream_urls: Annotated[list[Url], Field(min_length=1, max_length=64)] | None = None
    upstream_model: Name | None = None
    api_key_env: EnvName | None = None
    multimodal: bool | None = None
    connect_timeout: Seconds | None = None
    timeout: Seconds | None = None


class ModelList(BaseModel):
    data: list[ModelOut]


def _check_api_key_env(request: Request, name: str | None) -> None:
    """400 `api_key_env_not_allowed` for a variable the operator does not allow to hold an
    upstream key (INTERLOG_UPSTREAM_KEY_ENV_PATTERN / _NAMES; never an Interlog setting)."""
    problem = None if name is None else api_key_env_problem(name, request.app.state.settings)
    if problem is not None:
        raise BadRequest(problem, param="api_key_env", code="api_key_env_not_allowed")


@router.post("/models", status_code=201, response_model=ModelOut)
async def create_model(request: Request, body: ModelCreate) -> ModelOut:
    """Register a model served by one or more upstream replicas."""
    _check_api_key_env(request, body.api_key_env)
    row = await run_store(
        catalog.create_model,
        request.app.state.engine,
        **body.model_dump(),
        settings=request.app.state.settings,  # which api_key_env names are allowed
    )
    return ModelOut.of(row)


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    """Every model."""
    rows = await run_store(catalog.list_models, request.app.state.engine)
    return ModelList(data=[ModelOut.of(row) for row in rows])


@router.get("/models/{key}", response_model=ModelOut)
async def get_model(request: Request, key: PathKey) -> ModelOut:
    """One model."""
    return ModelOut.of(await run_store(catalog.get_model, request.app.state.engine, key=key))


@router.patch("/models/{key}", response_model=ModelOut)
async def update_model(request: Request, key: PathKey, body: ModelUpdate) -> ModelOut:
    """Change a model's upstreams or options; every project using it routes by them at once."""
    _check_api_key_env(request, body.api_key_env)
    nullable = {"upstream_model", "api_key_env", "connect_timeout", "timeout"}
    changes = {
        name: getattr(body, name)
        for name in body.model_fields_set
        if name in nullable or getattr(body, name) is not None
    }
    row = await run_store(
        catalog_admin.update_model,
        request.app.state.engine,
        key=key,
        **changes,
        settings=request.app.state.settings,  # which api_key_env names are allowed
    )
    forget_routes(request.app)
    return ModelOut.of(row)


# API keys ------------------------------------------------------------------------------------


class KeyOut(BaseModel):
    """An API key as listed: never its secret."""

    id: int
    prefix: str = Field(description="Public part of the key, e.g. `il_1a2b3c4d`.")
    scope: Literal["admin", "project"]
    project: str | None
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return cls(**info.__dict__, revoked=info.revoked)


class KeyCreate(BaseModel):
    """Exactly one of `project` or `admin: true`."""

    project: Key | None = None
    admin: bool = False
    name: Name | None = None


class KeyCreated(KeyOut):
    secret: str = Field(description="The whole key; shown only in this response.")


class KeyList(BaseModel):
    data: list[KeyOut]


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(request: Request, body: KeyCreate) -> KeyCreated:
    """Create a key for one project, or an admin key; the secret is shown once."""
    if body.admin == (body.project is not None):
        raise BadRequest("give exactly one of `project` or `admin: true`", param="project")
    engine = request.app.state.engine
    try:
        created = await run_store(
            create_api_key, engine, project_key=body.project, admin=body.admin, name=body.name
        )
    except LookupError as exc:
        raise NotFound(str(exc), param="project") from exc
    info = await run_store(key_admin.get_api_key, engine, key_id=created.id)
    return KeyCreated(**KeyOut.of(info).model_dump(), secret=created.secret)


@router.get("/keys", response_model=KeyList)
async def list_keys(
    request: Request,
    project: Annotated[
        str | None, Query(max_length=128, description="Only this project's.")
    ] = None,
) -> KeyList:
    """Every key (or one project's), oldest first, with prefix, scope, dates and revocation."""
    keys = await run_store(key_admin.list_api_keys, request.app.state.engine, project_key=project)
    return KeyList(data=[KeyOut.of(k) for k in keys])


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(request: Request, key_id: KeyId) -> KeyOut:
    """Revoke a key; it stops working within the auth cache time (5 s), at once here."""
    info = await run_store(key_admin.revoke_api_key, request.app.state.engine, key_id=key_id)
    request.app.state.__dict__.get("auth_cache", {}).clear()
    return KeyOut.of(info)
