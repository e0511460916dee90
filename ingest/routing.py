"""Routing: which model answers a request, from `model` = "project" or "project/model".

An explicit model must be attached to the project. Otherwise the project's active A/B test
picks a variant by weight (sticky: the same session_id always gets the same variant), else the
project's default model answers. Each project's routes are read from the store once and cached
in memory for `routing_cache_seconds`, so the hot path makes no database query.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ingest.errors import NotFound
from store import catalog
from store.abtests import active_ab_test
from store.errors import NotFoundError
from store.models import Model

if TYPE_CHECKING:
    from ingest.last_known import LastKnown


@dataclass(frozen=True)
class UpstreamModel:
    """A model as the gateway calls it (a snapshot of the store's row)."""

    id: int
    key: str
    urls: tuple[str, ...]
    upstream_name: str
    api_key_env: str | None
    multimodal: bool
    connect_timeout: float | None
    timeout: float | None

    @classmethod
    def from_row(cls, row: Model) -> UpstreamModel:
        assert row.id is not None
        return cls(
            id=row.id,
            key=row.key,
            urls=tuple(row.upstream_urls),
            upstream_name=row.upstream_model or row.key,
            api_key_env=row.api_key_env,
            multimodal=row.multimodal,
            connect_timeout=row.connect_timeout,
            timeout=row.timeout,
        )


@dataclass(frozen=True)
class AbRoutes:
    id: int
    key: str
    variants: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ProjectRoutes:
    """Everything needed to route one project's requests."""

    project_id: int
    project_key: str
    models: dict[str, UpstreamModel]
    default_model: str | None
    ab_test: AbRoutes | None


@dataclass(frozen=True)
class Route:
    """The routing decision for one request."""

    project_id: int
    project_key: str
    model: UpstreamModel
    ab_test_id: int | None = None
    ab_variant: str | None = None

    @property
    def public_model(self) -> str:
        """The model's name as clients see it: `project/model`."""
        return f"{self.project_key}/{self.model.key}"


def load_project_routes(engine: Engine, project_key: str) -> ProjectRoutes | None:
    """Read one project's routes from the store; None if the project does not exist."""
    try:
        project = catalog.get_project(engine, key=project_key)
    except NotFoundError:
        return None
    assert project.id is not None
    rows = catalog.project_models(engine, project_key=project_key)
    models = {row.key: UpstreamModel.from_row(row) for row in rows}
    default = next((m.key for m in models.values() if m.id == project.default_model_id), None)
    test = active_ab_test(engine, project_id=project.id)
    ab_routes = None
    if test is not None and test.id is not None:
        variants = tuple(
            (str(v["model"]), float(v.get("weight", 1.0)))
            for v in test.variants
            if v.get("model") in models
        )
        if variants:
            ab_routes = AbRoutes(id=test.id, key=test.key, variants=variants)
    return ProjectRoutes(project.id, project.key, models, default, ab_routes)


def unit_hash(*parts: str) -> float:
    """A stable number in [0, 1) from strings (the same inputs give the same number)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def pick_variant(ab_test: AbRoutes, session_id: uuid.UUID) -> str:
    """The variant for a session: weighted, and always the same for the same session."""
    total = sum(weight for _, weight in ab_test.variants)
    point = unit_hash(ab_test.key, str(session_id)) * total
    for model_key, weight in ab_test.variants:
        point -= weight
        if point < 0:
            return model_key
    return ab_test.variants[-1][0]


def route_request(routes: ProjectRoutes | None, model_field: str, session_id: uuid.UUID) -> Route:
    """Decide which model answers; 404 naming what is missing and how to fix it."""
    project_key, _, model_key = model_field.partition("/")
    if routes is None:
        raise NotFound(
            f"project {project_key!r} not found: create it with "
            f"`interlog projects create {project_key}`",
            param="model",
        )
    project_id, project_key = routes.project_id, routes.project_key
    if model_key:
        model = routes.models.get(model_key)
        if model is None:
            raise NotFound(
                f"model {model_key!r} is not attached to project {project_key!r} (or does not "
                f"exist): run `interlog models attach {project_key} {model_key}`, after "
                f"`interlog models add {model_key} --upstream URL` if it is new",
                param="model",
            )
        return Route(model=model, project_id=project_id, project_key=project_key)
    if routes.ab_test is not None:
        variant = pick_variant(routes.ab_test, session_id)
        return Route(
            model=routes.models[variant],
            ab_test_id=routes.ab_test.id,
            ab_variant=variant,
            project_id=project_id,
            project_key=project_key,
        )
    if routes.default_model is None:
        raise NotFound(
            f"project {project_key!r} has no default model: run "
            f"`interlog models attach {project_key} MODEL --default`, or name the model "
            f"as {project_key}/MODEL",
            param="model",
        )
    default = routes.models[routes.default_model]
    return Route(model=default, project_id=project_id, project_key=project_key)


class RoutingTable:
    """Per-project routes cached in memory for `ttl` seconds (a config change shows up then)."""

    def __init__(self, engine: Engine, *, ttl: float, last_known: LastKnown | None = None) -> None:
        self.engine = engine
        self.ttl = ttl
        self.last_known = last_known  # routes to use while the store is away
        self._cache: dict[str, tuple[float, ProjectRoutes | None]] = {}
        self._loading: dict[str, asyncio.Future[ProjectRoutes | None]] = {}

    async def project_routes(self, project_key: str) -> ProjectRoutes | None:
        """The project's routes, from the cache or (once per TTL) from the store."""
        cached = self._cache.get(project_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._loading.get(project_key)
        if pending is not None:  # another request is already reading this project
            return await asyncio.shield(pending)
        future: asyncio.Future[ProjectRoutes | None] = asyncio.get_running_loop().create_future()
        self._loading[project_key] = future
        try:
            routes = await asyncio.to_thread(load_project_routes, self.engine, project_key)
        except BaseException as exc:
            known = self._while_away(project_key, cached) if isinstance(exc, DBAPIError) else None
            if known is not None:  # the store is unreachable: keep routing with the last known
                future.set_result(known[0])
                return known[0]
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) get it re-raised
            raise
        finally:
            self._loading.pop(project_key, None)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[project_key] = (time.monotonic() + self.ttl, routes)
        if self.last_known is not None:
            self.last_known.remember_routes(project_key, routes)
        future.set_result(routes)
        return routes

    def _while_away(
        self, project_key: str, cached: tuple[float, ProjectRoutes | None] | None
    ) -> tuple[ProjectRoutes | None] | None:
        """The routes to use while the store is unreachable (in a 1-tuple), or None: those
        loaded within the last hour (ingest/last_known.py), or without that record the last
        ones this process loaded."""
        if self.last_known is not None:
            routes = self.last_known.routes(project_key)
            return (routes,) if routes is not None else None
        return (cached[1],) if cached is not None else None

    def invalidate(self, project_key: str | None = None) -> None:
        """Forget cached routes (one project's, or all) so the next request reads the store."""
        if project_key is None:
            self._cache.clear()
        else:
            self._cache.pop(project_key, None)

    async def route(self, model_field: str, session_id: uuid.UUID) -> Route:
        project_key, _, model_key = model_field.partition("/")
        routes = await self.project_routes(project_key)
        if routes is not None and model_key and model_key not in routes.models:
            await self._explain_missing_model(project_key, model_key)
        return route_request(routes, model_field, session_id)

    async def _explain_missing_model(self, project_key: str, model_key: str) -> None:
        """404 for a model the project cannot use: unknown, or known but not attached."""
        try:
            await asyncio.to_thread(catalog.get_model, self.engine, key=model_key)
        except NotFoundError:
            raise NotFound(
                f"model {model_key!r} does not exist: register it with "
                f"`interlog models add {model_key} --upstream URL`, then "
                f"`interlog models attach {project_key} {model_key}`",
                param="model",
            ) from None
        raise NotFound(
            f"model {model_key!r} is not attached to project {project_key!r}: run "
            f"`interlog models attach {project_key} {model_key}`",
            param="model",
        )
