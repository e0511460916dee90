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

from strawberry.fastapi import GraphQLRouter

from ingest.graphql.context import GraphQLContext, get_context
from ingest.graphql.schema import schema


def create_graphql_router() -> GraphQLRouter[GraphQLContext, None]:
    """The router serving POST /api/graphql (no GraphiQL page, no queries over GET)."""
    return GraphQLRouter(
        schema,
        path="/api/graphql",
        context_getter=get_context,
        graphql_ide=None,
        allow_queries_via_get=False,
    )
