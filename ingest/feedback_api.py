"""REST for metrics and feedback: metric definitions, metric values (single and bulk), comparisons.

The bodies are those of adaptive-sdk before 0.13 (`POST /api/v1/feedback`) and of its
`log_preference` (`POST /api/v1/comparison`), so old and new SDKs work unchanged. A project key
acts on its own project only; another project's completion is answered 404 like an unknown one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ingest.auth import PrincipalDep, check_project_key
from ingest.errors import BadRequest, NotFound, store_api_error
from ingest.pending import wait_for_completions
from store.catalog import list_projects
from store.errors import NotFoundError, StoreError
from store.feedback import (
    TextCompletion,
    add_comparison,
    add_metric_value,
    add_metric_values_bulk,
    add_text_comparison,
    completion_projects,
    missing_completions,
    parse_completion_id,
)
from store.keys import Principal
from store.metrics import create_metric, find_project, get_metric, list_metrics
from store.models import Metric, Project

router = APIRouter(prefix="/api/v1", tags=["metrics and feedback"])

BULK_LIMIT = 10_000


class MetricCreateBody(BaseModel):
    """A metric definition; `project` defaults to the key's project."""

    key: str = Field(min_length=1, max_length=128)
    kind: Literal["scalar", "bool", "SCALAR", "BOOL"] = "scalar"
    scoring_type: str = Field(
        default="higher_is_better", description="higher_is_better or lower_is_better"
    )
    name: str | None = Field(default=None, max_length=256)
    description: str | None = None
    project: str | None = None


class FeedbackBody(BaseModel):
    """One metric value (adaptive-sdk <= 0.12 body); `id` makes resubmission idempotent."""

    value: Any
    completion_id: str
    metric: str = Field(max_length=128)
    user_id: str | None = Field(default=None, max_length=256)
    details: str | None = None
    reason: str | None = Field(default=None, max_length=64)
    id: str | None = Field(default=None, description="client-chosen id: a UUID or any string")


class FeedbackBulkBody(BaseModel):
    items: list[FeedbackBody] = Field(max_length=BULK_LIMIT)


class TextCompletionBody(BaseModel):
    text: str
    model: str = Field(max_length=128)


class ComparisonBody(BaseModel):
    """A preference: two completion ids, or two texts with their models plus `messages`."""

    metric: str
    preferred_completion: str | TextCompletionBody
    other_completion: str | TextCompletionBody
    messages: list[dict[str, Any]] | None = None
    tied: Literal["good", "bad"] | None = None
    user_id: str | None = Field(default=None, max_length=256)
    project: str | None = None


def metric_json(metric: Metric, project_key: str | None = None) -> dict[str, Any]:
    return {
        "id": metric.id,
        "project": project_key,
        "key": metric.key,
        "name": metric.name,
        "kind": metric.kind,
        "scoring_type": metric.scoring,
        "description": metric.description,
        "created_at": metric.created_at.isoformat(),
    }


async def resolve_project(request: Request, principal: Principal, project: str | None) -> Project:
    """The project a request acts on: the named one (checked against the key) or the key's own."""
    engine = request.app.state.engine
    if project is not None:
        check_project_key(principal, project)
        return await asyncio.to_thread(find_project, engine, id_or_key=project)
    if principal.project_key is not None:
        return await asyncio.to_thread(find_project, engine, id_or_key=principal.project_key)
    raise BadRequest("an admin key must name the project: pass `project`", param="project")


