"""Where the analytics store lives, and each process's one DuckDB connection to it.

The analytics store is a DuckLake: Parquet files under a data path, and a catalog that says
which files make up each table at each snapshot.

- SQLite store `dir/name.db`: catalog `dir/name.analytics.sqlite` (its own SQLite file, in WAL
  mode so that readers never block the sync), data under `dir/name.analytics/`. DuckDB's sqlite
  extension opens the catalog only, never the store file (two SQLite libraries on one file in
  one process corrupt it: ../shared/docs/measured-facts.md).
- PostgreSQL store: catalog in the schema `interlog_analytics` of the store's own database
  (several writers and readers at once, on any host), data under `interlog-analytics/` in the
  working directory unless INTERLOG_ANALYTICS_PATH says otherwise (any path DuckDB can write,
  object storage included, so that several machines read the same files).

The data path is fixed when the analytics store is created (DuckLake keeps it in the catalog).

A process attaches the analytics store once (`lake_for(engine)`), and readers see it through
views named after the tables (interactions, metric_values, comparisons). The small
configuration tables (projects, models, metrics, ab_tests) are read from the relational store
into the process's in-memory DuckDB at most once a second: they are tiny, and read-your-writes
matters for them (a new metric, an ended A/B test). DuckDB's memory is capped
(INTERLOG_ANALYTICS_MEMORY_LIMIT); it spills to a temporary directory beyond that.

That cap covers DuckDB's buffer pool only (hash tables, sorts, cached file data), not what its
operators take from the C library's malloc: an exact quantile keeps every value of its group
in a plain vector (8 bytes a row per column; p50/p95/p99 of latency and TTFT over 10,000,000
rows is about 270 MB at its peak, with two threads' partial lists merged). On glibc those
vectors grow through ever larger blocks that malloc keeps in its heaps after the query, so
each question added to the process's resident memory: 10,000,000 rows, summary by model, a
new process peaked at 750-780 MB on its first question and at 1,000-1,130 MB a few questions
later (bench/query.py, step big). `tune_malloc` gives large blocks their own mappings,
returned when freed, and `reading` hands free heap memory back after each question: the same
questions then peak at 860-910 MB. What remains is the process itself (about 270 MB with
DuckDB, its extensions, pandas and pyarrow loaded), DuckDB's buffer pool (up to the limit:
the metric join and its per-completion aggregate take most of 512 MB there) and the quantile.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from store.analytics.extensions import load_extensions
from store.analytics.layout import LABEL_COLUMNS_DDL, SYNC_STATE_DDL, TABLES
from store.errors import InvalidInputError, QueryCancelledError
from store.read_guard import ReadGuard
from store.settings import Settings, get_settings

if TYPE_CHECKING:
    import duckdb

SCHEMA = "interlog_analytics"  # PostgreSQL schema of the catalog
LAKE = "lake"  # the analytics store's name inside DuckDB
#: Configuration tables copied from the relational store: (name in DuckDB, select).
CATALOG_TABLES = {
    "projects": "SELECT id, key, name FROM project",
    "models": "SELECT id, key, name FROM model",
    "metrics": "SELECT id, project_id, key, name, kind, scoring FROM metric",
    "ab_tests": (
        "SELECT id, project_id, key, metric_id, mode, variants, status, winner FROM ab_test"
    ),
}
CATALOG_SECONDS = 1.0
ROW_GROUP_ROWS = 16_384  # also store/analytics/build_worker.py's
#: DuckDB's memory in a process that syncs (the owner's child, `interlog analytics sync`): it
#: buffers a row group of every file it writes (measured: about 500 MB at its peak).
SYNC_MEMORY_LIMIT = "512MB"
INLINE_ROWS = 1_000  # inserts of fewer rows go to the catalog, not to a new Parquet file
#: glibc malloc: blocks of this size and more get their own mapping, unmapped when freed (see
#: the module docstring). glibc's default starts at 128 KiB but rises to 32 MiB as large
#: blocks are freed, so a quantile's growing vectors stayed in the heap afterwards.
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)


@dataclass(frozen=True)
class LakeLocation:
    """The catalog, the data path and the sync lock of one store's analytics store."""

    catalog: str  # DuckLake's ATTACH target, e.g. 'ducklake:sqlite:/abs/x.analytics.sqlite'
    data_path: str
    catalog_file: Path | None  # SQLite: the catalog file
    metadata_schema: str | None  # PostgreSQL: the catalog's schema

    @property
    def lock_file(self) -> Path | None:
        """SQLite: the file whose flock makes a process the sync owner."""
        return None if self.catalog_file is None else self.catalog_file.with_suffix(".lock")


