"""Keeping the analytics store in step with the relational store: one sync owner at a time.

The owner is whoever holds the sync lock: an flock on `NAME.analytics.lock` beside a SQLite
store, a PostgreSQL advisory lock otherwise (`SyncLock`). A gateway's child process holds it
for as long as it lives (store/analytics/owner.py); a notebook, the CLI or the dashboard on a
store with no running service takes it for one catch-up (`Freshness.ensure`).

One sync cycle (`Syncer.cycle`):
1. take the target position (store/analytics/changes.py) and the time just before it;
2. delete the rows named by new tombstones from the analytics store;
3. append the new rows of interaction, metric_value and comparison (SQLite: also rows that took
   a deleted row's rowid, deleted first by key), in chunks;
4. save the position in `sync_state`, in the same DuckLake transaction as the rows: a cycle
   that stops halfway (crash, kill) resumes at its last committed chunk, never twice.
The first cycle on an existing store is the initial build, committed every COMMIT_ROWS rows.

Maintenance (the owner, between cycles): small inserts that DuckLake keeps in the catalog
(fewer than INLINE_ROWS rows: the trickle of a quiet service) are written out as Parquet every
FLUSH_SECONDS; small files are merged, snapshots older than KEEP_SNAPSHOTS expired and their
files removed (and files no snapshot knows, left by a first build that stopped) every
MAINTENANCE_SECONDS (readers' queries are bounded by the read timeout, far
below that age).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy import Connection, Engine

from store.analytics import build, changes
from store.analytics.changes import Position, Tombstone
from store.analytics.lake import LAKE, Lake
from store.analytics.layout import (
    BY_SOURCE,
    LABEL_COLUMNS_DDL,
    LAYOUT_VERSION,
    MAX_LABEL_COLUMNS,
    TABLES,
    LakeTable,
)
from store.errors import AnalyticsNotReadyError

log = logging.getLogger("interlog.analytics")

CHUNK_ROWS = 20_000  # rows read from the store at a time (through Python)
ISOLATED_CHUNK_ROWS = 100_000  # rowids read at a time by DuckDB from a SQLite store
COMMIT_ROWS = 100_000  # the initial build commits at least this often
FLUSH_SECONDS = 10.0
MAINTENANCE_SECONDS = 300.0
KEEP_SNAPSHOTS = timedelta(minutes=10)
WAIT_SECONDS = 10.0  # how long a reader waits for the owner to catch up
IN_PROCESS_ROWS = 50_000  # a SQLite reader catches up on more than this in a child process
#: DuckDB threads while a process that only syncs (`interlog analytics sync`, the owner's child)
#: runs a cycle. Each of a cycle's statements is one pipeline (one SQLite or PostgreSQL query
#: into one Parquet file), which one thread runs: with more, the Python client's thread polls
#: for the statement's end in a busy loop, a core's worth of CPU for nothing (measured on the
#: initial build of 1M interactions: 36 s of CPU instead of 24 s, on a 2-core machine whose
#: other work then ran slower, and so did the build itself; peak RSS 730 MB instead of 540).
SYNC_THREADS = 1
_ADVISORY_KEY = zlib.crc32(b"interlog analytics sync")  # PostgreSQL advisory lock id


@dataclass(frozen=True)
class SyncState:
    """What the analytics store holds: everything up to `position`, as of `synced_at`."""

    position: Position | None  # last complete cycle's target (None: nothing synced yet)
    target: Position | None  # the cycle under way, if one stopped halfway
    step: int  # index in STEPS of the cycle under way
    after: Any  # key of the last row of that step already committed
    reused: dict[str, list[int]]  # SQLite rowids to read again in the cycle under way
    synced_at: datetime | None
    complete: bool  # the initial build has finished
    rows_synced: int

    def to_json(self) -> str:
        import json

        return json.dumps(
            {
                "position": self.position,
                "target": self.target,
                "step": self.step,
                "after": self.after,
                "reused": self.reused,
            },
            sort_keys=True,
        )


EMPTY = SyncState(None, None, 0, None, {}, None, False, 0)
STEPS = ("tombstones", *(table.source for table in TABLES))


def read_state(cursor: Any) -> tuple[SyncState, int | None]:
    """The analytics store's sync state and its layout version (None when not built)."""
    import json

    row = cursor.execute(
        f"SELECT layout, position, synced_at, complete, rows_synced FROM {LAKE}.sync_state "
        "WHERE id = 1"
    ).fetchone()
    if row is None:
        return EMPTY, None
    layout, text, synced_at, complete, rows_synced = row
    data = json.loads(text)
    state = SyncState(
        position=data.get("position"),
        target=data.get("target"),
        step=int(data.get("step", 0)),
        after=data.get("after"),
        reused={k: list(v) for k, v in (data.get("reused") or {}).items()},
        synced_at=synced_at,
        complete=bool(complete),
        rows_synced=int(rows_synced or 0),
    )
    return state, int(layout)


