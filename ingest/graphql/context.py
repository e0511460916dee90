"""Per-request GraphQL context (engine, principal, caches) and the store-to-GraphQL error mapping.

Store errors become GraphQL errors whose message starts with the kind Adaptive uses:
`EntityNotFound: ...` makes adaptive-sdk raise its AdaptiveEntityNotFoundError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Engine
from strawberry.fastapi import BaseContext

from ingest.auth import authenticate
from ingest.reads import run_read
from store.analytics.reader import LocalAnalytics, ReaderProcess
from store.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    QueryCancelledError,
    StoreError,
    ValueOutOfRangeError,
)
from store.keys import Principal
from store.metrics import find_project, project_by_id
from store.models import Project

T = TypeVar("T")


class ExpectedError(Exception):
    """An error meant for the client (shown as is, not logged as a server fault); CODE, when
    given, is also in the error's `extensions` (graphql-core copies them from the exception)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.extensions = {"code": code, "type": "invalid_request_error"}


class EntityNotFound(ExpectedError):
    def __init__(self, message: str) -> None:
        super().__init__(f"EntityNotFound: {message}")


class InvalidInput(ExpectedError):
    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(f"InvalidInput: {message}", code=code)


class AlreadyExists(ExpectedError):
    def __init__(self, message: str) -> None:
        super().__init__(f"AlreadyExists: {message}")


class QueryStopped(ExpectedError):
    """A read stopped by the read timeout (`extensions.code` query_timeout) or cancelled."""

    def __init__(self, error: QueryCancelledError) -> None:
        super().__init__(f"QueryTimeout: {error}" if error.timed_out else f"Cancelled: {error}")
        code = "query_timeout" if error.timed_out else "cancelled"
        self.extensions = {"code": code, "type": "server_error"}


def graphql_error(error: StoreError) -> ExpectedError:
    if isinstance(error, NotFoundError):
        return EntityNotFound(str(error))
    if isinstance(error, AlreadyExistsError):
        return AlreadyExists(str(error))
    if isinstance(error, ValueOutOfRangeError):
        return InvalidInput(str(error), code=error.code)
    if isinstance(error, QueryCancelledError):
        return QueryStopped(error)
    return InvalidInput(str(error))


async def run_store(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call in a thread; store errors become client-facing GraphQL errors."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except (StoreError, InvalidInputError) as exc:
        raise graphql_error(exc) from exc


class GraphQLContext(BaseContext):
    """What resolvers need: the store, who asks, and small per-request caches."""

    def __init__(self, request: Request, principal: Principal) -> None:
        super().__init__()
        self.request = request
        self.principal = principal
        self.engine: Engine = request.app.state.engine
        #: Analytics questions: the reader child's (store/analytics/reader.py) or this process's.
        self.analytics: LocalAnalytics | ReaderProcess = request.app.state.analytics
        self.metric_usage: dict[int, tuple[bool, bool]] = {}
        self._projects: dict[int, Project | None] = {}
        #: Warnings for the answer's `extensions` (e.g. a label key no interaction has).
        self.warnings: list[str] = []

    async def read(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store read (taking `guard=`) under the read timeout, cancelled if the client
        goes away (ingest/reads.py); store errors become client-facing GraphQL errors."""
        assert isinstance(self.request, Request)
        try:
            return await run_read(self.request, function, *args, **kwargs)
        except StoreError as exc:
            raise graphql_error(exc) from exc

    @property
    def visible_project_id(self) -> int | None:
        """The only project this key may see (None: an admin key sees every project)."""
        return None if self.principal.is_admin else self.principal.project_id

    async def project(self, id_or_key: str) -> Project:
        """A project the key may see; another project's is reported as not found."""
        project = await run_store(find_project, self.engine, id_or_key=id_or_key)
        assert project.id is not None
        if not self.principal.can_access(project.id):
            raise EntityNotFound(f"project {id_or_key} not found")
        self._projects[project.id] = project
        return project

    async def project_by_id(self, project_id: int) -> Project | None:
        if project_id not in self._projects:
            found = await run_store(project_by_id, self.engine, project_id=project_id)
            visible = found is not None and self.principal.can_access(project_id)
            self._projects[project_id] = found if visible else None
        return self._projects[project_id]


async def get_context(
    request: Request, principal: Principal = Depends(authenticate)
) -> GraphQLContext:
    """FastAPI dependency: a missing or invalid key is a 401 before any GraphQL runs."""
    return GraphQLContext(request, principal)
