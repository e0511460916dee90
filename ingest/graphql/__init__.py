"""GraphQL at /api/graphql: the subset of Adaptive Engine's schema that adaptive-sdk uses.

Served by strawberry-graphql through `strawberry.fastapi.GraphQLRouter`. Why strawberry: it
mounts as an ordinary FastAPI router (so the same app, lifespan, engine and bearer-key
dependency serve REST and GraphQL), its schema is plain typed Python classes that mypy checks,
and it runs on graphql-core, the reference implementation: any valid document over this schema
(fragments, aliases, variables or literals) is parsed, validated and executed, not only the
SDK's literal text. Errors follow GraphQL conventions (HTTP 200 with `errors[]`); not-found
messages start with `EntityNotFound:` so adaptive-sdk raises AdaptiveEntityNotFoundError. A
store that cannot be reached is a 503 `store_unavailable` with Retry-After, as on REST.
A document over the token, depth, alias or cost limit is refused before it runs, with a 400
(ingest/graphql/limits.py).
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from strawberry.fastapi import GraphQLRouter

from ingest.errors import DATABASE_ERRORS, GRAPHQL_PATH, BadRequest, error_for_status
from ingest.graphql.context import GraphQLContext, get_context
from ingest.graphql.limits import refusal_of
from ingest.graphql.schema import schema


class _Router(GraphQLRouter[GraphQLContext, None]):
    """strawberry answers a request it cannot run (no query, a batch, a GET) in plain text;
    here it becomes an ApiError, which the app's handlers answer in GraphQL's error shape."""

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().run(*args, **kwargs)
        except HTTPException as exc:
            raise error_for_status(exc.status_code, exc.reason) from exc

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        """A document over a limit (ingest/graphql/limits.py) was refused before it ran: a 400,
        as the other requests that cannot run."""
        result = await super().execute_single(*args, **kwargs)
        refused = refusal_of(result.errors)
        if refused is not None:
            raise BadRequest(refused.message, code=refused.code)
        for error in result.errors or ():
            # The store failed under a resolver: answered as on REST (the app's database error
            # handler: 503 store_unavailable with Retry-After when it is away), not as a 200
            # carrying the driver's message.
            if isinstance(error.original_error, DATABASE_ERRORS):
                raise error.original_error
        return result


def create_graphql_router() -> GraphQLRouter[GraphQLContext, None]:
    """The router serving POST /api/graphql (no GraphiQL page, no queries over GET)."""
    return _Router(
        schema,
        path=GRAPHQL_PATH,
        context_getter=get_context,
        graphql_ide=None,
        allow_queries_via_get=False,
    )
