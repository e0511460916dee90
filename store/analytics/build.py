"""The first build of the analytics store, written by several processes at once.

The first build copies every interaction (about 3 KB of text each) into Parquet. One DuckDB
process does it at about one core's worth: DuckDB's own threads did not make it faster here
(measured on 200,000 realistic interactions: the same wall time with 2 threads, 50% more CPU),
while separate processes did (two processes wrote 100,000 rows each in the time one took for
100,000). So the sync process hands chunks to WORKERS child processes, each of which attaches
the store read-only to its own DuckDB and writes a chunk's rows, already in the analytics
layout, into one Parquet file in the table's data directory (`COPY ... TO`, no DuckLake in the
worker). The sync process then adds the files to the analytics store with
`ducklake_add_data_files` (which takes ownership: compaction and cleanup treat them as its own)
and saves the sync position in the same DuckLake transaction, a round of WORKERS chunks at a
time, exactly as a one-process build commits: a build that stops halfway resumes after its last
committed round. While a round commits, the workers already write the next one.

A file written for a round that never committed is not in the catalog; the owner's maintenance
deletes such orphans once they are older than its snapshot window (store/analytics/sync.py).

A SQLite store is read by the workers through DuckDB's SQLite, in processes that never open it
otherwise (../shared/docs/measured-facts.md: never two SQLite libraries on one file in one
process), so any process may run a parallel build, a notebook's included.

The worker itself: store/analytics/build_worker.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.analytics.changes import ChangeFeed, table_rows
from store.analytics.lake import LAKE, Lake, libpq
from store.analytics.layout import LakeTable

MAX_WORKERS = 4  # the default number of workers: one per CPU, at most this many
SCHEMA_DIRECTORY = "main"  # DuckLake's directory of the default schema, under the data path


def default_workers(configured: int) -> int:
    """CONFIGURED workers, or (0) one per CPU, at most MAX_WORKERS."""
    if configured > 0:
        return configured
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def parallel_possible(lake: Lake, workers: int) -> bool:
    """Whether a first build can be written by WORKERS processes: more than one, and a data
    path on this machine's file system (the workers write the files themselves)."""
    return workers > 1 and "://" not in lake.location.data_path


@dataclass
class _Chunk:
    path: Path  # the Parquet file a worker writes
    after: Any  # the key to continue after once this chunk is committed (None: the last)
    rows: int = 0


class Worker:
    """One worker process: the store attached, one COPY at a time, in order."""

    def __init__(self, setup: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "store.analytics.build_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._send(setup)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def submit(self, sql: str, path: Path) -> None:
        self._send({"sql": sql, "path": str(path)})

    def result(self) -> int:
        """Rows written by the oldest task submitted and not yet answered."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"an analytics build worker ended (exit status {code})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"an analytics build worker failed: {answer['error']}")
        return int(answer["rows"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _setup(lake: Lake) -> dict[str, str]:
    url = lake.engine.url
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        store = Path(url.database).resolve()
        attach = f"ATTACH '{store}' AS store (TYPE sqlite, READ_ONLY)"
        return {"extension": "sqlite", "attach": attach}
    attach = f"ATTACH '{libpq(url)}' AS store (TYPE postgres, READ_ONLY)"
    return {"extension": "postgres", "attach": attach}


def table_directory(lake: Lake, table: LakeTable) -> Path:
    """Where DuckLake keeps TABLE's files (and where the workers write theirs)."""
    return Path(lake.location.data_path) / SCHEMA_DIRECTORY / table.name


class WorkerPool:
    """WORKERS worker processes, started on first use and kept for the rest of a cycle (the
    interactions, then the metric values), ended by `close`."""

    def __init__(self, lake: Lake, workers: int) -> None:
        self.lake = lake
        self.size = workers
        self._workers: list[Worker] = []

    @property
    def workers(self) -> list[Worker]:
        if not self._workers:
            setup = _setup(self.lake)
            self._workers = [Worker(setup) for _ in range(self.size)]
        return self._workers

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()


def copy_in_parallel(
    pool: WorkerPool,
    cursor: Any,
    connection: Any,
    feed: ChangeFeed,
    table: LakeTable,
    target: Any,
    *,
    after: Any,
    chunk_rows: int,
    commit: Callable[[Any, int], None],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy TABLE's rows after key AFTER up to TARGET with the POOL's processes, a round of one
    chunk per worker at a time; after each round's files are added (on CURSOR, in the open
    DuckLake transaction), COMMIT(after, rows) saves the position and commits, then
    PROGRESS(rows) hears of them. Returns rows. A failure ends the pool's workers (a worker
    may be in the middle of a task nobody will read)."""
    directory = table_directory(pool.lake, table)
    directory.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(connection, feed, table, target, after, chunk_rows, directory)
    workers = pool.workers
    written: list[Path] = []  # files not committed yet
    copied = 0
    try:
        current = _submit_round(workers, chunks, table, feed, written)
        while current:
            following = _submit_round(workers, chunks, table, feed, written)
            for worker, chunk in zip(workers, current, strict=False):
                chunk.rows = worker.result()
            files = [str(chunk.path) for chunk in current if chunk.rows]
            if files:
                cursor.execute(
                    f"CALL ducklake_add_data_files('{LAKE}', '{table.name}', ?)", [files]
                )
            for chunk in current:
                if not chunk.rows:
                    chunk.path.unlink(missing_ok=True)
            rows = sum(chunk.rows for chunk in current)
            copied += rows
            commit(current[-1].after, rows)
            for chunk in current:  # the catalog's files now
                written.remove(chunk.path)
            if progress is not None and rows:
                progress(rows)
            current = following
    except BaseException:
        pool.close()
        raise
    finally:
        for path in written:  # submitted but never committed: not in the catalog
            path.unlink(missing_ok=True)
    return copied


def _chunks(
    connection: Any, feed: ChangeFeed, table: LakeTable, target: Any, after: Any, limit: int,
    directory: Path,
) -> Iterator[tuple[str, _Chunk]]:  # fmt: skip
    """(source relation, chunk) for each chunk of rows after AFTER, in key order."""
    done = False
    while not done:
        found = feed.chunk_source(connection, table, target, after=after, limit=limit)
        if found is None:
            return
        source, after = found
        done = after is None
        path = directory / f"ducklake-{uuid.uuid4()}.parquet"
        yield source, _Chunk(path, after)


def _submit_round(
    workers: list[Worker],
    chunks: Iterator[tuple[str, _Chunk]],
    table: LakeTable,
    feed: ChangeFeed,
    written: list[Path],
) -> list[_Chunk]:
    """The next chunk for each worker, submitted (fewer at the end)."""
    round_: list[_Chunk] = []
    for worker in workers:
        found = next(chunks, None)
        if found is None:
            break
        source, chunk = found
        worker.submit(table_rows(table, source, feed.label_columns), chunk.path)
        written.append(chunk.path)
        round_.append(chunk)
    return round_
