"""Writing interactions: batched, idempotent on completion_id, with labels and attachments.

Records are plain JSON-able dicts (the journal's format): UUIDs and timestamps may be objects or
strings. Rows are made from them one at a time while the driver consumes them and inserted at
the driver level, existing keys skipped, on both backends (store.bulk_insert: multi-row INSERTs
on SQLite, binary COPY on PostgreSQL), so replaying a batch after a crash creates no duplicates.
SQLite writers take turns, across threads and processes (write_transaction).
"""

from __future__ import annotations

import base64
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, NotRequired, TypedDict

from sqlalchemy import Connection, Engine, Table

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads only
    fcntl = None  # type: ignore[assignment]

from store.bulk_insert import (
    WRITER_KINDS,
    Converter,
    LazyRows,
    Row,
    build_rows,
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
    tool_calls: NotRequired[list[dict[str, Any]] | None]
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
    "tool_calls": None,
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
_COMPLETION_ID_AT = [column.name for column in INTERACTION_TABLE.columns].index("completion_id")
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
    """Insert a batch inside the caller's transaction; existing completion_ids are skipped.

    Rows are made while the driver consumes them (the journal writer's batches); see
    `prepare_rows` for making them before the transaction instead."""
    batch = _with_created_at(records)
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


def _with_created_at(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    now = utcnow()  # for records without created_at
    return [
        record if record.get("created_at") is not None else {**record, "created_at": now}
        for record in records
    ]


@dataclass(frozen=True)
class PreparedRows:
    """A batch's rows for one kind of writer (store.bulk_insert), made before its transaction.

    On SQLite only one transaction writes at a time, across processes (write_transaction):
    making rows outside it leaves that turn to the database's own work, so several gateway
    processes overlap more. Per record, so a caller can still leave records out."""

    kind: str
    records: list[Mapping[str, Any]]
    interactions: list[Row]
    labels: list[list[Row]]


def prepare_rows(records: Sequence[Mapping[str, Any]], kind: str) -> PreparedRows:
    """The rows of RECORDS for a writer of KIND (`writer_kind(engine)`)."""
    batch = _with_created_at(records)
    rows = list(map(_BUILDERS[kind], batch))
    labels = []
    for record, row in zip(batch, rows, strict=True):
        ident, project_id = row[_COMPLETION_ID_AT], record["project_id"]  # converted once
        labels.append([(ident, project_id, k, v) for k, v in (record.get("labels") or {}).items()])
    return PreparedRows(kind=kind, records=batch, interactions=rows, labels=labels)


class RowBatch(NamedTuple):
    """Everything one batch inserts, as driver-ready tuples (plain values only, so it can be
    handed to another process: store.sqlite_writer)."""

    attachments: list[Row]
    interactions: list[Row]
    labels: list[Row]


def row_batch(rows: PreparedRows, keep: Sequence[bool] | None = None) -> RowBatch:
    """The rows of the records of ROWS whose KEEP is true (default: all)."""
    chosen = range(len(rows.records)) if keep is None else [i for i, k in enumerate(keep) if k]
    records = [rows.records[i] for i in chosen]
    attachments: list[Row] = []
    if any(record.get("attachments") for record in records):
        attachments = build_rows(ATTACHMENT_TABLE, rows.kind, _attachment_rows(records))
    return RowBatch(
        attachments=attachments,
        interactions=[rows.interactions[i] for i in chosen],
        labels=[row for i in chosen for row in rows.labels[i]],
    )


def insert_row_batch(connection: Connection, batch: RowBatch) -> int:
    """Insert BATCH in the caller's transaction; existing completion_ids are skipped (their
    labels and known images too). Returns how many interactions it held."""
    if batch.attachments:
        insert_rows_ignoring_conflicts(connection, ATTACHMENT_TABLE, batch.attachments)
    if batch.interactions:
        insert_rows_ignoring_conflicts(connection, INTERACTION_TABLE, batch.interactions)
    if batch.labels:
        insert_rows_ignoring_conflicts(connection, LABEL_TABLE, batch.labels)
    return len(batch.interactions)


def insert_prepared(
    connection: Connection, rows: PreparedRows, keep: Sequence[bool] | None = None
) -> int:
    """Insert prepared rows in the caller's transaction (only records whose KEEP is true);
    existing completion_ids are skipped. Returns how many records were written."""
    return insert_row_batch(connection, row_batch(rows, keep))


class _SqliteWriteLock:
    """One writer at a time on a SQLite file: a lock between this process's threads, and an
    flock on a file beside the database between processes (`interlog serve --workers N`).

    SQLite makes a second writer sleep in its busy handler (1, 2, 5, 10, ... ms) and retry,
    so it wakes up long after the first has finished; a thread waiting on a lock, or a
    process waiting in flock, wakes at once. The flock is released when its process dies."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.RLock()
        self._path = f"{database}-interlog-write.lock" if database else None
        self._fd: int | None = None
        self._pid = 0
        self._depth = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._depth == 0 and self._path is not None and fcntl is not None:
                if self._fd is None or self._pid != os.getpid():  # a forked child: own fd
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        self._depth += 1

    def __exit__(self, *_: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None and fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_write_locks: weakref.WeakKeyDictionary[Engine, _SqliteWriteLock] = weakref.WeakKeyDictionary()
_write_locks_lock = threading.Lock()


def file_of(engine: Engine) -> str | None:
    """The absolute path of ENGINE's SQLite file; None in memory or with URL options."""
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query:
        return None
    return os.path.abspath(database)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """`engine.begin()`, one transaction at a time per SQLite file (_SqliteWriteLock)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            yield connection
        return
    with _write_locks_lock:
        lock = _write_locks.get(engine)
        if lock is None:
            lock = _write_locks[engine] = _SqliteWriteLock(file_of(engine))
    with lock, engine.begin() as connection:
        yield connection


def write_interactions(engine: Engine, records: Iterable[Mapping[str, Any]]) -> int:
    """Write a batch in one transaction; idempotent on completion_id. Returns the batch size."""
    with write_transaction(engine) as connection:
        return insert_interactions(connection, records)
