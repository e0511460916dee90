"""Writing interactions: batched, idempotent on completion_id, with labels and attachments.

Records are plain JSON-able dicts (the journal's format): UUIDs and timestamps may be objects or
strings. Rows are made from them one at a time while the driver consumes them and inserted at
the driver level, existing keys skipped, on both backends (store.bulk_insert: multi-row INSERTs
on SQLite, binary COPY on PostgreSQL), so replaying a batch after a crash creates no duplicates.
SQLite writers take turns in-process (write_transaction).
"""

from __future__ import annotations

import base64
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from sqlalchemy import Connection, Engine, Table

from store.bulk_insert import (
    WRITER_KINDS,
    Converter,
    LazyRows,
    column_converter,
    insert_ignoring_conflicts,
    insert_rows_ignoring_conflicts,
    row_builder,
    writer_kind,
)
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


#: Record -> row tuple, per kind of writer (store.bulk_insert.row_builder).
_BUILDERS = {kind: row_builder(INTERACTION_TABLE, kind, _DEFAULTS) for kind in WRITER_KINDS}
_LABEL_COLUMNS = [column.name for column in LABEL_TABLE.columns]
assert _LABEL_COLUMNS == ["completion_id", "project_id", "key", "value"], _LABEL_COLUMNS


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _attachment_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    attachments: dict[str, dict[str, Any]] = {}
    for record in records:
        for attachment in record.get("attachments") or ():
            attachments[attachment["sha256"]] = {
                "sha256": attachment["sha256"],
                "mime_type": attachment["mime_type"],
                "size_bytes": attachment["size_bytes"],
                "data": base64.b64decode(attachment["data_b64"]),
                "created_at": _as_datetime(record["created_at"]),
            }
    return list(attachments.values())


def _label_rows(
    records: Sequence[Mapping[str, Any]], completion_id: Converter
) -> Iterator[tuple[Any, ...]]:
    for record in records:
        labels = record.get("labels")
        if labels:
            ident = completion_id(record["completion_id"])
            project_id = record["project_id"]
            for key, value in labels.items():
                yield (ident, project_id, key, value)


def insert_interactions(connection: Connection, records: Iterable[Mapping[str, Any]]) -> int:
    """Insert a batch inside the caller's transaction; existing completion_ids are skipped."""
    now = utcnow()  # for records without created_at
    batch = [
        record if record.get("created_at") is not None else {**record, "created_at": now}
        for record in records
    ]
    if not batch:
        return 0
    kind = writer_kind(connection)
    build = _BUILDERS[kind]
    completion_id = column_converter(INTERACTION_TABLE, "completion_id", kind)
    if any(record.get("attachments") for record in batch):
        insert_ignoring_conflicts(connection, ATTACHMENT_TABLE, _attachment_rows(batch))
    insert_rows_ignoring_conflicts(
        connection, INTERACTION_TABLE, LazyRows(lambda: map(build, batch))
    )
    if any(record.get("labels") for record in batch):
        labels = LazyRows(lambda: _label_rows(batch, completion_id))
        insert_rows_ignoring_conflicts(connection, LABEL_TABLE, labels)
    return len(batch)


_write_locks: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_write_locks_lock = threading.Lock()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """`engine.begin()`, one transaction at a time per SQLite engine.

    SQLite has a single writer: a transaction that finds the database locked sleeps in SQLite's
    busy handler (1 to 100 ms at a time) instead of waking up as soon as it is free, which
    halves the throughput of concurrent bulk writes. Waiting on a lock here wakes at once.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            yield connection
        return
    with _write_locks_lock:
        lock = _write_locks.setdefault(engine, threading.RLock())
    with lock, engine.begin() as connection:
        yield connection


def write_interactions(engine: Engine, records: Iterable[Mapping[str, Any]]) -> int:
    """Write a batch in one transaction; idempotent on completion_id. Returns the batch size."""
    with write_transaction(engine) as connection:
        return insert_interactions(connection, records)
