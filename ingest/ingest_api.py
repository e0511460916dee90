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
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class FeedbackIn(BaseModel):
    """A metric value for the logged completion (`metric` is the metric key)."""

    model_config = ConfigDict(extra="ignore")

    metric: str
    value: float | bool
    details: str | None = None
    reason: str | None = None
    id: str | None = None


class LoggedInteractionIn(BaseModel):
    """One interaction as Adaptive's `interactions.create` sends it, plus optional extras."""

    model_config = ConfigDict(extra="ignore")

    model_service: str = Field(description="Key of a registered model.")
    project: str | None = Field(default=None, description="Project key (default: the key's).")
    messages: list[dict[str, Any]] = Field(min_length=1)
    completion: str
    feedbacks: list[FeedbackIn] | None = None
    user: str | None = Field(default=None, max_length=256)
    session_id: uuid.UUID | None = None
    created_at: datetime | None = None
    labels: dict[str, str] | None = None
    completion_id: uuid.UUID | None = None
    finish_reason: str | None = Field(default=None, max_length=64)
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
                for k, v in value.items()
            }
        return value


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
    project_key = item.project or principal.project_key
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
    model_id = names.models.get(item.model_service)
    if model_id is None:
        raise NotFound(
            f"model {item.model_service} not found. Register it with "
            f"`interlog models add {item.model_service} --upstream URL`.",
            param="model_service",
        )
    created_at = item.created_at or utcnow()
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    completion_id = item.completion_id or uuid7_at(created_at)
    prepared = prepare_messages(item.messages, multimodal=True)
    record: InteractionRecord = {
        "completion_id": str(completion_id),
        "project_id": project_id,
        "session_id": str(item.session_id or uuid7_at(created_at)),
        "created_at": created_at.isoformat(),
        "model_id": model_id,
        "user_id": item.user,
        "labels": item.labels or {},
        "messages": prepared.logged,
        "completion": item.completion,
        "finish_reason": item.finish_reason,
        "prompt_tokens": item.prompt_tokens,
        "completion_tokens": item.completion_tokens,
        "latency_ms": item.latency_ms,
        "ttft_ms": item.ttft_ms,
        "status": "ok",
        "source": "OFFLINE",
    }
    if prepared.attachments:
        record["attachments"] = prepared.attachments
    feedbacks = []
    for number, feedback in enumerate(item.feedbacks or ()):
        value = feedback.model_dump(exclude_none=True)
        if feedback.id is None and item.completion_id is not None:
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
        "content": {"application/json": {"schema": LoggedInteractionIn.model_json_schema()}},
    }
}


@router.post(
    "/api/v1/interactions", response_model=LoggedInteractionOut, openapi_extra=_ITEM_SCHEMA
)
async def create_interaction(request: Request, principal: PrincipalDep) -> LoggedInteractionOut:
    """Log one interaction made outside the gateway (Adaptive `interactions.create`)."""
    try:
        item = LoggedInteractionIn.model_validate(await _read_json(request))
    except ValidationError as exc:
        raise _validation_error(exc) from None
    names = await asyncio.to_thread(read_catalog_names, request.app.state.engine)
    record, feedbacks = build_record(item, principal=principal, names=names)
    [result] = await _store(request, [record], [feedbacks])
    if result.error is not None:
        raise _store_error(result.error)
    return LoggedInteractionOut(
        completion_id=uuid.UUID(record["completion_id"]),
        session_id=uuid.UUID(record["session_id"]),
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
                            "items": LoggedInteractionIn.model_json_schema(),
                        }
                    },
                }
            }
        },
    }
}


@router.post("/api/v1/interactions/bulk", response_model=BulkResult, openapi_extra=_BULK_SCHEMA)
async def create_interactions_bulk(request: Request, principal: PrincipalDep) -> BulkResult:
    """Log many interactions: `{"interactions": [...]}`; every item gets its own result."""
    body = await _read_json(request)
    items = body.get("interactions") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise BadRequest('expected {"interactions": [...]}', param="interactions")
    if len(items) > MAX_BULK_ITEMS:
        raise PayloadTooLarge(
            f"at most {MAX_BULK_ITEMS} interactions per request, got {len(items)}",
            param="interactions",
        )
    names = await asyncio.to_thread(read_catalog_names, request.app.state.engine)
    results: list[BulkItemResult] = []
    positions: list[int] = []
    records: list[InteractionRecord] = []
    feedbacks: list[list[dict[str, Any]]] = []
    for index, raw in enumerate(items):
        try:
            item = LoggedInteractionIn.model_validate(raw)
            record, item_feedbacks = build_record(item, principal=principal, names=names)
        except ValidationError as exc:
            results.append(
                BulkItemResult(index=index, error=_validation_error(exc).body()["error"])
            )
            continue
        except ApiError as exc:
            results.append(BulkItemResult(index=index, error=exc.body()["error"]))
            continue
        positions.append(index)
        records.append(record)
        feedbacks.append(item_feedbacks)
        results.append(BulkItemResult(index=index))
    stored = await _store(request, records, feedbacks) if records else []
    for index, record, outcome in zip(positions, records, stored, strict=True):
        result = results[index]
        if outcome.error is not None:
            result.error = _store_error(outcome.error).body()["error"]
        else:
            result.completion_id = uuid.UUID(record["completion_id"])
            result.session_id = uuid.UUID(record["session_id"])
            result.feedback_ids = outcome.feedback_ids
    rejected = sum(1 for result in results if result.error is not None)
    return BulkResult(accepted=len(results) - rejected, rejected=rejected, results=results)