def _write_state(cursor: Any, state: SyncState) -> None:
    cursor.execute(f"DELETE FROM {LAKE}.sync_state")
    cursor.execute(
        f"INSERT INTO {LAKE}.sync_state VALUES (1, ?, ?, ?, ?, ?)",
        [LAYOUT_VERSION, state.to_json(), state.synced_at, state.complete, state.rows_synced],
    )


class SyncLock:
    """The sync owner's lock: flock on a SQLite store's lock file, advisory on PostgreSQL."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._file: IO[str] | None = None
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        path = self.lake.location.lock_file
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a")  # noqa: SIM115 - held for as long as the lock
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
            return True
        connection = self.lake.engine.connect()
        got = connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({_ADVISORY_KEY})").scalar()
        connection.commit()
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_ADVISORY_KEY})")
                self._connection.commit()
            self._connection.close()
            self._connection = None

    @property
    def held(self) -> bool:
        return self._file is not None or self._connection is not None


@contextlib.contextmanager
def _store_read(engine: Engine) -> Iterator[Connection]:
    """A read transaction on the store (REPEATABLE READ on PostgreSQL: one snapshot)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


@contextlib.contextmanager
def duckdb_threads(cursor: Any, threads: int | None) -> Iterator[None]:
    """DuckDB's threads (a setting of the whole DuckDB instance, i.e. of the process) set to
    THREADS for the block, then set back; None leaves them alone."""
    if threads is None:
        yield
        return
    row = cursor.execute("SELECT current_setting('threads')").fetchone()
    cursor.execute(f"SET threads = {int(threads)}")
    try:
        yield
    finally:
        cursor.execute(f"SET threads = {int(row[0])}")