def libpq(url: URL) -> str:
    parts = {
        "dbname": url.database,
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
    }
    return " ".join(f"{key}={value}" for key, value in parts.items() if value not in (None, ""))


def lake_location(url: URL, settings: Settings) -> LakeLocation:
    """Where the analytics store of the store at URL lives (see the module docstring)."""
    configured = settings.analytics_path
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise InvalidInputError("an in-memory SQLite store has no analytics store: use a file")
        store = Path(url.database).resolve()
        catalog = store.with_name(store.stem + ".analytics.sqlite")
        data = configured or str(store.with_name(store.stem + ".analytics"))
        return LakeLocation(f"ducklake:sqlite:{catalog}", data, catalog, None)
    name = f"{url.host or 'localhost'}-{url.port or 5432}-{url.database}"
    data = configured or str(Path("interlog-analytics").resolve() / name)
    return LakeLocation(f"ducklake:postgres:{libpq(url)}", data, None, SCHEMA)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt and malloc_trim are glibc's), else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL("libc.so.6")
    except (ValueError, OSError, AttributeError):  # not glibc: musl, macOS, Windows
        return None


@functools.cache
def tune_malloc() -> bool:
    """Once per process, before DuckDB allocates: glibc serves blocks of MMAP_THRESHOLD bytes
    and more from their own mappings, so the memory of DuckDB's untracked vectors goes back
    to the system when a question ends instead of staying in malloc's heaps. Process-wide,
    hence left alone when MALLOC_MMAP_THRESHOLD_ says otherwise. True when in force."""
    libc = _glibc()
    if libc is None:
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_free_memory() -> None:
    """Give malloc's free heap pages back to the system (glibc's malloc_trim: well under a
    millisecond), so that what a question freed is not resident until the next one."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _catalog_exists(engine: Engine, location: LakeLocation) -> bool:
    if location.catalog_file is not None:
        return location.catalog_file.exists()
    with engine.connect() as connection:
        found = connection.exec_driver_sql(
            f"SELECT to_regclass('{SCHEMA}.ducklake_metadata') IS NOT NULL"
        ).scalar()
    return bool(found)


def _create_sqlite_catalog(path: Path) -> None:
    """An empty catalog file in WAL mode, so that the sync's commits never wait for readers (and
    readers never fail on a lock). Made by Python's sqlite3 before any DuckDB opens it, and
    closed at once: DuckDB's SQLite is then the only one to touch the file."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


