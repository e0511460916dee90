"""REST read-back: interactions with their labels, metric values and comparisons.

`GET /api/v1/interactions` filters by labels, model, time range, session, user, completion id,
status, source and metric ranges, newest first, with an opaque `cursor` for the next page.
Label filters: `label=team=a` (equals), `label=team=a|b` (one of), `label=team` (key exists).
Metric filters: `metric=quality>=0.8` (operators >, >=, <, <=, =; bool metrics take true/false).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from ingest.auth import PrincipalDep, check_project_key
from ingest.errors import BadRequest
from store.errors import InvalidInputError
from store.feedback import parse_completion_id
from store.metrics import find_project
from store.readback import (
    MAX_PAGE,
    Condition,
    InteractionView,
    completion_condition,
    get_interaction,
    label_condition,
    list_interactions,
    metric_condition,
    model_condition,
    session_condition,
    source_condition,
    status_condition,
    time_condition,
    user_condition,
)

router = APIRouter(prefix="/api/v1", tags=["interactions"])

_METRIC = re.compile(r"^\s*([A-Za-z0-9_.:-]+)\s*(>=|<=|==|=|>|<)\s*(\S+)\s*$")
_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "=": "eq", "==": "eq"}


def parse_label_filter(text: str, project_id: int | None = None) -> Condition:
    """`k=v`, `k=a|b` or a bare `k`."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not key or " " in key:
        raise InvalidInputError(f"bad label filter {text!r}: use key=value, key=a|b or key")
    return label_condition(key, value.split("|") if sep else None, project_id=project_id)


def parse_metric_filter(text: str) -> Condition:
    """`quality>=0.8`, `thumbs=true`."""
    match = _METRIC.match(text)
    if not match:
        raise InvalidInputError(f"bad metric filter {text!r}: expected KEY OP NUMBER, e.g. q>=0.8")
    key, op, raw = match.groups()
    number: float | None = {"true": 1.0, "false": 0.0}.get(raw.lower())
    if number is None:
        try:
            number = float(raw)
        except ValueError:
            raise InvalidInputError(f"bad number in metric filter {text!r}") from None
    return metric_condition(key, **{_OPS[op]: number})


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
    label: Annotated[list[str], Query(description="key=value, key=a|b, or key")] = [],  # noqa: B006
    model: Annotated[list[str], Query(description="model key (repeat for any of)")] = [],  # noqa: B006
    since: datetime | None = None,
    until: datetime | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    completion_id: Annotated[list[str], Query()] = [],  # noqa: B006
    status: Annotated[list[str], Query(description="ok, error or cancelled")] = [],  # noqa: B006
    source: Annotated[list[str], Query(description="LIVE, OFFLINE, ...")] = [],  # noqa: B006
    metric: Annotated[list[str], Query(description="e.g. quality>=0.8")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
    order: Literal["desc", "asc"] = "desc",
) -> dict[str, Any]:
    """List interactions with their labels and metric values, newest first, a page at a time."""
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise BadRequest("since/until need a timezone, e.g. 2025-01-01T00:00:00Z")
    project_id = await _scope(request, principal, project)
    conditions: list[Condition] = [parse_label_filter(text, project_id) for text in label]
    conditions += [parse_metric_filter(text) for text in metric]
    if model:
        conditions.append(model_condition(model))
    if since or until:
        conditions.append(time_condition(since, until))
    if session_id:
        conditions.append(session_condition(session_id))
    if user_id:
        conditions.append(user_condition(user_id))
    if completion_id:
        conditions.append(completion_condition(completion_id))
    if status:
        conditions.append(status_condition(status))
    if source:
        conditions.append(source_condition(source))
    page = await asyncio.to_thread(
        list_interactions,
        request.app.state.engine,
        project_id=project_id,
        conditions=conditions,
        limit=limit,
        cursor=cursor,
        ascending=order == "asc",
    )
    return {
        "data": [interaction_json(view) for view in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.next_cursor is not None,
        "total_count": page.total_count,
    }


@router.get("/interactions/{completion_id}")
async def read_interaction(
    completion_id: str, request: Request, principal: PrincipalDep
) -> dict[str, Any]:
    """One interaction with its labels, metric values and comparisons (404 if not visible)."""
    target = parse_completion_id(completion_id)
    view = await asyncio.to_thread(
        get_interaction,
        request.app.state.engine,
        completion_id=target,
        project_id=None if principal.is_admin else principal.project_id,
    )
    return interaction_json(view)
