"""The initial build of the analytics store: what it derives from each row (the prompt's text,
the UTC timestamps, the keys) is the same whichever way the rows travel, and a process that
only syncs runs DuckDB on one thread for a cycle, then gives the threads back."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import Engine

from store.analytics import build_worker
from store.analytics.build import table_directory
from store.analytics.lake import Lake, drop_lake, lake_for
from store.analytics.layout import INTERACTIONS
from store.analytics.sync import SYNC_THREADS, Syncer, duckdb_threads
from store.catalog import create_project
from store.db import create_store_engine
from store.feedback import add_metric_value
from store.ids import uuid7
from store.interactions import write_interactions
from store.metrics import create_metric
from store.settings import get_settings

#: (messages, the prompt_text the analytics store must hold for them)
MESSAGES: list[tuple[list[dict[str, Any]], str | None]] = [
    ([{"role": "user", "content": "hi"}], "hi"),
    (
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": 'line\nnext \u00e9 "quoted" \\ tab\t'},
        ],
        'line\nnext \u00e9 "quoted" \\ tab\t',
    ),
    (
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "text", "text": "at this"},
                ],
            }
        ],
        "look\nat this",
    ),
    ([{"role": "user", "content": []}], ""),
    ([{"role": "user", "content": "first"}, {"role": "assistant", "content": None}], None),
    ([{"role": "tool", "tool_call_id": "c1"}], None),
    ([], None),
]


@pytest.fixture
def project_id(engine: Engine) -> Iterator[int]:
    project = create_project(engine, key="bot")
    yield int(project.id or 0)
    drop_lake(engine)


def _record(project_id: int, messages: list[dict[str, Any]], created_at: str) -> dict[str, Any]:
    return {
        "completion_id": str(uuid7()),
        "project_id": project_id,
        "session_id": str(uuid.uuid4()),
        "created_at": created_at,
        "labels": {"team": "a"},
        "messages": messages,
        "completion": "ok",
    }


def test_a_first_build_derives_prompt_text_times_and_keys_exactly(
    engine: Engine, project_id: int
) -> None:
    """The first build (PostgreSQL: through DuckDB's postgres extension, binary) and a later
    cycle (through Python) give the same values: the last message's text whatever its shape,
    timestamps to the microsecond in UTC, the keys."""
    times = ["2020-01-02T03:04:05.123456+00:00", "2026-06-30T23:59:59.000001+02:00"]
    first = [
        _record(project_id, messages, times[n % 2]) for n, (messages, _) in enumerate(MESSAGES)
    ]
    write_interactions(engine, first)
    lake = lake_for(engine)
    assert Syncer(lake).cycle() == len(first)  # the first build
    later = [
        _record(project_id, messages, times[n % 2]) for n, (messages, _) in enumerate(MESSAGES)
    ]
    write_interactions(engine, later)
    assert Syncer(lake).cycle() == len(later)  # a later cycle
    con = lake.open()
    assert con is not None
    rows = dict(
        (str(key), (text, at, session))
        for key, text, at, session in con.cursor()
        .execute("SELECT completion_id, prompt_text, created_at, session_id FROM lake.interactions")
        .fetchall()
    )
    for records in (first, later):
        for record, (_, text) in zip(records, MESSAGES, strict=True):
            got_text, got_at, got_session = rows[record["completion_id"]]
            assert got_text == text, record["messages"]
            expected_at = datetime.fromisoformat(record["created_at"]).astimezone(UTC)
            assert got_at.astimezone(UTC) == expected_at
            assert str(got_session) == record["session_id"]


def test_duckdb_threads_are_set_for_the_block_and_given_back() -> None:
    con = duckdb.connect(":memory:", config={"threads": 3})

    def threads() -> int:
        row = con.execute("SELECT current_setting('threads')").fetchone()
        assert row is not None
        return int(row[0])

    with duckdb_threads(con, 1):
        assert threads() == 1
    assert threads() == 3
    with pytest.raises(RuntimeError), duckdb_threads(con, 1):
        raise RuntimeError
    assert threads() == 3
    with duckdb_threads(con, None):
        assert threads() == 3


def test_a_process_that_only_syncs_runs_a_cycle_on_one_duckdb_thread(postgres_url: str) -> None:
    """`interlog analytics sync` and the owner's child (isolated): one DuckDB thread during the
    cycle (more only make the client's thread poll in a busy loop), the setting given back
    afterwards. Other processes' syncs leave DuckDB's threads alone (their readers share it)."""
    engine = create_store_engine(postgres_url)
    try:
        pid = int(create_project(engine, key="bot").id or 0)
        write_interactions(engine, [_record(pid, MESSAGES[0][0], "2026-01-01T00:00:00+00:00")])
        lake = Lake(engine, get_settings())
        con = lake.open(create=True)
        assert con is not None
        before = con.execute("SELECT current_setting('threads')").fetchone()
        seen: list[int] = []

        def during(_table: str, _rows: int) -> None:
            assert con is not None
            row = con.cursor().execute("SELECT current_setting('threads')").fetchone()
            seen.append(int(row[0]) if row else -1)

        assert Syncer(lake, isolated=True).cycle(on_rows=during) == 1
        assert seen == [SYNC_THREADS]
        assert con.execute("SELECT current_setting('threads')").fetchone() == before
        write_interactions(engine, [_record(pid, MESSAGES[0][0], "2026-01-01T00:00:01+00:00")])
        seen.clear()
        assert Syncer(lake).cycle(on_rows=during) == 1
        assert seen == [int(before[0]) if before else -1]
        lake.close()
    finally:
        engine.dispose()


def _lake_rows(lake: Lake, table: str = "interactions") -> list[tuple[Any, ...]]:
    """Every row of an analytics table, every column, in key order (the first column)."""
    con = lake.open()
    assert con is not None
    return con.cursor().execute(f"SELECT * FROM lake.{table} ORDER BY 1").fetchall()


def _table_files(lake: Lake) -> tuple[set[str], set[str]]:
    """(Parquet files in the interactions directory, files the catalog lists for the table)."""
    con = lake.open()
    assert con is not None
    listed = con.cursor().execute(
        "SELECT data_file FROM ducklake_list_files('lake', 'interactions')"
    )
    on_disk = {str(path) for path in table_directory(lake, INTERACTIONS).glob("*.parquet")}
    return on_disk, {str(Path(name)) for (name,) in listed.fetchall()}


def _remove_analytics_store(engine: Engine, lake: Lake) -> None:
    """The analytics store gone (catalog and files), as if never built."""
    location = lake.location
    drop_lake(engine)
    if location.catalog_file is not None:
        for end in ("", "-wal", "-shm"):
            Path(f"{location.catalog_file}{end}").unlink(missing_ok=True)
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {location.metadata_schema} CASCADE")
    shutil.rmtree(location.data_path)


def _varied_records(project_id: int, count: int) -> list[dict[str, Any]]:
    keys = ["team", "env", "customer", "region"]
    records = []
    for n in range(count):
        messages, _ = MESSAGES[n % len(MESSAGES)]
        record = _record(
            project_id,
            messages,
            f"2026-0{1 + n % 9}-0{1 + n % 7}T0{n % 10}:00:0{n % 6}.{n:06d}+00:00",
        )
        record["labels"] = {key: f"{key}-{n % (i + 2)}" for i, key in enumerate(keys[: 1 + n % 4])}
        record["prompt_tokens"] = n
        records.append(record)
    return records


def test_a_first_build_by_worker_processes_holds_what_one_process_writes(
    engine: Engine, project_id: int
) -> None:
    """Several worker processes write the first build's interactions as Parquet files that the
    analytics store takes over (store/analytics/build.py): every column of every row is what a
    one-process build writes (labels in their columns, the prompt's text, UTC times), the files
    are the catalog's, and later cycles add to them as usual."""
    records = _varied_records(project_id, 45)
    write_interactions(engine, records)
    create_metric(engine, project_key="bot", key="quality", kind="scalar")
    for n, record in enumerate(records[:20]):
        add_metric_value(
            engine, project_id=project_id, metric="quality", value=n / 4,
            completion_id=str(record["completion_id"]),
        )  # fmt: skip
    lake = lake_for(engine)
    assert Syncer(lake, chunk_rows=7, workers=1).cycle() == len(records) + 20
    alone = _lake_rows(lake), _lake_rows(lake, "metric_values")
    _remove_analytics_store(engine, lake)
    lake = lake_for(engine)
    progress: list[tuple[str, int]] = []
    syncer = Syncer(lake, chunk_rows=7, workers=2)
    assert syncer.cycle(on_rows=lambda *seen: progress.append(seen)) == len(records) + 20
    # A round of two chunks of 7 at a time, each committed; the same workers for both tables.
    interactions = [("interaction", 14)] * 3 + [("interaction", 3)]
    assert progress == [*interactions, ("metric_value", 14), ("metric_value", 6)]
    assert (_lake_rows(lake), _lake_rows(lake, "metric_values")) == alone
    on_disk, listed = _table_files(lake)
    assert len(listed) == 7 and on_disk == listed
    more = _varied_records(project_id, 3)
    write_interactions(engine, more)
    assert syncer.cycle() == len(more)
    assert len(_lake_rows(lake)) == len(records) + len(more)


def test_a_first_build_by_workers_stopped_between_rounds_resumes_exactly(
    engine: Engine, project_id: int
) -> None:
    """A build that stops (crash, kill) after a committed round keeps that round, loses the one
    under way without leaving its files behind, and the next cycle copies the rest once."""
    records = _varied_records(project_id, 40)
    write_interactions(engine, records)
    lake = lake_for(engine)

    class Crash(Exception):
        pass

    def stop_after_the_first_round(_table: str, _rows: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        Syncer(lake, chunk_rows=6, workers=2).cycle(on_rows=stop_after_the_first_round)
    assert len(_lake_rows(lake)) == 12
    on_disk, listed = _table_files(lake)
    assert on_disk == listed and len(listed) == 2  # the round under way left no file
    assert Syncer(lake, chunk_rows=6, workers=2).cycle() == len(records) - 12
    keys = [str(row[0]) for row in _lake_rows(lake)]
    assert sorted(keys) == sorted(str(r["completion_id"]) for r in records)
    # A file a killed build left (no cleanup ran): maintenance deletes it once it is older
    # than the snapshot window, and no file the catalog lists.
    stray = table_directory(lake, INTERACTIONS) / f"ducklake-{uuid.uuid4()}.parquet"
    stray.write_bytes(next(iter(_table_files(lake)[1])).encode())
    hour_ago = time.time() - 3600
    os.utime(stray, (hour_ago, hour_ago))
    assert Syncer(lake).maintain(force=True)
    on_disk, listed = _table_files(lake)  # (merged files wait for their snapshots' expiry)
    assert not stray.exists() and listed <= on_disk
    assert sorted(str(row[0]) for row in _lake_rows(lake)) == sorted(keys)


def test_a_build_worker_answers_each_task_and_reports_a_failed_one(tmp_path: Path) -> None:
    """A worker answers its tasks in order; a failing one is an error answer (the sync stops
    the build with it), and the worker goes on with the next."""
    import io
    import json
    import sqlite3

    store = tmp_path / "store.db"
    with sqlite3.connect(store) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
        connection.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(5)])
    out = tmp_path / "out.parquet"
    tasks = [
        {"extension": "sqlite", "attach": f"ATTACH '{store}' AS store (TYPE sqlite, READ_ONLY)"},
        {"sql": "SELECT * FROM sqlite_query('store', 'SELECT x FROM t')", "path": str(out)},
        {"sql": "SELECT * FROM no_such_table", "path": str(tmp_path / "bad.parquet")},
        {"sql": "SELECT 1 AS y", "path": str(tmp_path / "one.parquet")},
    ]
    answers = io.StringIO()
    build_worker.serve(io.StringIO("".join(json.dumps(t) + "\n" for t in tasks)), answers)
    first, failed, last = (json.loads(line) for line in answers.getvalue().splitlines())
    assert first == {"rows": 5} and last == {"rows": 1}
    assert "no_such_table" in failed["error"]
    assert duckdb.execute(f"SELECT sum(CAST(x AS INTEGER)) FROM '{out}'").fetchone() == (10,)
