"""The analytics store follows the relational store: new rows, late commits, old imports,
deletes (with their cascades), resumption after a crash, one sync owner among processes, and
readers in other processes; on both backends."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from store import analytics
from store.analytics.lake import lake_for
from store.analytics.sync import Syncer, SyncLock
from store.catalog import create_project
from store.db import create_store_engine
from store.filters import Filters
from store.ids import uuid7
from store.interactions import write_interactions
from store.keys import Principal
from store.metrics import create_metric
from store.types import utcnow
from tests.support import interlog_env

ADMIN = Principal(is_admin=True)


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


@pytest.fixture
def project_id(engine: Engine) -> Iterator[int]:
    project = create_project(engine, key="bot")
    yield int(project.id or 0)
    from store.analytics.lake import drop_lake

    drop_lake(engine)


def _lake_count(engine: Engine, table: str = "interactions") -> int:
    con = lake_for(engine).open()
    assert con is not None
    row = con.cursor().execute(f"SELECT count(*) FROM lake.{table}").fetchone()
    return int(row[0]) if row else 0


def test_late_commits_old_imports_and_new_label_keys_reach_analytics(
    engine: Engine, project_id: int
) -> None:
    pid = project_id
    now = utcnow()
    write_interactions(engine, [_record(pid, now.isoformat()) for _ in range(3)])
    assert analytics.count_interactions(engine, scope=pid, max_staleness=0) == 3
    # A writer that committed late with an earlier timestamp, an import from 2020, and a
    # label key never seen before.
    late = _record(pid, (now.replace(microsecond=0)).isoformat(), labels={"fresh": "yes"})
    old = _record(pid, "2020-01-02T03:04:05+00:00")
    write_interactions(engine, [late, old])
    frame = analytics.interactions(engine, scope=pid, limit=None, max_staleness=0)
    assert len(frame) == 5
    assert frame.attrs["freshness"]["behind"] is False
    assert analytics.interactions(engine, Filters(labels=["fresh=yes"]), scope=pid)[
        "completion_id"
    ].tolist() == [late["completion_id"]]
    assert analytics.interactions(engine, Filters(until="2021-01-01"), scope=pid)[
        "completion_id"
    ].tolist() == [old["completion_id"]]
    # Re-writing the same rows (idempotent replay) changes nothing.
    write_interactions(engine, [late, old])
    assert analytics.count_interactions(engine, scope=pid, max_staleness=0) == 5
    # Within max_staleness the store is not checked again, and the answer says as of when.
    synced = analytics.synced_at(engine, max_staleness=0)
    write_interactions(engine, [_record(pid, now.isoformat())])
    stale = analytics.interactions(engine, scope=pid, limit=None, max_staleness=3600)
    assert len(stale) == 5 and stale.attrs["synced_at"] == synced
    fresh = analytics.interactions(engine, scope=pid, limit=None, max_staleness=0)
    assert len(fresh) == 6 and fresh.attrs["synced_at"] > synced


def test_deletes_and_their_cascades_reach_analytics(engine: Engine, project_id: int) -> None:
    pid = project_id
    records = [_record(pid, utcnow().isoformat()) for _ in range(6)]
    write_interactions(engine, records)
    create_metric(engine, project_key="bot", key="quality", kind="scalar")
    from store.feedback import add_metric_value

    for record in records:
        add_metric_value(
            engine, project_id=pid, metric="quality", value=1.0,
            completion_id=str(record["completion_id"]),
        )  # fmt: skip
    before = analytics.summary(engine, scope=pid, by=None, max_staleness=0)
    assert before["count"].tolist() == [6] and before["quality_n"].tolist() == [6]
    gone = [str(r["completion_id"]) for r in records[:2]]
    with engine.begin() as connection:  # as retention or a purge will: the rows go, and
        # their metric values with them (ON DELETE CASCADE)
        for completion_id in gone:
            connection.execute(
                text("DELETE FROM interaction WHERE completion_id = :c"),
                {
                    "c": uuid.UUID(completion_id).hex
                    if engine.dialect.name == "sqlite"
                    else completion_id
                },
            )
    after = analytics.summary(engine, scope=pid, by=None, max_staleness=0)
    assert after["count"].tolist() == [4] and after["quality_n"].tolist() == [4]
    left = set(analytics.interactions(engine, scope=pid, limit=None)["completion_id"])
    assert left.isdisjoint(gone)
    assert _lake_count(engine, "metric_values") == 4
    # Applied tombstones are pruned from the store (SQLite keeps the newest: ids never repeat).
    with engine.connect() as connection:
        left_over = connection.execute(text("SELECT count(*) FROM analytics_tombstone")).scalar()
    assert left_over == (1 if engine.dialect.name == "sqlite" else 0)


def test_a_deleted_key_written_again_is_there_once(engine: Engine, project_id: int) -> None:
    record = _record(project_id, utcnow().isoformat())
    write_interactions(engine, [record])
    assert analytics.count_interactions(engine, scope=project_id, max_staleness=0) == 1
    key = uuid.UUID(str(record["completion_id"]))
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM interaction WHERE completion_id = :c"),
            {"c": key.hex if engine.dialect.name == "sqlite" else str(key)},
        )
    write_interactions(engine, [{**record, "completion": "written again"}])
    frame = analytics.interactions(engine, scope=project_id, limit=None, max_staleness=0)
    assert frame["completion"].tolist() == ["written again"]


def test_an_interrupted_build_resumes_without_losing_or_repeating_rows(
    engine: Engine, project_id: int
) -> None:
    write_interactions(engine, [_record(project_id, utcnow().isoformat()) for _ in range(250)])
    lake = lake_for(engine)

    class Crash(Exception):
        pass

    seen = 0

    def crash_after_two_chunks(_table: str, rows: int) -> None:
        nonlocal seen
        seen += rows
        if seen > 100:
            raise Crash

    # One process writes the build (tests/store/analytics/test_build.py: with workers).
    syncer = Syncer(lake, chunk_rows=50, commit_rows=100, workers=1)
    with pytest.raises(Crash):
        syncer.cycle(on_rows=crash_after_two_chunks)
    assert _lake_count(engine) == 100  # the committed chunks, nothing of the one under way
    assert Syncer(lake, chunk_rows=50, commit_rows=100, workers=1).cycle() == 150
    con = lake.open()
    assert con is not None
    row = (
        con.cursor()
        .execute("SELECT count(*), count(DISTINCT completion_id) FROM lake.interactions")
        .fetchone()
    )
    assert row == (250, 250)


def test_a_single_process_owns_the_sync_at_a_time(engine: Engine, project_id: int) -> None:
    first, second = SyncLock(lake_for(engine)), SyncLock(lake_for(engine))
    assert first.acquire()
    try:
        assert not second.acquire()
    finally:
        first.release()
    assert second.acquire()
    second.release()


_READER = """
import json, sys, time
from store import connect
db = connect(sys.argv[1], max_staleness=0)
results = []
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    frame = db.summary(by=None)
    results.append(int(frame["count"].sum()) if len(frame) else 0)
