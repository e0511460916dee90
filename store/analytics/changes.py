"""What changed in the relational store since a position: new rows and tombstones (migration 0004).

A *position* is plain JSON data saved with the analytics store's rows, so the sync resumes
exactly where it stopped:

- SQLite (one writer at a time, so rowids grow in commit order): the highest rowid of each
  tracked table and the highest tombstone id, e.g. {"interaction": 812, ..., "tombstone": 3}.
  A rowid freed by deleting a table's newest rows can be used again by a later row; its
  tombstone names that rowid, and the sync reads such rows once more (`reused`).
- PostgreSQL (concurrent writers commit in any order): the snapshot of the last read,
  {"snapshot": "xmin:xmax:xip,..."}. A row is new when the transaction that wrote it
  (`change_txid`) is visible now and was not visible in that snapshot: exact, whatever the
  commit order, with no window to tune.

Reads go through SQLAlchemy (Python's sqlite3 or psycopg), never through DuckDB's sqlite
extension: the store file must only ever be opened by one SQLite library per process
(../shared/docs/measured-facts.md). Values come back as text where DuckDB parses them faster
(UUIDs, JSON, timestamps) and become Arrow arrays.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from store.analytics.compiler import literal
from store.analytics.lake import LAKE
from store.analytics.layout import TABLES, Column, LakeTable, staged_source
from store.models import CHANGE_COLUMN

if TYPE_CHECKING:
    import pyarrow as pa

Position = dict[str, Any]
TOMBSTONES = "analytics_tombstone"
FIRST_BUILD_ROWS = 100_000  # rows per chunk of a PostgreSQL store's first build
_ARROW = {"int": "int64", "float": "float64", "bool": "bool_"}  # every other kind is text


@dataclass(frozen=True)
class Tombstone:
    source: str  # relational table
    key: str  # the deleted row's key, as text
    row_id: int | None  # SQLite rowid of the deleted row


def _schema(columns: Sequence[Column]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [(column.name, getattr(pa, _ARROW.get(column.kind, "string"))()) for column in columns]
    )


def fetch_batches(
    connection: Connection, sql: str, params: dict[str, Any], columns: Sequence[Column], size: int
) -> Iterator[pa.RecordBatch]:
    """Run a driver-level query and hand its rows over as Arrow batches of at most SIZE rows."""
    import pyarrow as pa

    schema = _schema(columns)
    result = connection.exec_driver_sql(sql, params)
    cursor = result.cursor  # the driver's cursor: plain tuples, no Row objects
    try:
        while cursor is not None:
            rows = cursor.fetchmany(size)
            if not rows:
                break
            arrays = [
                pa.array(values, type=field.type)
                for values, field in zip(zip(*rows, strict=True), schema, strict=True)
            ]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        result.close()


def _expressions(table: LakeTable, label_columns: Mapping[str, str]) -> list[str]:
    taken = {column: key for key, column in label_columns.items()}
    return [
        f"s.label_map[{literal(taken[column.name])}]" if column.name in taken else column.expression
        for column in table.columns
    ]


def insert_select(table: LakeTable, source: str, label_columns: Mapping[str, str]) -> str:
    """INSERT of the rows of SOURCE (a relation with the store's columns) into TABLE, filling
    the label columns LABEL_COLUMNS (key -> column) of interactions too."""
    names = [column.name for column in table.columns]
    exprs = _expressions(table, label_columns)
    return (
        f"INSERT INTO {LAKE}.{table.name} ({', '.join(names)}) "
        f"SELECT {', '.join(exprs)} FROM {staged_source(table, source)}"
    )


def table_rows(table: LakeTable, source: str, label_columns: Mapping[str, str]) -> str:
    """SELECT of the rows of SOURCE as TABLE's columns, by name and exact type: what a Parquet
    file needs to be added to TABLE as it is (store/analytics/build.py)."""
    exprs = _expressions(table, label_columns)
    typed = [
        f"CAST({expr} AS {column.duck_type}) AS {column.name}"
        for expr, column in zip(exprs, table.columns, strict=True)
    ]
    return f"SELECT {', '.join(typed)} FROM {staged_source(table, source)}"


def append_batch(
    cursor: Any, table: LakeTable, batch: pa.RecordBatch, label_columns: Mapping[str, str]
) -> None:
    """Append an Arrow batch of the store's rows to TABLE (on a DuckDB cursor of the lake)."""
    cursor.register("staged", batch)
    try:
        cursor.execute(insert_select(table, "staged", label_columns))
    finally:
        cursor.unregister("staged")


#: The label keys of one project, one index lookup per key (a loose index scan of
#: interaction_label's (project_id, key, value) index; SQLite and PostgreSQL alike).
_PROJECT_LABEL_KEYS = """
WITH RECURSIVE k(key) AS (
    SELECT (SELECT min(key) FROM interaction_label WHERE project_id = {project})
    UNION ALL
    SELECT (SELECT min(key) FROM interaction_label WHERE project_id = {project} AND key > k.key)
    FROM k WHERE k.key IS NOT NULL)
SELECT key FROM k WHERE key IS NOT NULL"""


class ChangeFeed:
    """The dialect-independent part; `for_connection` picks the dialect's feed."""

    label_columns: Mapping[str, str] = {}  # label key -> its column in interactions
    first_build_rows = FIRST_BUILD_ROWS  # rows per chunk of a first build through DuckDB

    def label_keys(self, connection: Any) -> set[str]:
        """Every label key in the store (rows not yet committed excepted)."""
        keys: set[str] = set()
        for (project,) in self._query(connection, "SELECT id FROM project"):
            sql = _PROJECT_LABEL_KEYS.format(project=int(project))
            keys.update(str(key) for (key,) in self._query(connection, sql))
        return keys

    def _query(self, connection: Any, sql: str) -> list[Any]:
        return list(connection.exec_driver_sql(sql).all())

    def position(self, connection: Connection) -> Position:
        raise NotImplementedError

    def pending(self, connection: Connection, prev: Position | None) -> bool:
        """Whether anything changed after PREV (cheap: index probes only)."""
        raise NotImplementedError

    def tombstones(
        self, connection: Connection, prev: Position | None, target: Position
    ) -> list[Tombstone]:
        raise NotImplementedError

    def rows(
        self,
        connection: Connection,
        table: LakeTable,
        prev: Position | None,
        target: Position,
        *,
        after: Any,
        limit: int,
    ) -> tuple[pa.RecordBatch | None, Any]:
        """The next chunk of TABLE's rows new between PREV and TARGET, after key AFTER, and
        the key to continue after (None when the chunk was the last)."""
        raise NotImplementedError

    def copy_rows(
        self,
        connection: Any,
        cursor: Any,
        table: LakeTable,
        prev: Position | None,
        target: Position,
        *,
        after: Any,
        limit: int,
    ) -> tuple[int, Any]:
        """Append the next chunk of `rows` to the analytics store through CURSOR; returns how
        many rows and the key to continue after (None when done)."""
        batch, after = self.rows(connection, table, prev, target, after=after, limit=limit)
        if batch is None:
            return 0, after
        append_batch(cursor, table, batch, self.label_columns)
        return batch.num_rows, after

    def chunk_source(
        self, connection: Any, table: LakeTable, target: Position, *, after: Any, limit: int
    ) -> tuple[str, Any] | None:
        """For a first build: a DuckDB relation over the store attached as `store` (a
        `sqlite_query` or `postgres_query`) with the next chunk of at most LIMIT of TABLE's
        rows up to TARGET after key AFTER, and the key to continue after (None when it is the
        last chunk); None when nothing is left. Any process with the store attached can run it
        (the build workers of store/analytics/build.py)."""
        raise NotImplementedError

    def more_than(
        self, connection: Any, table: LakeTable, target: Position, after: Any, rows: int
    ) -> bool:
        """Whether a first build has more than ROWS of TABLE's rows left after key AFTER
        (about: rows written after TARGET may count)."""
        raise NotImplementedError

    def reused(
        self, connection: Connection, table: LakeTable, row_ids: Sequence[int], prev: Position
    ) -> pa.RecordBatch | None:
        """Rows that took the rowid of a deleted row (SQLite only)."""
        return None

    def prune(self, connection: Connection, applied: Position) -> None:
        """Delete the tombstones that APPLIED covers."""
        raise NotImplementedError


def _select(table: LakeTable, render: Any) -> str:
    return ", ".join(render(column) for column in table.source_columns)


class SqliteFeed(ChangeFeed):
    def position(self, connection: Any) -> Position:
        parts = [f"(SELECT coalesce(max(rowid), 0) FROM {table.source})" for table in TABLES]
        parts.append(f"(SELECT coalesce(max(id), 0) FROM {TOMBSTONES})")
        (row,) = self._query(connection, "SELECT " + ", ".join(parts))
        position = {table.source: int(value) for table, value in zip(TABLES, row, strict=False)}
        position[TOMBSTONES] = int(row[-1])
        return position

    def pending(self, connection: Any, prev: Position | None) -> bool:
        return prev is None or self.position(connection) != prev

    def more_than(
        self, connection: Any, table: LakeTable, target: Position, after: Any, rows: int
    ) -> bool:
        return int(target[table.source]) - int(after or 0) > rows

    def chunk_source(
        self, connection: Any, table: LakeTable, target: Position, *, after: Any, limit: int
    ) -> tuple[str, Any] | None:
        start, end = int(after or 0), int(target[table.source])
        if start >= end:
            return None
        stop = min(end, start + limit)
        columns = _select(table, lambda c: c.name)
        sql = f"SELECT {columns} FROM {table.source} WHERE rowid > {start} AND rowid <= {stop}"
        return f"sqlite_query('store', '{sql}')", (stop if stop < end else None)

    def tombstones(
        self, connection: Any, prev: Position | None, target: Position
    ) -> list[Tombstone]:
        first, last = int((prev or {}).get(TOMBSTONES, 0)), int(target[TOMBSTONES])
        rows = self._query(
            connection,
            f"SELECT source, key, row_id FROM {TOMBSTONES} "
            f"WHERE id > {first} AND id <= {last} ORDER BY id",
        )
        return [
            Tombstone(source, key, None if row_id is None else int(row_id))
            for source, key, row_id in rows
        ]

    def rows(
        self,
        connection: Connection,
        table: LakeTable,
        prev: Position | None,
        target: Position,
        *,
        after: Any,
        limit: int,
    ) -> tuple[pa.RecordBatch | None, Any]:
        start = max(int((prev or {}).get(table.source, 0)), int(after or 0))
        columns = [*table.source_columns, Column("rowid", "BIGINT", "int", "")]
        sql = (
            f"SELECT {_select(table, lambda c: c.name)}, rowid FROM {table.source} "
            f"WHERE rowid > :start AND rowid <= :end ORDER BY rowid LIMIT :limit"
        )
        params = {"start": start, "end": int(target[table.source]), "limit": limit}
        batch = next(fetch_batches(connection, sql, params, columns, limit), None)
        if batch is None or batch.num_rows == 0:
            return None, None
        last = batch.column("rowid")[-1].as_py()
        batch = batch.drop_columns(["rowid"])
        return batch, (last if batch.num_rows == limit else None)

    def reused(
        self, connection: Connection, table: LakeTable, row_ids: Sequence[int], prev: Position
    ) -> pa.RecordBatch | None:
        wanted = sorted({int(r) for r in row_ids if int(r) <= int(prev.get(table.source, 0))})
        if not wanted:
            return None
        marks = ", ".join(str(r) for r in wanted)
        columns = _select(table, lambda c: c.name)
        sql = f"SELECT {columns} FROM {table.source} WHERE rowid IN ({marks})"
        return next(fetch_batches(connection, sql, {}, table.source_columns, len(wanted)), None)

    def prune(self, connection: Connection, applied: Position) -> None:
        # All but the newest: a new tombstone is numbered max(id) + 1, which must stay above
        # every applied one.
        connection.exec_driver_sql(
            f"DELETE FROM {TOMBSTONES} WHERE id < ?", (int(applied[TOMBSTONES]),)
        )


class IsolatedSqliteFeed(SqliteFeed):
    """The SQLite feed of a process that never opens the store with Python's sqlite3 (the sync
    owner, `interlog analytics sync`): it reads through DuckDB's sqlite extension, the store
    attached as `store` to the analytics connection, about twice as fast as Python can fetch
    (and the rows go from SQLite to DuckDB without Python objects). The same queries as
    SqliteFeed, run by SQLite itself through `sqlite_query` (DuckDB's own scan of an attached
    table would read every row: it pushes no rowid range down)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def _sqlite(self, sql: str) -> Any:
        return self.cursor.execute("SELECT * FROM sqlite_query('store', ?)", [sql])

    def _query(self, connection: Any, sql: str) -> list[Any]:
        return list(self._sqlite(sql).fetchall())

    def _batch(self, table: LakeTable, where: str, extra: str = "") -> pa.RecordBatch | None:
        columns = _select(table, lambda c: c.name)
        sql = f"SELECT {columns}{extra} FROM {table.source} WHERE {where} ORDER BY rowid"
        arrow = self._sqlite(sql).fetch_arrow_table()
        if arrow.num_rows == 0:
            return None
        return arrow.combine_chunks().to_batches()[0]

    def copy_rows(
        self,
        connection: Any,
        cursor: Any,
        table: LakeTable,
        prev: Position | None,
        target: Position,
        *,
        after: Any,
        limit: int,
    ) -> tuple[int, Any]:
        """Straight from SQLite into the analytics store, no Python object per row."""
        start = max(int((prev or {}).get(table.source, 0)), int(after or 0))
        chunk = self.chunk_source(connection, table, target, after=start, limit=limit)
        if chunk is None:
            return 0, None
        source, after = chunk
        row = cursor.execute(insert_select(table, source, self.label_columns)).fetchone()
        return (int(row[0]) if row else 0), after

    def reused(
        self, connection: Any, table: LakeTable, row_ids: Sequence[int], prev: Position
    ) -> pa.RecordBatch | None:
        wanted = sorted({int(r) for r in row_ids if int(r) <= int(prev.get(table.source, 0))})
        if not wanted:
            return None
        return self._batch(table, f"rowid IN ({', '.join(str(r) for r in wanted)})")

    def prune(self, connection: Any, applied: Position) -> None:
        self.cursor.execute(
            f"DELETE FROM store.{TOMBSTONES} WHERE id < ?", [int(applied[TOMBSTONES])]
        )


def _postgres_column(column: Column) -> str:
    if column.kind in ("uuid", "json"):
        return f"{column.name}::text AS {column.name}"
    if column.kind == "ts":
        return (
            f"to_char({column.name} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
            f"AS {column.name}"
        )
    return column.name


def _postgres_scan_column(column: Column) -> str:
    """A column as DuckDB's postgres extension reads it (binary COPY): UUIDs as they are, and
    timestamps as their UTC wall time, the values `_postgres_column`'s text gives, without
    PostgreSQL formatting text (to_char) that DuckDB then parses again (measured: ~20% less
    of DuckDB's CPU to read a 100,000-row chunk). JSON as text: DuckDB reads no jsonb."""
    if column.kind == "json":
        return f"{column.name}::text AS {column.name}"
    if column.kind == "ts":
        return f"({column.name} AT TIME ZONE 'UTC') AS {column.name}"
    return column.name


def _new_since(prev: Position | None, target_param: str | None) -> str:
    """SQL: the row's transaction is visible in the target snapshot and was not in PREV."""
    clauses = []
    visible = f"pg_visible_in_snapshot({CHANGE_COLUMN}::text::xid8, %({{}})s::pg_snapshot)"
    if prev is not None:
        clauses.append(
            f"{CHANGE_COLUMN} >= pg_snapshot_xmin(%(prev)s::pg_snapshot)::text::bigint "
            f"AND NOT {visible.format('prev')}"
        )
    if target_param is not None:
        clauses.append(f"({CHANGE_COLUMN} IS NULL OR {visible.format(target_param)})")
    return " AND ".join(clauses) or "TRUE"


class PostgresFeed(ChangeFeed):
    def position(self, connection: Connection) -> Position:
        snapshot = connection.exec_driver_sql("SELECT pg_current_snapshot()::text").scalar_one()
        return {"snapshot": str(snapshot)}

    def pending(self, connection: Connection, prev: Position | None) -> bool:
        if prev is None:
            return True
        probes = " OR ".join(
            f"EXISTS (SELECT 1 FROM {source} WHERE {_new_since(prev, None)})"
            for source in (*(table.source for table in TABLES), TOMBSTONES)
        )
        return bool(
            connection.exec_driver_sql(f"SELECT {probes}", {"prev": prev["snapshot"]}).scalar()
        )

    def tombstones(
        self, connection: Connection, prev: Position | None, target: Position
    ) -> list[Tombstone]:
        params = {"target": target["snapshot"]}
        if prev is not None:
            params["prev"] = prev["snapshot"]
        rows = connection.exec_driver_sql(
            f"SELECT source, key FROM {TOMBSTONES} WHERE {_new_since(prev, 'target')} ORDER BY id",
            params,
        ).all()
        return [Tombstone(source, key, None) for source, key in rows]

    def rows(
        self,
        connection: Connection,
        table: LakeTable,
        prev: Position | None,
        target: Position,
        *,
        after: Any,
        limit: int,
    ) -> tuple[pa.RecordBatch | None, Any]:
        params: dict[str, Any] = {"target": target["snapshot"], "limit": limit}
        if prev is not None:
            params["prev"] = prev["snapshot"]
        where = _new_since(prev, "target")
        if after is not None:
            where += f" AND {table.key} > %(after)s::uuid"
            params["after"] = after
        sql = (
            f"SELECT {_select(table, _postgres_column)} FROM {table.source} "
            f"WHERE {where} ORDER BY {table.source}.{table.key} LIMIT %(limit)s"
        )
        if prev is None:
            # The first build reads every row, in key order, a chunk at a time: the primary key's
            # index gives that order and stops at LIMIT. The planner cannot tell how few rows the
            # visibility test drops and would sort the whole table for every chunk otherwise.
            connection.exec_driver_sql("SET LOCAL enable_sort = off")
        batch = next(fetch_batches(connection, sql, params, table.source_columns, limit), None)
        if batch is None or batch.num_rows == 0:
            return None, None
        last = batch.column(table.key)[-1].as_py()
        return batch, (last if batch.num_rows == limit else None)

    def copy_rows(
        self,
        connection: Any,
        cursor: Any,
        table: LakeTable,
        prev: Position | None,
        target: Position,
        *,
        after: Any,
        limit: int,
    ) -> tuple[int, Any]:
        """The first build (every row) goes straight from PostgreSQL into the analytics store
        through DuckDB's postgres extension (binary COPY, no Python object per row); later
        cycles, a few rows each, through Python."""
        if prev is None and cursor_has_store(cursor):
            # Chunks of at least FIRST_BUILD_ROWS: each is a Parquet file (20,000-row chunks
            # left 69 files for 1M interactions, and every question opened them all).
            chunk = max(limit, self.first_build_rows)
            return self._copy_through_duckdb(connection, cursor, table, target, after, chunk)
        return super().copy_rows(connection, cursor, table, prev, target, after=after, limit=limit)

    def _copy_through_duckdb(
        self, connection: Any, cursor: Any, table: LakeTable, target: Position, after: Any,
        limit: int,
    ) -> tuple[int, Any]:  # fmt: skip
        chunk = self.chunk_source(connection, table, target, after=after, limit=limit)
        if chunk is None:
            return 0, None
        source, last = chunk
        row = cursor.execute(insert_select(table, source, self.label_columns)).fetchone()
        return (int(row[0]) if row else 0), last

    def more_than(
        self, connection: Any, table: LakeTable, target: Position, after: Any, rows: int
    ) -> bool:
        where = "TRUE" if after is None else f"{table.key} > '{uuid.UUID(str(after))}'::uuid"
        found = connection.exec_driver_sql(
            f"SELECT count(*) FROM (SELECT 1 FROM {table.source} WHERE {where} "
            f"LIMIT {int(rows) + 1}) s"
        ).scalar()
        return int(found or 0) > rows

    def chunk_source(
        self, connection: Any, table: LakeTable, target: Position, *, after: Any, limit: int
    ) -> tuple[str, Any] | None:
        where = _new_since(None, "target").replace(
            "%(target)s", "'" + str(target["snapshot"]) + "'"
        )
        key = f"{table.source}.{table.key}"
        if after is not None:
            where += f" AND {key} > '{uuid.UUID(str(after))}'::uuid"
        # The chunk's last key first (the primary key's index, in order), then the chunk.
        last = connection.exec_driver_sql(
            f"SELECT {key}::text FROM {table.source} WHERE {where} "
            f"ORDER BY {key} OFFSET {limit - 1} LIMIT 1"
        ).scalar()
        if (
            last is None
            and not connection.exec_driver_sql(
                f"SELECT EXISTS (SELECT 1 FROM {table.source} WHERE {where})"
            ).scalar()
        ):
            return None
        bounded = where if last is None else f"{where} AND {key} <= '{last}'::uuid"
        sql = f"SELECT {_select(table, _postgres_scan_column)} FROM {table.source} WHERE {bounded}"
        quoted = sql.replace("'", "''")
        return f"postgres_query('store', '{quoted}')", last

    def prune(self, connection: Connection, applied: Position) -> None:
        connection.exec_driver_sql(
            f"DELETE FROM {TOMBSTONES} WHERE {CHANGE_COLUMN} IS NULL OR pg_visible_in_snapshot("
            f"{CHANGE_COLUMN}::text::xid8, %(applied)s::pg_snapshot)",
            {"applied": applied["snapshot"]},
        )


def feed_for(connection: Connection) -> ChangeFeed:
    return PostgresFeed() if connection.dialect.name == "postgresql" else SqliteFeed()


def cursor_has_store(cursor: Any) -> bool:
    """Whether the store is attached to this DuckDB connection as `store` (Lake.attach_store)."""
    row = cursor.execute(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name = 'store'"
    ).fetchone()
    return bool(row and row[0])
