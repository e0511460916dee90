"""External logging: POST /api/v1/interactions (Adaptive §5.2 body) and its bulk form.

For applications that call models directly. Items are stored straight into the store in one
transaction per request (the answer means "stored"), with source OFFLINE: they did not pass
through the gateway. `model_service` must be a registered model key; `project` must be the
key's own project (admin keys name any project). Optional extras beyond the Adaptive body:
`completion_id` (makes re-imports idempotent), `finish_reason`, `prompt_tokens`,
`completion_tokens`, `latency_ms`, `ttft_ms`. Images in messages are stored once per hash, as
for live traffic. In the bulk form each item gets its own result; bad items never sink good ones.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from ingest.auth import PrincipalDep
from ingest.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)
from ingest.vision import prepare_messages
from store.errors import AlreadyExistsError, NotFoundError, StoreError
from store.interactions import InteractionRecord
from store.keys import Principal
from store.logged_interactions import CatalogNames, read_catalog_names, write_logged_interactions
from store.types import utcnow

router = APIRouter(tags=["interactions"])

#: Most items one bulk request may carry (split bigger imports into several requests).
MAX_BULK_ITEMS = 10_000


class FeedbackIn(TypedDict):
    """A metric value for the logged completion (`metric` is the metric key)."""

    metric: str
    value: float | bool
    details: NotRequired[str | None]
    reason: NotRequired[str | None]
    id: NotRequired[str | None]


class LoggedInteractionIn(TypedDict):
    """One interaction as Adaptive's `interactions.create` sends it, plus optional extras.

    `model_service` is the key of a registered model; `project` defaults to the key's project.
    A TypedDict, not a model: validating it is ten times cheaper, which bulk imports need.
    """

    model_service: str
    project: NotRequired[str | None]
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    completion: str
    feedbacks: NotRequired[list[FeedbackIn] | None]
    user: NotRequired[Annotated[str, Field(max_length=256)] | None]
    session_id: NotRequired[uuid.UUID | None]
    created_at: NotRequired[datetime | None]
    labels: NotRequired[dict[str, str] | None]
    completion_id: NotRequired[uuid.UUID | None]
    finish_reason: NotRequired[Annotated[str, Field(max_length=64)] | None]
    prompt_tokens: NotRequired[Annotated[int, Field(ge=0)] | None]
    completion_tokens: NotRequired[Annotated[int, Field(ge=0)] | None]
    latency_ms: NotRequired[Annotated[float, Field(ge=0)] | None]
    ttft_ms: NotRequired[Annotated[float, Field(ge=0)] | None]


ITEM_ADAPTER = TypeAdapter(LoggedInteractionIn)


class BulkBody(TypedDict):
    interactions: list[LoggedInteractionIn]


#: Validates a whole bulk body straight from JSON bytes (the fast path, when every item is good).
BULK_ADAPTER = TypeAdapter(BulkBody)


class LoggedInteractionOut(BaseModel):
    completion_id: uuid.UUID
    session_id: uuid.UUID
    feedback_ids: list[uuid.UUID]


class BulkItemResult(BaseModel):
    index: int
    completion_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    feedback_ids: list[uuid.UUID] | None = None
    error: dict[str, Any] | None = None


class BulkResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BulkItemResult]


def uuid7_at(moment: datetime) -> uuid.UUID:
    """A UUIDv7 carrying `moment` (the interaction's own time, so ids sort by created_at)."""
    ms = max(0, int(moment.timestamp() * 1000))
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62)
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def _store_error(exc: StoreError) -> ApiError:
    if isinstance(exc, NotFoundError):
        return NotFound(str(exc))
    if isinstance(exc, AlreadyExistsError):
        return Conflict(str(exc))
    return BadRequest(str(exc))


def _validation_error(exc: ValidationError) -> Unprocessable:
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first.get("loc", ())) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return Unprocessable(message, param=param)


def build_record(
    item: LoggedInteractionIn, *, principal: Principal, names: CatalogNames
) -> tuple[InteractionRecord, list[dict[str, Any]]]:
    """Check one item against the key and the catalog; its record and feedback items."""
    project_key = item.get("project") or principal.project_key
    if project_key is None:
        raise BadRequest("`project` is required with an admin key", param="project")
    if not principal.is_admin and project_key != principal.project_key:
        raise NotFound(
            f"project {project_key} not found (this key belongs to project "
            f"{principal.project_key})",
            param="project",
        )
    project_id = names.projects.get(project_key)
    if project_id is None:
        raise NotFound(f"project {project_key} not found", param="project")
    model_key = item["model_service"]
    model_id = names.models.get(model_key)
    if model_id is None:
        raise NotFound(
            f"model {model_key} not found. Register it with "
            f"`interlog models add {model_key} --upstream URL`.",
            param="model_service",
        )
    created_at = item.get("created_at") or utcnow()
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    given_id = item.get("completion_id")
    completion_id = given_id or uuid7_at(created_at)
    prepared = prepare_messages(item["messages"], multimodal=True)
    record: InteractionRecord = {
        "completion_id": completion_id,  # type: ignore[typeddict-item]
        "project_id": project_id,
        "session_id": item.get("session_id") or uuid7_at(created_at),  # type: ignore[typeddict-item]
        "created_at": created_at,  # type: ignore[typeddict-item]
        "model_id": model_id,
        "user_id": item.get("user"),
        "labels": item.get("labels") or {},
        "messages": prepared.logged,
        "completion": item["completion"],
        "finish_reason": item.get("finish_reason"),
        "prompt_tokens": item.get("prompt_tokens"),
        "completion_tokens": item.get("completion_tokens"),
        "latency_ms": item.get("latency_ms"),
        "ttft_ms": item.get("ttft_ms"),
        "status": "ok",
        "source": "OFFLINE",
    }
    if prepared.attachments:
        record["attachments"] = prepared.attachments
    feedbacks = []
    for number, feedback in enumerate(item.get("feedbacks") or ()):
        value: dict[str, Any] = {k: v for k, v in feedback.items() if v is not None}
        if value.get("id") is None and given_id is not None:
            # A re-imported item gets the same feedback ids again: no duplicate values.
            value["id"] = f"import:{completion_id}:{number}"
        feedbacks.append(value)
    return record, feedbacks


