"""The DuckDB copy follows the store (late and old rows), and never endangers a SQLite file."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from store import analytics
from store.catalog import create_project
from store.db import create_store_engine
from store.duckdb_copy import copy_for, drop_copy
from store.filters import Filters
from store.ids import uuid7
from store.interactions import write_interactions
from store.types import utcnow


def _record(project_id: int, created_at: str, **extra: object) -> dict[str, object]:
    return {
        "completion_id": str(uuid7()),
        "project_id": project_id,
        "session_id": str(uuid.uuid4()),
        "created_at": created_at,
        "labels": {"team": "a"},
        "messages": [{"role": "user", "content": "hi"}],
        "completion": "hello",
        **extra,
    }


def test_late_commits_old_imports_and_new_label_keys_reach_the_copy(engine: Engine) -> None:
    project = create_project(engine, key="bot")
    pid = int(project.id or 0)
    now = utcnow()
    write_interactions(engine, [_record(pid, now.isoformat()) for _ in range(3)])
    try:
        assert analytics.count_interactions(engine, scope=pid, max_staleness=0) == 3
        # A writer that committed late with an earlier timestamp (inside the trailing window),
        # an import from 2020 (outside it), and a label key never seen before.
        late = _record(pid, (now.replace(microsecond=0)).isoformat(), labels={"fresh": "yes"})
        old = _record(pid, "2020-01-02T03:04:05+00:00")
        write_interactions(engine, [late, old])
        frame = analytics.interactions(engine, scope=pid, limit=None, max_staleness=0)
        assert len(frame) == 5
        assert analytics.interactions(engine, Filters(labels=["fresh=yes"]), scope=pid)[
            "completion_id"
        ].tolist() == [late["completion_id"]]
        assert analytics.interactions(engine, Filters(until="2021-01-01"), scope=pid)[
            "completion_id"
        ].tolist() == [old["completion_id"]]
        # Re-writing the same rows (idempotent replay) changes nothing.
        write_interactions(engine, [late, old])
        assert analytics.count_interactions(engine, scope=pid, max_staleness=0) == 5
        # Within max_staleness the copy is not re-read, and says when it last was.
        synced = analytics.synced_at(engine, max_staleness=0)
        write_interactions(engine, [_record(pid, now.isoformat())])
        stale = analytics.interactions(engine, scope=pid, limit=None, max_staleness=3600)
        assert len(stale) == 5 and stale.attrs["synced_at"] == synced
        assert len(analytics.interactions(engine, scope=pid, limit=None, max_staleness=0)) == 6
    finally:
        drop_copy(engine)


def _sqlite_libraries_mapped() -> list[str]:
    maps = Path("/proc/self/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines() if "sqlite_scanner" in line})


def test_concurrent_writes_and_analytics_leave_sqlite_file_intact(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url)
    project = create_project(engine, key="bot")
    pid = int(project.id or 0)
    written = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        nonlocal written
        writer = create_store_engine(sqlite_url)
        try:
            while not stop.is_set():
                batch = [_record(pid, utcnow().isoformat()) for _ in range(50)]
                write_interactions(writer, batch)
                written += len(batch)
                time.sleep(0.002)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            writer.dispose()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        seen = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            seen = analytics.count_interactions(engine, scope=pid, max_staleness=0)
            analytics.summary(engine, scope=pid, by="label:team", max_staleness=0)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert seen > 0 and written > seen / 2
    assert analytics.count_interactions(engine, scope=pid, max_staleness=0) == written
    # The copy never loads DuckDB's sqlite extension, and cannot: no extension, no ATTACH.
    copy = copy_for(engine)
    with copy.reading() as cursor:
        loaded = cursor.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'sqlite%'"
        ).fetchone()
        assert loaded == (0,)
        with pytest.raises(duckdb.Error):
            cursor.execute(f"ATTACH '{make_url(sqlite_url).database}' (TYPE sqlite)")
    assert _sqlite_libraries_mapped() == []
    drop_copy(engine)
    engine.dispose()
    database = make_url(sqlite_url).database
    assert database is not None
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT count(*) FROM interaction").fetchone() == (written,)