class Syncer:
    """Runs sync cycles for the owner of the sync lock."""

    def __init__(
        self,
        lake: Lake,
        *,
        chunk_rows: int | None = None,
        commit_rows: int = COMMIT_ROWS,
        isolated: bool = False,
        workers: int | None = None,
    ) -> None:
        """ISOLATED: this process never opens the store with Python's sqlite3 and does nothing
        but sync (the sync owner's process): a SQLite store is then read through DuckDB, about
        twice as fast, and a cycle runs DuckDB on SYNC_THREADS threads (no reader of this
        process's DuckDB loses its threads meanwhile)."""
        self.lake = lake
        self.isolated = isolated and lake.engine.dialect.name == "sqlite"
        self.threads = SYNC_THREADS if isolated else None
        self.chunk_rows = chunk_rows or (ISOLATED_CHUNK_ROWS if self.isolated else CHUNK_ROWS)
        # A PostgreSQL first build copies bigger chunks through DuckDB, unless told otherwise.
        self.first_build_rows = chunk_rows or changes.FIRST_BUILD_ROWS
        self.commit_rows = commit_rows
        #: Processes that write a first build's interactions (store/analytics/build.py).
        self.workers = build.default_workers(
            lake.settings.analytics_build_workers if workers is None else workers
        )
        self._pool: build.WorkerPool | None = None  # during a first build's cycle
        self._last_maintenance = self._last_flush = time.monotonic()

    def cycle(self, *, on_rows: Any = None) -> int:
        """Bring the analytics store up to the store's current position; returns rows applied
        (tombstones included). The caller holds the sync lock."""
        con = self.lake.open(create=True)
        assert con is not None
        cursor = con.cursor()
        try:
            state, layout = read_state(cursor)
            if layout is not None and layout != LAYOUT_VERSION:
                self._drop_tables(cursor)
                state = EMPTY
            if state.position is None and self.workers > 1:
                self._pool = build.WorkerPool(self.lake, self.workers)
            with duckdb_threads(cursor, self.threads):
                return self._cycle(cursor, state, on_rows)
        finally:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            cursor.close()

    def _drop_tables(self, cursor: Any) -> None:
        log.warning("analytics layout changed: rebuilding the analytics store from the store")
        cursor.execute("BEGIN")
        for table in TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {LAKE}.{table.name}")
        cursor.execute(f"DROP TABLE IF EXISTS {LAKE}.label_columns")
        cursor.execute(f"DELETE FROM {LAKE}.sync_state")
        for table in TABLES:
            cursor.execute(table.ddl(LAKE))
        cursor.execute(LABEL_COLUMNS_DDL.format(schema=LAKE))
        cursor.execute("COMMIT")

    def _cycle(self, cursor: Any, state: SyncState, on_rows: Any) -> int:
        applied = tombstoned = 0
        pending_rows = 0
        with self._source(first_build=state.position is None) as (connection, feed):
            if state.target is None:
                started = datetime.now(UTC)
                target = feed.position(connection)
                if target == state.position:
                    return 0
                state = SyncState(
                    state.position, target, 0, None, {}, started, state.complete,
                    state.rows_synced,
                )  # fmt: skip
            assert state.target is not None
            cursor.execute("BEGIN")
            try:
                feed.label_columns = self._label_columns(cursor, feed, connection)
                step = state.step
                after = state.after
                reused = dict(state.reused)
                while step < len(STEPS):
                    name = STEPS[step]
                    if name == "tombstones":
                        stones = feed.tombstones(connection, state.position, state.target)
                        tombstoned += self._apply_tombstones(cursor, stones)
                        for stone in stones:
                            if stone.row_id is not None:
                                reused.setdefault(stone.source, []).append(stone.row_id)
                        step, after = step + 1, None
                        continue
                    table = BY_SOURCE[name]
                    if self._parallel(connection, feed, table, state, after):
                        applied += self._copy_in_parallel(
                            cursor, connection, feed, table, state, step, after, reused,
                            state.rows_synced + applied, on_rows,
                        )  # fmt: skip
                        pending_rows = 0
                        step, after = step + 1, None
                        continue
                    if after is None and reused.get(name) and state.position is not None:
                        again = feed.reused(connection, table, reused[name], state.position)
                        if again is not None and again.num_rows:
                            self._delete_keys(cursor, table, again.column(table.key).to_pylist())
                            changes.append_batch(cursor, table, again, feed.label_columns)
                            applied += again.num_rows
                    count, after = feed.copy_rows(
                        connection, cursor, table, state.position, state.target,
                        after=after, limit=self.chunk_rows,
                    )  # fmt: skip
                    if count:
                        applied += count
                        pending_rows += count
                        if on_rows is not None:
                            on_rows(name, count)
                    if after is None:
                        step += 1
                    if pending_rows >= self.commit_rows and step < len(STEPS):
                        partial = SyncState(
                            state.position, state.target, step, after, reused,
                            state.synced_at, state.complete, state.rows_synced + applied,
                        )  # fmt: skip
                        _write_state(cursor, partial)
                        cursor.execute("COMMIT")
                        cursor.execute("BEGIN")
                        pending_rows = 0
                done = SyncState(
                    state.target, None, 0, None, {}, state.synced_at, True,
                    state.rows_synced + applied,
                )  # fmt: skip
                _write_state(cursor, done)
                cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
                raise
        if tombstoned:
            self._prune(state.target)
        return applied + tombstoned

    def _copy_in_parallel(
        self, cursor: Any, connection: Any, feed: changes.ChangeFeed, table: LakeTable,
        state: SyncState, step: int, after: Any, reused: dict[str, list[int]], synced: int,
        on_rows: Any,
    ) -> int:  # fmt: skip
        """TABLE's rows through the build workers, committed a round at a time with the
        position reached (SYNCED rows so far before them); returns rows copied."""
        copied = 0

        def commit(chunk_after: Any, rows: int) -> None:
            nonlocal copied
            copied += rows
            at, key = (step, chunk_after) if chunk_after is not None else (step + 1, None)
            partial = SyncState(
                state.position, state.target, at, key, reused, state.synced_at, state.complete,
                synced + copied,
            )  # fmt: skip
            _write_state(cursor, partial)
            cursor.execute("COMMIT")
            cursor.execute("BEGIN")

        def progress(rows: int) -> None:  # rows that are in the analytics store for good
            if on_rows is not None:
                on_rows(table.source, rows)

        assert state.target is not None and self._pool is not None
        build.copy_in_parallel(
            self._pool, cursor, connection, feed, table, state.target, after=after,
            chunk_rows=self.first_build_rows, commit=commit, progress=progress,
        )  # fmt: skip
        return copied

    def _parallel(
        self, connection: Any, feed: changes.ChangeFeed, table: LakeTable, state: SyncState,
        after: Any,
    ) -> bool:  # fmt: skip
        """Whether TABLE's rows go through the build workers: those of a first build with more
        than one chunk left to copy (the interactions, and the metric values of a large store)."""
        if state.position is not None or self._pool is None:
            return False
        if not build.parallel_possible(self.lake, self.workers):
            return False
        assert state.target is not None
        return feed.more_than(connection, table, state.target, after, self.first_build_rows)

    @staticmethod
    def _label_columns(cursor: Any, feed: changes.ChangeFeed, connection: Any) -> dict[str, str]:
        """Label key -> column in interactions; a key seen for the first time gets a free
        column while any of the MAX_LABEL_COLUMNS is free, before any row of it is written (the keys
        are read after the cycle's target position, so they cover every row it will write).
        A key seen first once they are all taken stays in the map only, for good: its rows
        already written would lack the column."""
        known = dict(
            cursor.execute(f"SELECT key, column_name FROM {LAKE}.label_columns").fetchall()
        )
        promoted = {key: column for key, column in known.items() if column is not None}
        if len(promoted) >= MAX_LABEL_COLUMNS:
            return promoted
        for key in sorted(feed.label_keys(connection) - set(known)):
            column = None
            if len(promoted) < MAX_LABEL_COLUMNS:  # the columns exist from the start (layout)
                column = f"label_{len(promoted)}"
                promoted[key] = column
            cursor.execute(f"INSERT INTO {LAKE}.label_columns VALUES (?, ?)", [key, column])
        return promoted

    @contextlib.contextmanager
    def _source(self, *, first_build: bool = False) -> Iterator[tuple[Any, changes.ChangeFeed]]:
        """(connection, feed) reading the store: through DuckDB when isolated, else a read
        transaction of the engine (one snapshot on PostgreSQL; a FIRST_BUILD also attaches it
        to DuckDB, which copies every row faster)."""
        if self.isolated:
            self.lake.attach_store()
            con = self.lake.open(create=True)
            assert con is not None
            cursor = con.cursor()
            try:
                yield cursor, changes.IsolatedSqliteFeed(cursor)
            finally:
                cursor.close()
            return
        if first_build and self.lake.engine.dialect.name == "postgresql":
            self.lake.attach_store()  # read through DuckDB (PostgresFeed.copy_rows)
        with _store_read(self.lake.engine) as connection:
            feed = changes.feed_for(connection)
            feed.first_build_rows = self.first_build_rows
            yield connection, feed

    def _prune(self, applied: Position | None) -> None:
        if applied is None:
            return
        try:
            if self.isolated:
                with self._source() as (connection, feed):
                    feed.prune(connection, applied)
                return
            with self.lake.engine.begin() as connection:
                changes.feed_for(connection).prune(connection, applied)
        except Exception:  # the store may be busy: pruning waits for the next cycle
            log.debug("pruning tombstones failed", exc_info=True)

    def _apply_tombstones(self, cursor: Any, stones: list[Tombstone]) -> int:
        for source in {stone.source for stone in stones}:
            table = BY_SOURCE.get(source)
            if table is not None:
                self._delete_keys(cursor, table, [s.key for s in stones if s.source == source])
        return len(stones)

    @staticmethod
    def _delete_keys(cursor: Any, table: LakeTable, keys: list[Any]) -> None:
        import pyarrow as pa

        if not keys:
            return
        cursor.register("gone", pa.table({"key": pa.array([str(k) for k in keys])}))
        try:
            cursor.execute(
                f"DELETE FROM {LAKE}.{table.name} WHERE {table.key} IN "
                "(SELECT CAST(key AS UUID) FROM gone)"
            )
        finally:
            cursor.unregister("gone")

    # -- maintenance ---------------------------------------------------------------------------

    def maintain(self, *, force: bool = False) -> bool:
        """Flush rows inlined in the catalog into Parquet every FLUSH_SECONDS; merge small
        files, expire snapshots older than KEEP_SNAPSHOTS and delete their files every
        MAINTENANCE_SECONDS. Returns whether anything ran. The owner calls it after each cycle,
        under load too (small files pile up fastest then)."""
        now = time.monotonic()
        flush = force or now - self._last_flush >= FLUSH_SECONDS
        full = force or now - self._last_maintenance >= MAINTENANCE_SECONDS
        if not (flush or full):
            return False
        con = self.lake.open(create=True)
        assert con is not None
        cursor = con.cursor()
        try:
            if flush or full:
                cursor.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
                self._last_flush = now
            if full:
                older = datetime.now(UTC) - KEEP_SNAPSHOTS
                cursor.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
                cursor.execute(
                    f"CALL ducklake_expire_snapshots('{LAKE}', older_than => ?)", [older]
                )
                cursor.execute(
                    f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => ?)", [older]
                )
                # Files of a first-build round that never committed (store/analytics/build.py).
                cursor.execute(
                    f"CALL ducklake_delete_orphaned_files('{LAKE}', older_than => ?)", [older]
                )
                self._last_maintenance = now
        finally:
            cursor.close()
        return True