class Lake:
    """One process's DuckDB instance with the analytics store attached; thread-safe.

    Readers take a cursor (`reading`); the sync writes through its own cursor. The schema is
    created by the process that creates the catalog (the first sync).
    """

    def __init__(
        self, engine: Engine, settings: Settings, *, memory_limit: str | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.memory_limit = memory_limit or settings.analytics_memory_limit
        self.location = lake_location(engine.url, settings)
        self.con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.RLock()
        self._store_attached = False
        self.label_columns: dict[str, str] = {}  # label key -> its column (refresh_catalog)
        self.freshness_check: Any = None  # store.analytics.sync.FreshnessCheck, made on use
        self._catalog_loaded = float("-inf")
        self._catalog_digest: tuple[Any, ...] | None = None

    # -- connecting ------------------------------------------------------------------------

    def open(self, *, create: bool = False) -> duckdb.DuckDBPyConnection | None:
        """The attached connection; None when the analytics store does not exist yet and
        CREATE is false (only the sync owner creates it)."""
        with self._lock:
            if self.con is not None:
                return self.con
            exists = _catalog_exists(self.engine, self.location)
            if not exists and not create:
                return None
            try:
                self.con = self._attach(create=not exists)
            except Exception as exc:
                # PostgreSQL: the owner is creating the catalog right now (no tables yet).
                if create or "does not exist" not in str(exc):
                    raise
                return None
            return self.con

    def _attach(self, *, create: bool) -> duckdb.DuckDBPyConnection:
        import duckdb

        tune_malloc()
        temp = Path(tempfile.gettempdir()) / f"interlog-duckdb-{os.getpid()}"
        con = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "memory_limit": self.memory_limit,
                "temp_directory": str(temp),
                "preserve_insertion_order": False,
            },
        )
        try:
            con.execute("SET TimeZone = 'UTC'")
            sqlite = self.location.catalog_file is not None
            load_extensions(con, "sqlite" if sqlite else "postgres", "ducklake")
            options = [f"DATA_INLINING_ROW_LIMIT {INLINE_ROWS}"]
            if self.location.metadata_schema:
                options.append(f"METADATA_SCHEMA '{self.location.metadata_schema}'")
            if create:
                self._create(con, options)
            con.execute(f"ATTACH '{self.location.catalog}' AS {LAKE} ({', '.join(options)})")
            for table in TABLES:
                con.execute(
                    f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM {LAKE}.{table.name}"
                )
            for name in CATALOG_TABLES:
                con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT 1 AS placeholder LIMIT 0")
        except BaseException:
            con.close()
            raise
        return con

    def _create(self, con: duckdb.DuckDBPyConnection, options: list[str]) -> None:
        """Create the analytics store: catalog, settings, tables. A SQLite catalog is made
        under a temporary name and renamed when complete, so no reader ever attaches a
        half-made one (DuckLake would take an empty file for a new store of its own)."""
        location = self.location
        if "://" not in location.data_path:
            Path(location.data_path).mkdir(parents=True, exist_ok=True)
        catalog = location.catalog
        if location.catalog_file is not None:
            draft = location.catalog_file.with_name(location.catalog_file.name + ".new")
            for stale in (draft, *(Path(f"{draft}{end}") for end in ("-wal", "-shm"))):
                stale.unlink(missing_ok=True)
            _create_sqlite_catalog(draft)
            catalog = f"ducklake:sqlite:{draft}"
        attach_options = ", ".join([*options, f"DATA_PATH '{location.data_path}'"])
        con.execute(f"ATTACH '{catalog}' AS {LAKE} ({attach_options})")
        # zstd at level 1: 3x smaller than snappy on message text, and as fast to write as
        # snappy (bench: 49k rows/s either way, zstd 3 no smaller). Row groups of 16,384 rows
        # (~50 MB of text): DuckDB buffers a row group before writing it, and the default
        # 122,880 took the sync to 1.4 GB.
        con.execute(f"CALL {LAKE}.set_option('parquet_compression', 'zstd')")
        con.execute(f"CALL {LAKE}.set_option('parquet_compression_level', 1)")
        con.execute(f"CALL {LAKE}.set_option('parquet_row_group_size', {ROW_GROUP_ROWS})")
        con.execute(f"CALL {LAKE}.set_option('data_inlining_row_limit', {INLINE_ROWS})")
        con.execute("BEGIN")  # readers attaching meanwhile see every table or none
        for table in TABLES:
            con.execute(table.ddl(LAKE))
        con.execute(SYNC_STATE_DDL.format(schema=LAKE))
        con.execute(LABEL_COLUMNS_DDL.format(schema=LAKE))
        con.execute("COMMIT")
        con.execute(f"DETACH {LAKE}")
        if location.catalog_file is not None:
            draft.rename(location.catalog_file)

    def attach_store(self) -> None:
        """Attach the store itself to this process's DuckDB as `store`, for reading it fast
        (store/analytics/changes.py). PostgreSQL: any process. SQLite: refused in a process
        that has opened the store with Python's sqlite3, since two SQLite libraries on one
        file in one process corrupt it (only the sync owner's process reads it this way)."""
        with self._lock:
            if self._store_attached:
                return
            con = self.open(create=True)
            assert con is not None
            url = self.engine.url
            if url.get_backend_name() == "sqlite":
                pool = self.engine.pool
                opened = getattr(pool, "checkedin", lambda: 0)()
                opened += getattr(pool, "checkedout", lambda: 0)()
                if opened:
                    raise RuntimeError(
                        "this process has the SQLite store open through Python's sqlite3: "
                        "it must not attach it to DuckDB as well"
                    )
                assert url.database is not None
                con.execute(f"ATTACH '{Path(url.database).resolve()}' AS store (TYPE sqlite)")
            else:
                con.execute(f"ATTACH '{libpq(url)}' AS store (TYPE postgres, READ_ONLY)")
            self._store_attached = True

    def close(self) -> None:
        with self._lock:
            if self.con is not None:
                self.con.close()
                self.con = None
                self._store_attached = False

    # -- configuration tables --------------------------------------------------------------

    def refresh_catalog(self, *, max_age: float = CATALOG_SECONDS) -> None:
        """Copy the configuration tables from the relational store unless the copy is younger
        than MAX_AGE seconds."""
        with self._lock:
            if time.monotonic() - self._catalog_loaded < max_age:
                return
            assert self.con is not None
            tables = {}
            with self.engine.connect() as connection:
                for name, select in CATALOG_TABLES.items():
                    result = connection.exec_driver_sql(select)
                    tables[name] = [tuple(_plain(v) for v in row) for row in result]
            self.label_columns = {
                str(key): str(column)
                for key, column in self.con.execute(
                    f"SELECT key, column_name FROM {LAKE}.label_columns "
                    "WHERE column_name IS NOT NULL"
                ).fetchall()
            }
            digest = tuple((name, tuple(rows)) for name, rows in tables.items())
            if digest != self._catalog_digest:
                # Plain inserts, no Arrow: pyarrow need not load in a gateway for this.
                for name, rows in tables.items():
                    self.con.execute(
                        f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM "
                        f"({_empty_select(name)}) LIMIT 0"
                    )
                    if rows:
                        marks = ", ".join("?" for _ in rows[0])
                        self.con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
                self._catalog_digest = digest
            self._catalog_loaded = time.monotonic()

    # -- reading -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self, guard: ReadGuard | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one question; GUARD interrupts it at its deadline or when cancelled.
        Afterwards the memory the question freed goes back to the system (release_free_memory)."""
        con = self.con
        assert con is not None
        cursor = con.cursor()
        try:
            with guard.watching(cursor) if guard is not None else contextlib.nullcontext():
                yield cursor
        except Exception as exc:
            if type(exc).__name__ != "OutOfMemoryException":
                raise
            raise QueryCancelledError(
                f"the analytics query needed more memory than INTERLOG_ANALYTICS_MEMORY_LIMIT "
                f"({self.memory_limit}) allows; narrow the filters or raise the limit",
                timed_out=True,
            ) from exc
        finally:
            cursor.close()
            release_free_memory()


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list):
        import json

        return json.dumps(value)
    return value


#: Typed empty tables, for a store without projects, models, metrics or A/B tests yet.
_EMPTY = {
    "projects": "SELECT 0::INTEGER AS id, ''::VARCHAR AS key, ''::VARCHAR AS name",
    "models": "SELECT 0::INTEGER AS id, ''::VARCHAR AS key, ''::VARCHAR AS name",
    "metrics": (
        "SELECT 0::INTEGER AS id, 0::INTEGER AS project_id, ''::VARCHAR AS key, "
        "''::VARCHAR AS name, ''::VARCHAR AS kind, ''::VARCHAR AS scoring"
    ),
    "ab_tests": (
        "SELECT 0::INTEGER AS id, 0::INTEGER AS project_id, ''::VARCHAR AS key, "
        "0::INTEGER AS metric_id, ''::VARCHAR AS mode, ''::VARCHAR AS variants, "
        "''::VARCHAR AS status, ''::VARCHAR AS winner"
    ),
}


def _empty_select(name: str) -> str:
    return _EMPTY[name]


_lakes: dict[int, Lake] = {}
_lakes_lock = threading.Lock()


def lake_for(engine: Engine, settings: Settings | None = None) -> Lake:
    """This process's Lake for the engine's store (not attached until first used)."""
    with _lakes_lock:
        lake = _lakes.get(id(engine))
        if lake is None or lake.engine is not engine:
            lake = Lake(engine, settings or get_settings())
            _lakes[id(engine)] = lake
        return lake


def drop_lake(engine: Engine) -> None:
    """Detach (and forget) the engine's analytics store in this process, e.g. on shutdown."""
    with _lakes_lock:
        lake = _lakes.pop(id(engine), None)
    if lake is not None:
        lake.close()
