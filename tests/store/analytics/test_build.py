"""The initial build of the analytics store: what it derives from each row (the prompt's text,
the UTC timestamps, the keys) is the same whichever way the rows travel, and a process that
only syncs runs DuckDB on one thread for a cycle, then gives the threads back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest
from sqlalchemy import Engine

from store.analytics.lake import Lake, drop_lake, lake_for
from store.analytics.sync import SYNC_THREADS, Syncer, duckdb_threads
from store.catalog import create_project
from store.db import create_store_engine
from store.ids import uuid7
from store.interactions import write_interactions
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