async def _projects_of(
    request: Request, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Each visible completion's project, after waiting briefly for ones still being logged."""
    engine = request.app.state.engine
    if principal.project_id is not None:
        project_id = principal.project_id

        def find_missing(wanted: Sequence[uuid.UUID]) -> list[uuid.UUID]:
            return missing_completions(engine, project_id=project_id, completion_ids=wanted)

    else:

        def find_missing(wanted: Sequence[uuid.UUID]) -> list[uuid.UUID]:
            found = completion_projects(engine, completion_ids=wanted)
            return [i for i in wanted if i not in found]

    missing = set(await wait_for_completions(request.app, list(set(ids)), find_missing))
    present = [i for i in ids if i not in missing]
    if principal.project_id is not None:
        return dict.fromkeys(present, principal.project_id)
    return await asyncio.to_thread(completion_projects, engine, completion_ids=present)


async def _project_of(request: Request, principal: Principal, raw_id: str) -> tuple[uuid.UUID, int]:
    completion_id = parse_completion_id(raw_id)
    projects = await _projects_of(request, principal, [completion_id])
    if completion_id not in projects:
        raise NotFound(f"completion {completion_id} not found", param="completion_id")
    return completion_id, projects[completion_id]


def _error_json(error: StoreError) -> dict[str, Any]:
    api_error = store_api_error(error)
    return {**api_error.body()["error"], "status": api_error.status_code}


@router.post("/metrics", status_code=201)
async def create_metric_definition(
    body: MetricCreateBody, request: Request, principal: PrincipalDep
) -> dict[str, Any]:
    """Register a metric (scalar or bool, higher or lower is better) in a project."""
    project = await resolve_project(request, principal, body.project)
    metric = await asyncio.to_thread(
        create_metric,
        request.app.state.engine,
        project_key=project.key,
        key=body.key,
        kind=body.kind,
        scoring=body.scoring_type,
        name=body.name,
        description=body.description,
    )
    return metric_json(metric, project.key)


@router.get("/metrics")
async def read_metrics(
    request: Request, principal: PrincipalDep, project: str | None = None
) -> dict[str, Any]:
    """List metric definitions: the key's project, or (admin) every project unless named."""
    engine = request.app.state.engine
    if project is None and principal.is_admin:
        metrics = await asyncio.to_thread(list_metrics, engine)
        keys = {p.id: p.key for p in await asyncio.to_thread(list_projects, engine)}
        return {"data": [metric_json(m, keys.get(m.project_id)) for m in metrics]}
    scoped = await resolve_project(request, principal, project)
    metrics = await asyncio.to_thread(list_metrics, engine, project_id=scoped.id)
    return {"data": [metric_json(m, scoped.key) for m in metrics]}


@router.get("/metrics/{key}")
async def read_metric(
    key: str, request: Request, principal: PrincipalDep, project: str | None = None
) -> dict[str, Any]:
    """One metric definition by key (or id)."""
    scoped = await resolve_project(request, principal, project)
    assert scoped.id is not None
    metric = await asyncio.to_thread(
        get_metric, request.app.state.engine, project_id=scoped.id, id_or_key=key
    )
    return metric_json(metric, scoped.key)


@router.post("/feedback", status_code=201)
async def create_feedback(
    body: FeedbackBody, request: Request, principal: PrincipalDep
) -> dict[str, str]:
    """Attach a metric value to a completion; the value must fit the metric's kind."""
    engine = request.app.state.engine

    def store(completion_id: uuid.UUID, project_id: int) -> uuid.UUID:
        return add_metric_value(
            engine,
            project_id=project_id,
            completion_id=completion_id,
            metric=body.metric,
            value=body.value,
            details=body.details,
            reason=body.reason,
            user_id=body.user_id,
            feedback_id=body.id,
        )

    if principal.project_id is not None:
        # Fast path: the completion is usually stored already; wait only when it is not.
        try:
            completion_id = parse_completion_id(body.completion_id)
            feedback_id = await asyncio.to_thread(store, completion_id, principal.project_id)
            return {"feedback_id": str(feedback_id)}
        except NotFoundError as exc:
            if exc.entity != "completion":
                raise
    completion_id, project_id = await _project_of(request, principal, body.completion_id)
    feedback_id = await asyncio.to_thread(store, completion_id, project_id)
    return {"feedback_id": str(feedback_id)}


@router.post("/feedback/bulk")
async def create_feedback_bulk(
    body: FeedbackBulkBody, request: Request, principal: PrincipalDep
) -> dict[str, Any]:
    """Attach many metric values; each item gets its own result, one bad item fails alone."""
    parsed: dict[int, uuid.UUID] = {}
    for index, item in enumerate(body.items):
        try:
            parsed[index] = parse_completion_id(item.completion_id)
        except NotFoundError:
            continue
    projects = await _projects_of(request, principal, list(parsed.values()))
    by_project: dict[int, list[int]] = {}
    results: list[dict[str, Any]] = [{} for _ in body.items]
    for index, item in enumerate(body.items):
        completion_id = parsed.get(index)
        project_id = projects.get(completion_id) if completion_id else None
        if project_id is None:
            error = NotFoundError("completion", completion_id or item.completion_id)
            results[index] = {"index": index, "feedback_id": None, "error": _error_json(error)}
        else:
            by_project.setdefault(project_id, []).append(index)
    engine = request.app.state.engine
    for project_id, indexes in by_project.items():
        values = [body.items[i].model_dump() for i in indexes]
        outcome = await asyncio.to_thread(
            add_metric_values_bulk, engine, project_id=project_id, values=values
        )
        for index, result in zip(indexes, outcome, strict=True):
            results[index] = {
                "index": index,
                "feedback_id": str(result.feedback_id) if result.feedback_id else None,
                "error": _error_json(result.error) if result.error else None,
            }
    failed = sum(1 for r in results if r["error"] is not None)
    return {"results": results, "succeeded": len(results) - failed, "failed": failed}


@router.post("/comparison", status_code=201)
async def create_comparison(
    body: ComparisonBody, request: Request, principal: PrincipalDep
) -> dict[str, str]:
    """Record a preference between two completions (ids, or texts stored as OFFLINE ones)."""
    engine = request.app.state.engine
    project = await resolve_project(request, principal, body.project)
    assert project.id is not None
    preferred, other = body.preferred_completion, body.other_completion
    if isinstance(preferred, TextCompletionBody) and isinstance(other, TextCompletionBody):
        result = await asyncio.to_thread(
            add_text_comparison,
            engine,
            project_id=project.id,
            metric=body.metric,
            messages=body.messages or [],
            preferred=TextCompletion(preferred.text, preferred.model),
            other=TextCompletion(other.text, other.model),
            tie=body.tied,
            user_id=body.user_id,
        )
        return {
            "comparison_id": str(result.comparison_id),
            "preferred_completion_id": str(result.preferred_completion_id),
            "other_completion_id": str(result.other_completion_id),
        }
    if isinstance(preferred, TextCompletionBody) or isinstance(other, TextCompletionBody):
        raise BadRequest("give both completions as ids, or both as {text, model}")
    ids = [parse_completion_id(preferred), parse_completion_id(other)]
    scoped = Principal(is_admin=False, project_id=project.id, project_key=project.key)
    projects = await _projects_of(request, scoped, ids)
    for completion_id in ids:
        if completion_id not in projects:
            raise NotFound(f"completion {completion_id} not found")
    comparison_id = await asyncio.to_thread(
        add_comparison,
        engine,
        project_id=project.id,
        metric=body.metric,
        preferred_completion_id=ids[0],
        other_completion_id=ids[1],
        tie=body.tied,
        user_id=body.user_id,
    )
    return {"comparison_id": str(comparison_id)}