async def _store(
    request: Request, records: Sequence[InteractionRecord], feedbacks: Sequence[list[Any]]
) -> list[Any]:
    return await asyncio.to_thread(
        write_logged_interactions, request.app.state.engine, records=records, feedbacks=feedbacks
    )


async def _read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > request.app.state.settings.max_body_bytes:
        raise PayloadTooLarge("request body too large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


_ITEM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ITEM_ADAPTER.json_schema()}},
    }
}


@router.post(
    "/api/v1/interactions", response_model=LoggedInteractionOut, openapi_extra=_ITEM_SCHEMA
)
async def create_interaction(request: Request, principal: PrincipalDep) -> LoggedInteractionOut:
    """Log one interaction made outside the gateway (Adaptive `interactions.create`)."""
    try:
        item = ITEM_ADAPTER.validate_python(await _read_json(request))
    except ValidationError as exc:
        raise _validation_error(exc) from None
    names = await asyncio.to_thread(read_catalog_names, request.app.state.engine)
    record, feedbacks = build_record(item, principal=principal, names=names)
    [result] = await _store(request, [record], [feedbacks])
    if result.error is not None:
        raise _store_error(result.error)
    return LoggedInteractionOut(
        completion_id=record["completion_id"],
        session_id=record["session_id"],
        feedback_ids=result.feedback_ids,
    )


_BULK_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["interactions"],
                    "properties": {
                        "interactions": {
                            "type": "array",
                            "maxItems": MAX_BULK_ITEMS,
                            "items": ITEM_ADAPTER.json_schema(),
                        }
                    },
                }
            }
        },
    }
}


@router.post("/api/v1/interactions/bulk", response_model=BulkResult, openapi_extra=_BULK_SCHEMA)
async def create_interactions_bulk(request: Request, principal: PrincipalDep) -> Response:
    """Log many interactions: `{"interactions": [...]}`; every item gets its own result."""
    raw_body = await request.body()
    if len(raw_body) > request.app.state.settings.max_body_bytes:
        raise PayloadTooLarge("request body too large")
    valid: list[LoggedInteractionIn] | None
    items: Any
    try:
        valid = items = BULK_ADAPTER.validate_json(raw_body)["interactions"]
    except ValidationError:
        valid = None  # some item is bad: validate one by one below to report each
        try:
            body = orjson.loads(raw_body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        items = body.get("interactions") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise BadRequest('expected {"interactions": [...]}', param="interactions")
    if len(items) > MAX_BULK_ITEMS:
        raise PayloadTooLarge(
            f"at most {MAX_BULK_ITEMS} interactions per request, got {len(items)}",
            param="interactions",
        )
    names = await asyncio.to_thread(read_catalog_names, request.app.state.engine)
    results: list[dict[str, Any]] = []
    positions: list[int] = []
    records: list[InteractionRecord] = []
    feedbacks: list[list[dict[str, Any]]] = []
    for index, raw in enumerate(items):
        try:
            item = raw if valid is not None else ITEM_ADAPTER.validate_python(raw)
            record, item_feedbacks = build_record(item, principal=principal, names=names)
        except (ValidationError, ApiError) as exc:
            error = _validation_error(exc) if isinstance(exc, ValidationError) else exc
            results.append({"index": index, "error": error.body()["error"]})
            continue
        positions.append(index)
        records.append(record)
        feedbacks.append(item_feedbacks)
        results.append({"index": index})
    stored = await _store(request, records, feedbacks) if records else []
    for index, record, outcome in zip(positions, records, stored, strict=True):
        result = results[index]
        if outcome.error is not None:
            result["error"] = _store_error(outcome.error).body()["error"]
        else:
            result["completion_id"] = record["completion_id"]
            result["session_id"] = record["session_id"]
            result["feedback_ids"] = outcome.feedback_ids
            result["error"] = None
    rejected = sum(1 for result in results if result.get("error") is not None)
    answer = {"accepted": len(results) - rejected, "rejected": rejected, "results": results}
    return Response(orjson.dumps(answer), media_type="application/json")
