"""External logging: POST /api/v1/interactions (Adaptive §5.2 body) and its bulk form.

For applications that call models directly. Items are stored straight into the store in one
transaction per request (the answer means "stored"), with source OFFLINE: they did not pass
through the gateway. `model_service` must be a registered model key; `project` must be the
key's own project (admin keys name any project). Optional extras beyond the Adaptive body:
`completion_id` (makes re-imports idempotent), `finish_reason`, `prompt_tokens`,
`completion_tokens`, `latency_ms`, `ttft_ms`. Images in messages are stored once per hash, as
for live traffic. In the bulk form each item gets its own result; bad items never sink good ones.
The body schema and its checks live in ingest.logged_items; a bulk request is parsed, checked
and stored in one worker thread, so the event loop stays free meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import Engine

from ingest.auth import PrincipalDep
from ingest.errors import ApiError, BadRequest, PayloadTooLarge, store_api_error
from ingest.logged_items import ITEM_ADAPTER, prepare_item
from store.bulk_insert import writer_kind
from store.interactions import InteractionRecord, RowBatch, prepare_rows
from store.keys import Principal
from store.logged_interactions import (
    LoggedResult,
    read_catalog_names,
    write_logged_interactions,
)
from store.settings import Settings
from store.types import utcnow

router = APIRouter(tags=["interactions"])

#: Most items one bulk request may carry (split bigger imports into several requests).
MAX_BULK_ITEMS = 10_000


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


def _parse(body: bytes, limit: int) -> Any:
    if len(body) > limit:
        raise PayloadTooLarge("request body too large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def _log_one(engine: Engine, principal: Principal, body: Any) -> LoggedInteractionOut:
    names = read_catalog_names(engine)
    record, feedbacks = prepare_item(body, principal=principal, names=names)
    [result] = write_logged_interactions(
        engine, records=[record], feedbacks=[feedbacks], chosen=[_gives_id(body)]
    )
    if result.error is not None:
        raise store_api_error(result.error)
    return LoggedInteractionOut(
        completion_id=record["completion_id"],
        session_id=record["session_id"],
        feedback_ids=result.feedback_ids or [],
    )


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
    body = _parse(await request.body(), request.app.state.settings.max_body_bytes)
    return await asyncio.to_thread(_log_one, request.app.state.engine, principal, body)


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
    body = await request.body()
    state = request.app.state
    writer = getattr(state, "sqlite_writer", None)
    answer = await asyncio.to_thread(
        _log_many, state.engine, state.settings, principal, body, writer and writer.write
    )
    return Response(answer, media_type="application/json")


#: Held while a bulk request does its Python work in this process (parse, check, make rows,
#: and later its answer), not while it writes. Several requests doing that work at once only
#: took turns on the GIL (every 5 ms, each evicting the others' data from the caches); one at
#: a time, with the others waiting here, cost less CPU per interaction and gave 15-28% more
#: throughput into SQLite and 5-39% into PostgreSQL (bench/ingest.py, alternating runs). The
#: write (the SQLite writer process, or PostgreSQL's COPY) overlaps the next request's parse.
_BULK_PYTHON_TURN = threading.Lock()


def _log_many(
    engine: Engine,
    settings: Settings,
    principal: Principal,
    body: bytes,
    write_rows: Callable[[RowBatch], object] | None = None,
) -> bytes:
    """The bulk endpoint's work, in a worker thread: parse, check, store; the answer's JSON.

    WRITE_ROWS: see store.logged_interactions.write_logged_interactions (on SQLite, the writer
    process)."""
    with _BULK_PYTHON_TURN:
        checked = _checked_items(engine, settings, principal, body)
        rows = prepare_rows(checked.records, writer_kind(engine))
    stored = (
        write_logged_interactions(
            engine,
            records=checked.records,
            feedbacks=checked.feedbacks,
            rows=rows,
            write_rows=write_rows,
            chosen=checked.chosen,
        )
        if checked.records
        else []
    )
    with _BULK_PYTHON_TURN:
        return _answer(checked, stored)


class _CheckedItems(NamedTuple):
    """A bulk body, checked: each good item's position, record and feedbacks, each bad item's
    error, and how many items there were."""

    items: int
    positions: list[int]
    records: list[InteractionRecord]
    feedbacks: list[Sequence[dict[str, Any]]]
    errors: dict[int, dict[str, Any]]
    chosen: list[bool]  # the client gave the item's completion_id


def _checked_items(
    engine: Engine, settings: Settings, principal: Principal, body: bytes
) -> _CheckedItems:
    """Parse and check a bulk body (label limits per item: a bad item gets its own error)."""
    parsed = _parse(body, settings.max_body_bytes)
    items = parsed.get("interactions") if isinstance(parsed, Mapping) else None
    if not isinstance(items, list):
        raise BadRequest('expected {"interactions": [...]}', param="interactions")
    if len(items) > MAX_BULK_ITEMS:
        raise PayloadTooLarge(
            f"at most {MAX_BULK_ITEMS} interactions per request, got {len(items)}",
            param="interactions",
        )
    names = read_catalog_names(engine)
    now = utcnow()  # the created_at of items without one
    errors: dict[int, dict[str, Any]] = {}
    positions: list[int] = []
    records: list[InteractionRecord] = []
    feedbacks: list[Sequence[dict[str, Any]]] = []
    chosen: list[bool] = []
    for index, raw in enumerate(items):
        items[index] = None  # the parsed item itself is not needed past here: fewer live objects
        try:
            record, item_feedbacks = prepare_item(
                raw, principal=principal, names=names, now=now, settings=settings
            )
        except ApiError as exc:
            errors[index] = exc.body()["error"]
            continue
        positions.append(index)
        records.append(record)
        feedbacks.append(item_feedbacks)
        chosen.append(_gives_id(raw))
    return _CheckedItems(len(items), positions, records, feedbacks, errors, chosen)


def _gives_id(item: Any) -> bool:
    """Whether the client chose the item's completion_id (ids made here are unique)."""
    return isinstance(item, Mapping) and item.get("completion_id") is not None


def _answer(checked: _CheckedItems, stored: list[LoggedResult]) -> bytes:
    """The bulk answer's JSON: a result per item, in order."""
    errors = checked.errors
    # The answer's objects are made last, so they live only while being dumped.
    results: list[dict[str, Any] | None] = [None] * checked.items
    for index, record, outcome in zip(checked.positions, checked.records, stored, strict=True):
        if outcome.error is not None:
            errors[index] = store_api_error(outcome.error).body()["error"]
            continue
        results[index] = {
            "index": index,
            "completion_id": record["completion_id"],
            "session_id": record["session_id"],
            "feedback_ids": outcome.feedback_ids or (),
            "error": None,
        }
    for index, error in errors.items():
        results[index] = {"index": index, "error": error}
    rejected = len(errors)
    answer = {"accepted": checked.items - rejected, "rejected": rejected, "results": results}
    return orjson.dumps(answer)