def sync_now(lake: Lake, *, on_rows: Any = None, isolated: bool = False) -> int | None:
    """One catch-up in this process if nobody else owns the sync; None when someone does.
    ISOLATED: see Syncer."""
    lock = SyncLock(lake)
    if not lock.acquire():
        return None
    try:
        return Syncer(lake, isolated=isolated).cycle(on_rows=on_rows)
    finally:
        lock.release()


def _backlog(feed: changes.ChangeFeed, connection: Connection, state: SyncState) -> int:
    """About how many rows a catch-up would read (SQLite: rowids; PostgreSQL: unknown, 0)."""
    if not isinstance(feed, changes.SqliteFeed) or state.position is None:
        return 0
    now = feed.position(connection)
    return sum(max(0, int(now[key]) - int(state.position.get(key, 0))) for key in now)


def catch_up(lake: Lake, *, large: bool) -> bool:
    """Bring the analytics store up to date now if nobody owns the sync; False if someone does.

    PostgreSQL: here. SQLite: a small backlog here (through Python's sqlite3, which this process
    uses anyway); a first build or a LARGE backlog in a child process that reads the store
    through DuckDB (twice as fast, and it must not share a process with Python's sqlite3 on
    the same file)."""
    if lake.engine.dialect.name == "sqlite" and large:
        from store.analytics.owner import sync_in_child

        return sync_in_child(lake)
    return sync_now(lake) is not None


