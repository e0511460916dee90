"""GraphQL at /api/graphql: the subset of Adaptive Engine's schema that adaptive-sdk uses.

Served by strawberry-graphql through `strawberry.fastapi.GraphQLRouter`. Why strawberry: it
mounts as an ordinary FastAPI router (so the same app, lifespan, engine and bearer-key
dependency serve REST and GraphQL), its schema is plain typed Python classes that mypy checks,
and it runs on graphql-core, the reference implementation: any valid document over this schema
(fragments, aliases, variables or literals) is parsed, validated and executed, not only the
SDK's literal text. Errors follow GraphQL conventions (HTTP 200 with `errors[]`); not-found
messages start with `EntityNotFound:` so adaptive-sdk raises AdaptiveEntityNotFoundError.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from strawberry.fastapi import GraphQLRouter

from ingest.errors import GRAPHQL_PATH, error_for_status
from ingest.graphql.context import GraphQLContext, get_context
from ingest.graphql.schema import schema


class _Router(GraphQLRouter[GraphQLContext, None]):
    """strawberry answers a request it cannot run (no query, a batch, a GET) in plain text;
    here it becomes an ApiError, which the app's handlers answer in GraphQL's error shape."""

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().run(*args, **kwargs)
        except HTTPException as exc:
            raise error_for_status(exc.status_code, exc.reason) from exc


def create_graphql_router() -> GraphQLRouter[GraphQLContext, None]:
    """The router serving POST /api/graphql (no GraphiQL page, no queries over GET)."""
    return _Router(
        schema,
        path=GRAPHQL_PATH,
        context_getter=get_context,
        graphql_ide=None,
        allow_queries_via_get=False,
    )