print(json.dumps(results))
"""


def test_owner_writers_and_readers_in_separate_processes(database_url: str, tmp_path: Path) -> None:
    """A sync owner process, a writer thread and two reader processes at once: every reader
    answer is consistent, counts never go back, and in the end everything is there; the SQLite
    store file is intact."""
    engine = create_store_engine(database_url)
    project = create_project(engine, key="bot")
    pid = int(project.id or 0)
    env = interlog_env(
        {"INTERLOG_DATABASE_URL": database_url, "INTERLOG_ANALYTICS_SYNC_INTERVAL": "0.1"}
    )
    owner = subprocess.Popen(
        [sys.executable, "-m", "store.analytics.owner"],
        stdin=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    written = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        nonlocal written
        try:
            while not stop.is_set():
                batch = [_record(pid, utcnow().isoformat()) for _ in range(20)]
                write_interactions(engine, batch)
                written += len(batch)
                time.sleep(0.01)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    writer = threading.Thread(target=write)
    try:
        writer.start()
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", _READER, database_url, "4"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = [reader.communicate(timeout=120)[0] for reader in readers]
        assert [reader.returncode for reader in readers] == [0, 0]
        stop.set()
        writer.join(timeout=30)
        assert not errors, errors
        for output in outputs:
            counts = json.loads(output)
            assert counts and counts == sorted(counts)  # never goes back
            assert counts[-1] > 0
        # The owner takes the lock back from the readers (they only take it when it is free),
        # then brings the rest in; a reader waits for it.
        deadline = time.monotonic() + 30
        probe = SyncLock(lake_for(engine))
        while probe.acquire():
            probe.release()
            assert time.monotonic() < deadline, "the owner process never took the sync lock"
            time.sleep(0.1)
        final = analytics.summary(engine, scope=ADMIN, by=None, max_staleness=0)
        assert final["count"].tolist() == [written]
        assert final.attrs["freshness"]["behind"] is False
    finally:
        stop.set()
        assert owner.stdin is not None
        owner.stdin.close()
        owner.wait(timeout=30)
        from store.analytics.lake import drop_lake

        drop_lake(engine)
        engine.dispose()
    if database_url.startswith("sqlite"):
        database = make_url(database_url).database
        assert database is not None
        with sqlite3.connect(database) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert check.execute("SELECT count(*) FROM interaction").fetchone() == (written,)


def test_a_huge_stored_metric_value_breaks_no_question(engine: Engine, project_id: int) -> None:
    """Values stored before the +-1e12 limit (written here past the API) are left out."""
    records = [_record(project_id, utcnow().isoformat()) for _ in range(3)]
    write_interactions(engine, records)
    metric = create_metric(engine, project_key="bot", key="quality", kind="scalar")
    with engine.begin() as connection:
        for record, value in zip(records, (1e308, -1e308, 0.5), strict=True):
            cid = uuid.UUID(str(record["completion_id"]))
            connection.execute(
                text(
                    "INSERT INTO metric_value (id, completion_id, metric_id, value, created_at) "
                    "VALUES (:id, :cid, :metric, :value, :at)"
                ),
                {
                    "id": uuid7().hex if engine.dialect.name == "sqlite" else str(uuid7()),
                    "cid": cid.hex if engine.dialect.name == "sqlite" else str(cid),
                    "metric": metric.id,
                    "value": value,
                    "at": utcnow().replace(tzinfo=None)
                    if engine.dialect.name == "sqlite"
                    else utcnow(),
                },
            )
    summary = analytics.summary(engine, scope=project_id, by="model", max_staleness=0)
    assert summary["quality_n"].tolist() == [1] and summary["quality_mean"].tolist() == [0.5]
    frame = analytics.interactions(engine, Filters(metrics=["quality>=0"]), scope=project_id)
    assert frame["completion_id"].tolist() == [records[2]["completion_id"]]


def test_a_b_test_changes_show_at_once(engine: Engine, project_id: int) -> None:
    from store.abtests import create_ab_test
    from store.catalog import attach_model, create_model

    for key in ("m1", "m2"):
        create_model(engine, key=key, upstream_urls=["http://127.0.0.1:9/v1"])
        attach_model(engine, project_key="bot", model_key=key)
    create_metric(engine, project_key="bot", key="quality", kind="scalar")
    create_ab_test(
        engine, project_key="bot", key="spring", variants=[{"model": "m1"}, {"model": "m2"}],
        metric_key="quality",
    )  # fmt: skip
    assert analytics.ab_test_report(engine, "spring", scope=project_id).status == "active"
    with engine.begin() as connection:
        connection.execute(text("UPDATE ab_test SET status = 'cancelled' WHERE key = 'spring'"))
    report = analytics.ab_test_report(engine, "spring", scope=project_id, max_staleness=0)
    assert report.status == "cancelled"
