"""The SQLite writer process (store/sqlite_writer.py): a real child process on a real file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from store.bulk_insert import writer_kind
from store.catalog import create_project
from store.db import create_store_engine
from store.interactions import (
    ATTACHMENT_TABLE,
    INTERACTION_TABLE,
    LABEL_TABLE,
    InteractionRecord,
    RowBatch,
    prepare_rows,
    row_batch,
    write_transaction,
)
from store.sqlite_writer import SqliteWriterProcess, WriterProcessError, sqlite_writer_for
from tests.store.records import interaction_record

#: Every test here runs on a SQLite file (the `engine` fixture's SQLite case only).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def writer(engine: Engine) -> Iterator[SqliteWriterProcess]:
    process = sqlite_writer_for(engine)
    assert process is not None
    try:
        yield process
    finally:
        process.close()


def _batch(engine: Engine, records: list[InteractionRecord]) -> RowBatch:
    return row_batch(prepare_rows(records, writer_kind(engine)))


def _count(engine: Engine, column: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count(column))).scalar_one())


def _wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _has_ended(pid: int) -> bool:
    """Whether process PID is gone or a zombie (ended, not yet reaped by its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_only_sqlite_files_get_a_writer_process(engine: Engine, postgres_url: str) -> None:
    assert sqlite_writer_for(engine) is not None
    memory = create_store_engine("sqlite://")
    postgres = create_store_engine(postgres_url)
    try:
        assert sqlite_writer_for(memory) is None
        assert sqlite_writer_for(postgres) is None
    finally:
        memory.dispose()
        postgres.dispose()


def test_rows_written_by_the_child_read_back_as_written_in_process(
    engine: Engine, writer: SqliteWriterProcess
) -> None:
    project = create_project(engine, key="p")
    record = interaction_record(
        project.id or 0,
        user_id="u1",
        prompt_tokens=3,
        ttft_ms=1.5,
        params={"temperature": 0.2},
        attachments=[
            {"sha256": "ab" * 32, "mime_type": "image/png", "size_bytes": 3, "data_b64": "AAEC"}
        ],
    )
    writer.write(_batch(engine, [record]))
    with engine.connect() as connection:
        row = connection.execute(select(INTERACTION_TABLE)).one()._mapping
        labels = connection.execute(select(LABEL_TABLE.c.key, LABEL_TABLE.c.value)).all()
        image = connection.execute(select(ATTACHMENT_TABLE.c.data)).scalar_one()
    assert str(row["completion_id"]) == record["completion_id"]
    assert str(row["session_id"]) == record["session_id"]
    assert row["user_id"] == "u1" and row["prompt_tokens"] == 3 and row["ttft_ms"] == 1.5
    assert row["params"] == {"temperature": 0.2} and row["labels"] == record["labels"]
    assert row["request_id"] is None and row["error"] is None  # None binds as NULL
    assert row["created_at"].tzinfo is not None
    assert sorted(labels) == [("env", "prod"), ("team", "a")]
    assert bytes(image) == b"\x00\x01\x02"
    assert writer.pid is not None


def test_a_replayed_batch_is_stored_once(engine: Engine, writer: SqliteWriterProcess) -> None:
    project = create_project(engine, key="p")
    batch = _batch(engine, [interaction_record(project.id or 0) for _ in range(300)])
    writer.write(batch)
    writer.write(batch)
    assert _count(engine, INTERACTION_TABLE.c.completion_id) == 300
    assert _count(engine, LABEL_TABLE.c.key) == 600


def test_callers_waiting_for_a_turn_share_one_transaction(
    engine: Engine, writer: SqliteWriterProcess
) -> None:
    project = create_project(engine, key="p")
    writer.write(_batch(engine, [interaction_record(project.id or 0)]))  # the child is up
    batches = [
        _batch(engine, [interaction_record(project.id or 0) for _ in range(50)]) for _ in range(4)
    ]
    groups_before = writer.groups
    with writer._turn:  # a write under way: the next callers queue behind it
        threads = [threading.Thread(target=writer.write, args=(batch,)) for batch in batches]
        for thread in threads:
            thread.start()
        _wait_until(lambda: len(writer._queue) == len(batches))
    for thread in threads:
        thread.join(timeout=30)
    assert writer.groups == groups_before + 1
    assert _count(engine, INTERACTION_TABLE.c.completion_id) == 1 + 200


def test_a_refused_batch_raises_in_its_caller_and_sinks_no_other(
    engine: Engine, writer: SqliteWriterProcess
) -> None:
    project = create_project(engine, key="p")
    good = _batch(engine, [interaction_record(project.id or 0) for _ in range(10)])
    refused = _batch(engine, [interaction_record(project.id or 0, session_id=None)])  # NOT NULL
    errors: list[BaseException] = []

    def write(batch: RowBatch) -> None:
        try:
            writer.write(batch)
        except Exception as exc:
            errors.append(exc)

    with writer._turn:  # both in one group: the group fails, then each batch goes alone
        threads = [threading.Thread(target=write, args=(batch,)) for batch in (good, refused)]
        for thread in threads:
            thread.start()
        _wait_until(lambda: len(writer._queue) == 2)
    for thread in threads:
        thread.join(timeout=30)
    assert len(errors) == 1
    assert isinstance(errors[0], sqlite3.IntegrityError)  # what the driver raises in-process
    assert "NOT NULL" in str(errors[0])
    assert _count(engine, INTERACTION_TABLE.c.completion_id) == 10
    assert _count(engine, LABEL_TABLE.c.key) == 20  # none of the refused batch's labels


def _started(engine: Engine, writer: SqliteWriterProcess) -> tuple[int, int]:
    """A project, and the pid of WRITER's child after it wrote one interaction of it."""
    project_id = create_project(engine, key="p").id or 0
    writer.write(_batch(engine, [interaction_record(project_id)]))
    assert writer.pid is not None
    return project_id, writer.pid


def test_a_killed_child_is_replaced_and_the_write_still_lands(
    engine: Engine, writer: SqliteWriterProcess
) -> None:
    project_id, first = _started(engine, writer)
    os.kill(first, signal.SIGKILL)
    _wait_until(lambda: _has_ended(first))
    writer.write(_batch(engine, [interaction_record(project_id) for _ in range(5)]))
    assert writer.pid not in (None, first)
    assert _count(engine, INTERACTION_TABLE.c.completion_id) == 6


def test_a_child_killed_in_the_middle_of_a_write_is_replaced_and_the_group_resent(
    engine: Engine, writer: SqliteWriterProcess
) -> None:
    project_id, first = _started(engine, writer)
    batch = _batch(engine, [interaction_record(project_id) for _ in range(20)])
    with write_transaction(engine):  # holds the file's write lock: the child waits
        thread = threading.Thread(target=writer.write, args=(batch,))
        thread.start()
        _wait_until(lambda: not writer._queue and writer._turn.locked())
        time.sleep(0.3)  # the request is in the child, which waits for the lock
        os.kill(first, signal.SIGKILL)
        time.sleep(0.3)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert writer.pid not in (None, first)
    assert _count(engine, INTERACTION_TABLE.c.completion_id) == 21


def test_ctrl_c_leaves_the_child_to_its_parent(engine: Engine, writer: SqliteWriterProcess) -> None:
    """SIGINT (Ctrl-C in a terminal reaches the whole process group) does not stop the child:
    it ends when its parent closes it, after the writes under way."""
    project_id, first = _started(engine, writer)
    os.kill(first, signal.SIGINT)
    time.sleep(0.2)
    writer.write(_batch(engine, [interaction_record(project_id)]))
    assert writer.pid == first
    assert _count(engine, INTERACTION_TABLE.c.completion_id) == 2


def test_a_closed_writer_refuses_writes_and_its_child_exits(
    engine: Engine, writer: SqliteWriterProcess
) -> None:
    project = create_project(engine, key="p")
    writer.write(_batch(engine, [interaction_record(project.id or 0)]))
    child = writer._child
    assert child is not None
    writer.close()
    assert child.poll() == 0
    with pytest.raises(WriterProcessError):
        writer.write(_batch(engine, [interaction_record(project.id or 0)]))
    writer.close()  # again: nothing to do


_PARENT = """
import os, sys
from store.db import create_store_engine
from store.interactions import prepare_rows, row_batch
from store.sqlite_writer import sqlite_writer_for
engine = create_store_engine(sys.argv[1])
writer = sqlite_writer_for(engine)
writer.write(row_batch(prepare_rows([], "sqlite")))
print(writer.pid, flush=True)
os._exit(0)  # dies without closing the writer
"""


def test_the_child_exits_when_its_parent_dies(database_url: str) -> None:
    parent = subprocess.run(
        [sys.executable, "-c", _PARENT, database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    child = int(parent.stdout.strip())
    _wait_until(lambda: _has_ended(child), timeout=30)
