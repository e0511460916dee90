"""Writing interactions: batched, idempotent on completion_id, with labels and attachments.

Records are plain JSON-able dicts (the journal's format): UUIDs and timestamps may be strings.
The hot path inserts at the driver level with ON CONFLICT DO NOTHING on both backends
(store.bulk_insert: sqlite3 executemany, psycopg COPY), so replaying a batch after a crash
creates no duplicates.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from sqlalchemy import Connection, Engine, Table

from store.bulk_insert import insert_ignoring_conflicts
from store.models import Attachment, Interaction, InteractionLabel
from store.types import utcnow

INTERACTION_TABLE: Table = Interaction.__table__  # type: ignore[attr-defined]
LABEL_TABLE: Table = InteractionLabel.__table__  # type: ignore[attr-defined]
ATTACHMENT_TABLE: Table = Attachment.__table__  # type: ignore[attr-defined]


class AttachmentRecord(TypedDict):
    sha256: str
    mime_type: str
    size_bytes: int
    data_b64: str


class InteractionRecord(TypedDict):
    """One interaction as the journal and the writer carry it."""

    completion_id: str
    project_id: int
    session_id: str
    created_at: str
    request_id: NotRequired[str | None]
    choice_index: NotRequired[int]
    model_id: NotRequired[int | None]
    ab_test_id: NotRequired[int | None]
    ab_variant: NotRequired[str | None]
    replica: NotRequired[str | None]
    user_id: NotRequired[str | None]
    labels: NotRequired[dict[str, str]]
    messages: NotRequired[list[dict[str, Any]]]
    params: NotRequired[dict[str, Any]]
    completion: NotRequired[str | None]
    finish_reason: NotRequired[str | None]
    prompt_tokens: NotRequired[int | None]
    completion_tokens: NotRequired[int | None]
    ttft_ms: NotRequired[float | None]
    latency_ms: NotRequired[float | None]
    status: NotRequired[str]
    error: NotRequired[str | None]
    source: NotRequired[str]
    attachments: NotRequired[list[AttachmentRecord]]


_DEFAULTS: dict[str, Any] = {
    "request_id": None,
    "choice_index": 0,
    "model_id": None,
    "ab_test_id": None,
    "ab_variant": None,
    "replica": None,
    "user_id": None,
    "labels": {},
    "messages": [],
    "params": {},
    "completion": None,
    "finish_reason": None,
    "prompt_tokens": None,
    "completion_tokens": None,
    "ttft_ms": None,
    "latency_ms": None,
    "status": "ok",
    "error": None,
    "source": "LIVE",
}


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if value is None:
        return utcnow()
    return datetime.fromisoformat(str(value))


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(_DEFAULTS)
    row.update(record)
    row["completion_id"] = _as_uuid(record["completion_id"])
    row["session_id"] = _as_uuid(record["session_id"])
    row["created_at"] = _as_datetime(record.get("created_at"))
    for name in ("labels", "params"):
        if row[name] is None:
            row[name] = {}
    if row["messages"] is None:
        row["messages"] = []
    return row


def _insert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    insert_ignoring_conflicts(connection, table, rows)


def insert_interactions(connection: Connection, records: Iterable[Mapping[str, Any]]) -> int:
    """Insert a batch inside the caller's transaction; existing completion_ids are skipped."""
    interactions: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    attachments: dict[str, dict[str, Any]] = {}
    for record in records:
        row = _row(record)
        interactions.append(row)
        for key, value in (row["labels"] or {}).items():
            labels.append(
                {
                    "completion_id": row["completion_id"],
                    "project_id": row["project_id"],
                    "key": key,
                    "value": value,
                }
            )
        for attachment in record.get("attachments") or ():
            attachments[attachment["sha256"]] = {
                "sha256": attachment["sha256"],
                "mime_type": attachment["mime_type"],
                "size_bytes": attachment["size_bytes"],
                "data": base64.b64decode(attachment["data_b64"]),
                "created_at": row["created_at"],
            }
    _insert(connection, ATTACHMENT_TABLE, list(attachments.values()))
    _insert(connection, INTERACTION_TABLE, interactions)
    _insert(connection, LABEL_TABLE, labels)
    return len(interactions)


def write_interactions(engine: Engine, records: Iterable[Mapping[str, Any]]) -> int:
    """Write a batch in one transaction; idempotent on completion_id. Returns the batch size."""
    with engine.begin() as connection:
        return insert_interactions(connection, records)
