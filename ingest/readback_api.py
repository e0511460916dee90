"""REST read-back: interactions with their labels, metric values and comparisons.

`GET /api/v1/interactions` filters with the shared grammar (store.filters), newest first, with
an opaque `cursor` for the next page: `label=team=a` (equals), `label=env!=dev` (differs, or no
`env` label), `label=team=a|b` (one of), `label=team` (has the key); `metric=quality>=0.8`
(alias `where`; the mean of the completion's values; >, >=, <, <=, =, !=; bool metrics take
true/false); model, time range, session, user, completion id, status, source, A/B test.
At most 50 label and 20 metric conditions; an unknown metric or status is a 400 naming the valid
ones; a label key that no interaction in scope has gives an empty page and a `warnings` entry.
Queries run under INTERLOG_READ_TIMEOUT_SECONDS and stop when the client goes away
(ingest/reads.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from ingest.auth import PrincipalDep, check_project_key
from ingest.reads import run_read
from store.feedback import parse_completion_id
from store.filters import Filters, check_status
from store.metrics import find_project
from store.readback import (
    MAX_PAGE,
    Condition,
    InteractionView,
    completion_condition,
    get_interaction,
    list_interactions,
    model_condition,
    source_condition,
    status_condition,
    time_condition,
)

router = APIRouter(prefix="/api/v1", tags=["interactions"])


def interaction_json(view: InteractionView) -> dict[str, Any]:
    """The REST shape of one interaction."""
    return {
        "completion_id": str(view.completion_id),
        "session_id": str(view.session_id),
        "created_at": view.created_at.isoformat(),
        "model": view.model_key,
        "user_id": view.user_id,
        "labels": view.labels,
        "messages": view.messages,
        "params": view.params,
        "completion": view.completion,
        "tool_calls": view.tool_calls,
        "finish_reason": view.finish_reason,
        "usage": {
            "prompt_tokens": view.prompt_tokens,
            "completion_tokens": view.completion_tokens,
        },
        "ttft_ms": view.ttft_ms,
        "latency_ms": view.latency_ms,
        "status": view.status,
        "error": view.error,
        "source": view.source,
        "ab_variant": view.ab_variant,
        "metrics": [
            {
                "feedback_id": str(score.id),
                "metric": score.metric.key,
                "value": score.value,
                "details": score.details,
                "reason": score.reason,
                "user_id": score.user_id,
                "created_at": score.created_at.isoformat(),
            }
            for score in view.scores
        ],
        "comparisons": [
            {
                "comparison_id": str(c.id),
                "metric": c.metric.key,
                "preferred_completion_id": str(c.preferred_completion_id),
                "other_completion_id": str(c.other_completion_id),
                "tie": c.tie,
                "user_id": c.user_id,
                "created_at": c.created_at.isoformat(),
            }
            for c in view.comparisons
        ],
    }


async def _scope(request: Request, principal: Any, project: str | None) -> int | None:
    if project is not None:
        check_project_key(principal, project)
        found = await asyncio.to_thread(find_project, request.app.state.engine, id_or_key=project)
        return found.id
    return None if principal.is_admin else principal.project_id


@router.get("/interactions")
async def read_interactions(
    request: Request,
    principal: PrincipalDep,
    project: str | None = None,
    label: Annotated[
        list[str], Query(description="k=v, k!=v, k=a|b (one of) or k (exists); repeat for AND")
    ] = [],  # noqa: B006
    model: Annotated[list[str], Query(description="model key (repeat for any of)")] = [],  # noqa: B006
    since: datetime | None = None,
    until: datetime | None = None,
    session_id: str | None = None,
    session: Annotated[str | None, Query(description="alias of session_id")] = None,
    user_id: str | None = None,
    user: Annotated[str | None, Query(description="alias of user_id")] = None,
    completion_id: Annotated[list[str], Query()] = [],  # noqa: B006
    status: Annotated[list[str], Query(description="ok, error or cancelled")] = [],  # noqa: B006
    source: Annotated[list[str], Query(description="LIVE, OFFLINE, ...")] = [],  # noqa: B006
    metric: Annotated[
        list[str], Query(description="e.g. quality>=0.8 (mean of the values); repeat for AND")
    ] = [],  # noqa: B006
    where: Annotated[list[str], Query(description="alias of `metric`")] = [],  # noqa: B006
    ab_test: Annotated[str | None, Query(description="A/B test key")] = None,
    variant: Annotated[str | None, Query(description="A/B test variant")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
    order: Literal["desc", "asc"] = "desc",
) -> dict[str, Any]:
    """List interactions with their labels and metric values, newest first, a page at a time;
    `warnings` names label keys that no interaction in scope has."""
    # Without a timezone a time is UTC, as everywhere else (ingest's created_at, the export and
    # analytics filters, GraphQL); read-back alone used to refuse it.
    since, until = (
        moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
        for moment in (since, until)
    )
    filters = Filters(
        labels=label, metrics=[*metric, *where], ab_test=ab_test, variant=variant,
        session=session or session_id, user=user or user_id,
    )  # fmt: skip
    for value in status:
        check_status(value)
    project_id = await _scope(request, principal, project)
    conditions: list[Condition] = []
    if model:
        conditions.append(model_condition(model))
    if since or until:
        conditions.append(time_condition(since, until))
    if completion_id:
        conditions.append(completion_condition(completion_id))
    if status:
        conditions.append(status_condition(status))
    if source:
        conditions.append(source_condition(source))
    page = await run_read(
        request,
        list_interactions,
        request.app.state.engine,
        project_id=project_id,
        conditions=conditions,
        filters=filters,
        limit=limit,
        cursor=cursor,
        ascending=order == "asc",
    )
    return {
        "data": [interaction_json(view) for view in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.next_cursor is not None,
        "total_count": page.total_count,
        "warnings": page.warnings,
    }


@router.get("/interactions/{completion_id}")
async def read_interaction(
    completion_id: str, request: Request, principal: PrincipalDep
) -> dict[str, Any]:
    """One interaction with its labels, metric values and comparisons (404 if not visible)."""
    target = parse_completion_id(completion_id)
    view = await run_read(
        request,
        get_interaction,
        request.app.state.engine,
        completion_id=target,
        project_id=None if principal.is_admin else principal.project_id,
    )
    return interaction_json(view)
