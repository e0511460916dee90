"""Fast idempotent bulk inserts at the driver level (ON CONFLICT DO NOTHING on both backends).

SQLAlchemy Core spends most of a large executemany in per-value bind processing. Here each
column gets one small converter to the driver's own representation, written to agree with what
SQLAlchemy stores (so reads through SQLAlchemy and DuckDB see the same values):
  SQLite      sqlite3 `executemany` of tuples: UUIDs as 32-hex text, UTC timestamps as
              "YYYY-MM-DD HH:MM:SS.ffffff" text, JSON as text.
  PostgreSQL  psycopg COPY into a per-connection temporary table, then one
              INSERT ... SELECT ... ON CONFLICT DO NOTHING (COPY itself cannot skip conflicts).
Any other dialect falls back to Core executemany.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Connection, LargeBinary, Table, Uuid
from sqlalchemy.dialects import postgresql, sqlite

from store.types import UTCDateTime

Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _uuid_hex(value: Any) -> Any:
    if value is None:
        return None
    return value.hex if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).hex


def _uuid_value(value: Any) -> Any:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _sqlite_datetime(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError("naive datetime: Interlog stores timezone-aware timestamps only")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _aware_datetime(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime: Interlog stores timezone-aware timestamps only")
    return value


def _json_text(value: Any) -> Any:
    return None if value is None else orjson.dumps(value).decode()


def _jsonb(value: Any) -> Any:
    return None if value is None else Jsonb(value, dumps=_json_text)


def _converter(column_type: Any, dialect: str) -> Converter:
    if isinstance(column_type, Uuid):
        return _uuid_hex if dialect == "sqlite" else _uuid_value
    if isinstance(column_type, UTCDateTime):
        return _sqlite_datetime if dialect == "sqlite" else _aware_datetime
    if isinstance(column_type, JSON) or "JSON" in type(column_type).__name__.upper():
        return _json_text if dialect == "sqlite" else _jsonb
    if isinstance(column_type, LargeBinary):
        return _identity
    return _identity


@lru_cache(maxsize=64)
def _tuple_builder(table: Table, dialect: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function row -> tuple for this table, generated once: no per-value loop overhead."""
    namespace: dict[str, Any] = {}
    parts = []
    for number, column in enumerate(table.columns):
        convert = _converter(column.type, dialect)
        key = repr(column.name)
        if convert is _identity:
            parts.append(f"get({key})")
        else:
            namespace[f"c{number}"] = convert
            parts.append(f"c{number}(get({key}))")
    source = "def build(row):\n    get = row.get\n    return (" + ", ".join(parts) + ",)\n"
    exec(source, namespace)  # the source is made from column names of our own tables only
    return namespace["build"]


def _tuples(table: Table, rows: Sequence[dict[str, Any]], dialect: str) -> list[tuple[Any, ...]]:
    build = _tuple_builder(table, dialect)
    return [build(row) for row in rows]


def _quoted_columns(table: Table) -> str:
    return ", ".join(f'"{column.name}"' for column in table.columns)


def _insert_sqlite(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    columns = _quoted_columns(table)
    marks = ", ".join("?" for _ in table.columns)
    statement = f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING'
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, _tuples(table, rows, "sqlite"))
    finally:
        cursor.close()


def _insert_postgres(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    columns = _quoted_columns(table)
    staging = f"_interlog_stage_{table.name}"
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" '
            f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
        )
        with cursor.copy(f'COPY "{staging}" ({columns}) FROM STDIN') as copy:
            for row in _tuples(table, rows, "postgresql"):
                copy.write_row(row)
        cursor.execute(
            f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{staging}" '
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute(f'TRUNCATE "{staging}"')


def insert_ignoring_conflicts(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows (dicts by column name) in the caller's transaction, skipping existing keys."""
    if not rows:
        return
    dialect = connection.dialect.name
    if dialect == "sqlite":
        _insert_sqlite(connection, table, rows)
    elif dialect == "postgresql" and connection.dialect.driver == "psycopg":
        _insert_postgres(connection, table, rows)
    else:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        names = [column.name for column in table.columns]
        values = [{name: row.get(name) for name in names} for row in rows]
        connection.execute(insert(table).on_conflict_do_nothing(), values)
