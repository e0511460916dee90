"""REST exports: every interaction matching the filters, streamed as CSV, Parquet or JSONL.

`GET /api/v1/interactions/export?format=parquet&label=team=a&where=quality>=0.8` streams the
file batch by batch (never a page, never the whole file in memory). A project key exports only
its own project's rows. Registered before the read-back routes so that
`/interactions/{completion_id}` cannot capture `/interactions/export`. The filters are the shared
grammar (store.filters), also for the analytics routes: caps, known status, and metric names that
exist in the caller's scope (400 otherwise).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ingest.auth import PrincipalDep, check_project_key
from store.exports import FORMATS, check_format
from store.filters import Filters

router = APIRouter(prefix="/api/v1", tags=["exports"])


def filters_from_query(
    principal: PrincipalDep,
    label: Annotated[
        list[str], Query(description="k=v, k!=v, k=a|b (one of) or k (exists); repeat for AND")
    ] = [],  # noqa: B006
    where: Annotated[
        list[str], Query(description="metric condition, e.g. quality>=0.8; repeat for AND")
    ] = [],  # noqa: B006
    metric: Annotated[list[str], Query(description="alias of `where`")] = [],  # noqa: B006
    project: Annotated[str | None, Query(description="project key")] = None,
    model: Annotated[str | None, Query(description="model key")] = None,
    ab_test: Annotated[str | None, Query(description="A/B test key")] = None,
    variant: Annotated[str | None, Query(description="A/B test variant")] = None,
    since: Annotated[str | None, Query(description="7d, 24h, 30m or an ISO datetime")] = None,
    until: Annotated[str | None, Query(description="ISO datetime (exclusive) or 1h")] = None,
    session: Annotated[str | None, Query(description="session id")] = None,
    user: Annotated[str | None, Query(description="user id")] = None,
    status: Annotated[str | None, Query(description="ok, error or cancelled")] = None,
    search: Annotated[str | None, Query(description="text in prompt or completion")] = None,
) -> Filters:
    """The shared filters from query parameters; bad values and more conditions than allowed are
    400 (metric names that no project in scope has too, when the question runs:
    store.analytics.check_filters)."""
    if project is not None:
        check_project_key(principal, project)
    filters = Filters(
        labels=label, metrics=[*where, *metric], project=project, model=model, ab_test=ab_test,
        variant=variant, since=since, until=until, session=session, user=user, status=status,
        search=search,
    )  # fmt: skip
    return filters


FiltersDep = Annotated[Filters, Depends(filters_from_query)]


@router.get("/interactions/export", response_class=StreamingResponse)
def export_interactions(
    request: Request,
    principal: PrincipalDep,
    filters: FiltersDep,
    format: Annotated[str, Query(description="csv, parquet or jsonl")] = "jsonl",
) -> StreamingResponse:
    """Download every matching interaction: CSV or Parquet (a column per metric) or JSONL in
    OpenAI's fine-tuning chat format (images omitted, text parts flattened)."""
    kind = check_format(format)
    media_type, extension = FORMATS[kind]
    chunks = request.app.state.analytics.stream(
        "export_chunks", filters, scope=principal, format=kind
    )
    # The first chunk is made here, so sync and query errors still get a proper error response.
    first = next(chunks, b"")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        itertools.chain([first], chunks),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="interactions-{stamp}.{extension}"'},
    )
