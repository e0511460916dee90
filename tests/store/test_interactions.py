"""Batched interaction writes are idempotent on completion_id and carry labels and images."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from store.catalog import create_project
from store.db import create_store_engine
from store.ids import uuid7
from store.interactions import (
    LABEL_TABLE,
    insert_interactions,
    write_interactions,
    write_transaction,
)
from store.models import Attachment, Interaction, InteractionLabel
from store.types import utcnow
from tests.store.records import interaction_record

REFUSED = (IntegrityError, sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def _count(engine: Engine, column: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count(column))).scalar_one())


def test_replaying_a_batch_creates_no_duplicates(engine: Engine) -> None:
    project = create_project(engine, key="p")
    batch = [interaction_record(project.id or 0) for _ in range(50)]
    write_interactions(engine, batch)
    write_interactions(engine, batch)
    write_interactions(engine, [*batch[:10], interaction_record(project.id or 0)])
    assert _count(engine, Interaction.completion_id) == 51
    assert _count(engine, InteractionLabel.key) == 102


def test_labels_are_written_only_with_their_interaction(engine: Engine) -> None:
    """interaction_label has no foreign keys (migration 0002): its rows are consistent because
    they go in the interaction's own transaction. A batch whose interactions the database
    refuses (here: one without the session id the table requires) leaves no label behind."""
    project = create_project(engine, key="p")
    good = interaction_record(project.id or 0)
    refused = interaction_record(project.id or 0, session_id=None)
    with pytest.raises(REFUSED):  # raised by the driver: the writes bypass SQLAlchemy
        write_interactions(engine, [good, refused])
    assert _count(engine, Interaction.completion_id) == 0
    assert _count(engine, InteractionLabel.key) == 0
    write_interactions(engine, [good])
    with engine.connect() as connection:
        rows = connection.execute(
            select(LABEL_TABLE.c.project_id, LABEL_TABLE.c.key, LABEL_TABLE.c.value)
        ).all()
    assert sorted(rows) == [(project.id, "env", "prod"), (project.id, "team", "a")]


def test_images_are_stored_once_per_content_hash(engine: Engine) -> None:
    project = create_project(engine, key="p")
    data = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    digest = hashlib.sha256(data).hexdigest()
    attachment = {
        "sha256": digest,
        "mime_type": "image/png",
        "size_bytes": len(data),
        "data_b64": base64.b64encode(data).decode(),
    }
    write_interactions(
        engine,
        [interaction_record(project.id or 0, attachments=[attachment]) for _ in range(3)],
    )
    with engine.connect() as connection:
        rows = connection.execute(select(Attachment.sha256, Attachment.data)).all()  # type: ignore[call-overload]
    assert [(row[0], bytes(row[1])) for row in rows] == [(digest, data)]


def test_concurrent_batches_all_land_and_replays_stay_single(engine: Engine) -> None:
    project = create_project(engine, key="p")
    batches = [[interaction_record(project.id or 0) for _ in range(200)] for _ in range(4)]
    # Half of each batch again inside another: COPY meets existing rows on PostgreSQL.
    batches += [batches[0][:100] + batches[1][100:], batches[2][50:] + batches[3][:50]]
    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        list(pool.map(lambda batch: write_interactions(engine, batch), batches))
    assert _count(engine, Interaction.completion_id) == 800
    assert _count(engine, InteractionLabel.key) == 1600


def test_uuids_and_times_may_come_as_objects_or_text(engine: Engine) -> None:
    project = create_project(engine, key="p")
    ident = uuid7()
    records = [
        interaction_record(
            project.id or 0, completion_id=ident, session_id=uuid.uuid4(), created_at=utcnow()
        ),
        interaction_record(project.id or 0, completion_id=str(uuid7()).upper(), created_at=None),
        interaction_record(project.id or 0, completion_id=uuid7().hex, labels=None, messages=None),
    ]
    write_interactions(engine, records)
    with engine.connect() as connection:
        rows = connection.execute(
            select(Interaction.completion_id, Interaction.labels, Interaction.messages)  # type: ignore[call-overload]
        ).all()
    assert ident in {row[0] for row in rows} and len(rows) == 3
    assert sorted(len(row[1]) for row in rows) == [0, 2, 2]
    assert sorted(len(row[2]) for row in rows) == [0, 1, 1]


_TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def test_sqlite_writers_in_other_processes_wait_for_an_open_write(sqlite_url: str) -> None:
    """`interlog serve --workers N` on SQLite: a write transaction holds an flock beside the
    database, so another process's writer waits in the kernel (woken at once) instead of in
    SQLite's busy handler (sleeping 1 to 100 ms between tries)."""
    engine = create_store_engine(sqlite_url)
    lock_file = f"{make_url(sqlite_url).database}-interlog-write.lock"

    def other_process_sees() -> str:
        command = [sys.executable, "-c", _TRY_LOCK, lock_file]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    try:
        project = create_project(engine, key="p")
        with write_transaction(engine) as connection:
            insert_interactions(connection, [interaction_record(project.id or 0)])
            assert other_process_sees() == "busy"
        assert other_process_sees() == "free"
        assert _count(engine, Interaction.completion_id) == 1
    finally:
        engine.dispose()
