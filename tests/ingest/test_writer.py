"""The background writer: batches into the store, idempotent replay, refused records set aside."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine, func, select

from ingest.journal import Journal
from ingest.telemetry import Telemetry, render_prometheus
from ingest.writer import JournalWriter
from store.catalog import create_project
from store.db_errors import is_transient
from store.ids import uuid7
from store.interactions import INTERACTION_TABLE, LABEL_TABLE


def _record(project_id: int, n: int = 0) -> dict[str, Any]:
    return {
        "completion_id": str(uuid7()),
        "project_id": project_id,
        "session_id": str(uuid.uuid4()),
        "created_at": "2026-01-01T00:00:00+00:00",
        "labels": {"n": str(n)},
        "messages": [{"role": "user", "content": f"q{n}"}],
        "completion": f"a{n}",
    }


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


async def _run_writer(journal: Journal, engine: Engine, records: list[dict[str, Any]]) -> Any:
    writer = JournalWriter(journal, engine, batch_size=4, interval=0.01)
    await writer.start()
    await journal.append(records)
    await writer.ensure_written([uuid.UUID(r["completion_id"]) for r in records], timeout=20)
    stats = writer.stats
    metrics = render_prometheus(Telemetry(), writer)
    await writer.stop()
    return stats, metrics


def test_writer_stores_batches_and_reports_them(engine: Engine, tmp_path: Path) -> None:
    project = create_project(engine, key="p")
    assert project.id is not None
    records = [_record(project.id, n) for n in range(10)]
    journal = Journal(tmp_path / "journal", fsync="batch")
    journal.open()
    stats, metrics = asyncio.run(_run_writer(journal, engine, records))
    assert journal.unsynced == 0  # INTERLOG_JOURNAL_FSYNC=batch: the writer fsynced the appends
    assert _count(engine, INTERACTION_TABLE) == 10
    assert _count(engine, LABEL_TABLE) == 10
    assert stats.written == 10 and stats.batches >= 3  # at most 4 per batch
    assert "interlog_interactions_written_total 10" in metrics
    assert "interlog_journal_depth 0" in metrics
    assert list((tmp_path / "journal").iterdir()) == []  # everything stored: the journal is gone


def test_replaying_a_journal_twice_creates_no_duplicates(engine: Engine, tmp_path: Path) -> None:
    project = create_project(engine, key="p")
    assert project.id is not None
    records = [_record(project.id, n) for n in range(6)]
    saved = tmp_path / "saved.jsonl"
    saved.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    for _ in range(2):
        # A dead process's journal holding the same entries, claimed by a new process.
        orphan = tmp_path / "journal" / "deadhost-1-abcdef12"
        orphan.mkdir(parents=True)
        shutil.copy(saved, orphan / "seg-000000000001.jsonl")
        journal = Journal(tmp_path / "journal", fsync="never")
        journal.open()
        assert journal.replayed == 6
        asyncio.run(_run_writer(journal, engine, []))
        assert journal.depth == 0
    assert _count(engine, INTERACTION_TABLE) == 6
    assert _count(engine, LABEL_TABLE) == 6


def test_a_record_the_store_refuses_is_set_aside_and_the_rest_stored(
    engine: Engine, tmp_path: Path
) -> None:
    project = create_project(engine, key="p")
    assert project.id is not None
    good = [_record(project.id, n) for n in range(5)]
    bad = {**_record(project.id, 99), "session_id": None}  # the table requires a session id
    journal = Journal(tmp_path / "journal", fsync="never")
    journal.open()
    rejected_path = journal.rejected_path
    stats, _ = asyncio.run(_run_writer(journal, engine, [*good[:2], bad, *good[2:]]))
    assert _count(engine, INTERACTION_TABLE) == 5
    assert stats.failed == 1 and stats.written == 5
    assert stats.last_error and "null" in stats.last_error.lower()
    [kept] = [orjson.loads(line) for line in rejected_path.read_bytes().splitlines()]
    assert kept["record"] == bad


def test_only_an_unreachable_or_busy_store_counts_as_transient() -> None:
    assert is_transient(psycopg.OperationalError("server closed the connection"))
    assert is_transient(psycopg.errors.SerializationFailure("could not serialize"))
    assert is_transient(psycopg.errors.AdminShutdown("terminating connection"))
    assert is_transient(psycopg.errors.UndefinedTable("not migrated yet"))  # the store's state
    assert is_transient(sqlite3.OperationalError("database is locked"))
    assert not is_transient(psycopg.errors.ForeignKeyViolation("no such project"))
    # psycopg files this one under OperationalError, yet no retry can ever store the row.
    assert not is_transient(psycopg.errors.ProgramLimitExceeded("index row size exceeds"))
    assert not is_transient(psycopg.errors.NumericValueOutOfRange("integer out of range"))
    assert not is_transient(sqlite3.IntegrityError("FOREIGN KEY constraint failed"))
    assert not is_transient(sqlite3.DataError("string or blob too big"))


def test_records_over_an_index_limit_are_set_aside_and_the_rest_stored(
    engine: Engine, tmp_path: Path
) -> None:
    """A label value larger than PostgreSQL's btree index can hold (ProgramLimitExceeded) was
    retried forever and stopped the writer for good; now each such record is found by
    splitting the batch and set aside. SQLite has no such limit and stores everything."""
    project = create_project(engine, key="p")
    assert project.id is not None
    records = [_record(project.id, n) for n in range(40)]
    huge = "".join(uuid.uuid4().hex for _ in range(100))  # 3,200 bytes that do not compress
    for n in (7, 31):
        records[n]["labels"] = {"n": str(n), "prompt": huge}
    journal = Journal(tmp_path / "journal", fsync="never")
    journal.open()

    async def run() -> Any:
        writer = JournalWriter(journal, engine, batch_size=16, interval=0.01)
        await writer.start()
        await journal.append(records)
        await writer.ensure_written([uuid.UUID(r["completion_id"]) for r in records], timeout=30)
        await writer.stop()
        return writer.stats

    stats = asyncio.run(run())
    if engine.dialect.name == "postgresql":
        assert (stats.written, stats.failed) == (38, 2)
        assert stats.last_error and "ProgramLimitExceeded" in stats.last_error
        kept = [orjson.loads(line) for line in journal.rejected_path.read_bytes().splitlines()]
        assert sorted(k["record"]["labels"]["n"] for k in kept) == ["31", "7"]
        assert _count(engine, INTERACTION_TABLE) == 38
    else:
        assert (stats.written, stats.failed) == (40, 0)
        assert _count(engine, INTERACTION_TABLE) == 40


def test_ensure_written_returns_at_once_for_ids_not_pending_here(
    engine: Engine, tmp_path: Path
) -> None:
    async def scenario() -> None:
        journal = Journal(tmp_path / "journal", fsync="never")
        journal.open()
        writer = JournalWriter(journal, engine, interval=60)
        await writer.start()
        await asyncio.wait_for(writer.ensure_written([uuid.uuid4()], timeout=30), timeout=1)
        await writer.stop()

    asyncio.run(scenario())


def test_records_kept_only_on_disk_are_stored_too(engine: Engine, tmp_path: Path) -> None:
    """A long outage spills the pending records out of memory; the writer reads them back."""
    project = create_project(engine, key="p")
    assert project.id is not None
    records = [_record(project.id, n) for n in range(10)]
    journal = Journal(tmp_path / "journal", fsync="batch", memory_entries=3)
    journal.open()
    stats, _ = asyncio.run(_run_writer(journal, engine, records))
    assert stats.written == 10
    with engine.connect() as connection:
        stored = connection.execute(select(INTERACTION_TABLE.c.completion)).scalars().all()
    assert sorted(stored) == sorted(f"a{n}" for n in range(10))