@dataclass(frozen=True)
class Freshness:
    """How current an answer is: every change committed to the store before `synced_at` is in
    it. `behind` is true when newer changes exist that the answer does not include yet."""

    synced_at: datetime
    behind: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"synced_at": self.synced_at.isoformat(), "behind": self.behind}


class FreshnessCheck:
    """A reader's side of freshness, for one process and one store."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._verified: tuple[float, Freshness] | None = None
        self._lock = threading.Lock()

    def ensure(self, max_staleness: float, *, wait: float = WAIT_SECONDS) -> Freshness:
        """Make sure answers include every change older than MAX_STALENESS seconds: check the
        store for changes the analytics store lacks (index probes); if there are some, catch up
        here when nobody owns the sync, else wait up to WAIT seconds for the owner."""
        with self._lock:
            now = time.monotonic()
            if self._verified is not None and now - self._verified[0] < max_staleness:
                return self._verified[1]
            asked = datetime.now(UTC)
            freshness = self._check(asked, wait)
            self._verified = (now, freshness)
            return freshness

    def _check(self, asked: datetime, wait: float) -> Freshness:
        lake = self.lake
        deadline = time.monotonic() + wait
        while True:
            con = lake.open()
            state = self._state(con) if con is not None else EMPTY
            with lake.engine.connect() as connection:
                feed = changes.feed_for(connection)
                pending = feed.pending(connection, state.position)
                backlog = _backlog(feed, connection, state) if pending else 0
            if not pending and state.target is None and con is not None:
                return Freshness(asked)
            if catch_up(lake, large=con is None or not state.complete or backlog > IN_PROCESS_ROWS):
                return Freshness(asked)
            # Someone else owns the sync: wait until it has taken a position after we asked.
            if state.synced_at is not None and state.synced_at >= asked and state.target is None:
                return Freshness(state.synced_at)
            if time.monotonic() >= deadline:
                if con is None or not state.complete:
                    raise AnalyticsNotReadyError(
                        "the analytics store is being built from the store "
                        f"({state.rows_synced:,} rows so far); try again in a moment"
                    )
                return Freshness(state.synced_at or asked, behind=True)
            time.sleep(0.05)

    @staticmethod
    def _state(con: Any) -> SyncState:
        cursor = con.cursor()
        try:
            return read_state(cursor)[0]
        finally:
            cursor.close()
