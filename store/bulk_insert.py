"""Fast idempotent bulk inserts at the driver level (no duplicates on both backends).

SQLAlchemy Core spends most of a large executemany in per-value bind processing. Here each
column gets one small converter to the driver's own representation, written to agree with what
SQLAlchemy stores (so reads through SQLAlchemy and DuckDB see the same values), and a generated
function turns a row (a dict by column name) into a tuple in the table's column order:
  SQLite      multi-row INSERT ... ON CONFLICT DO NOTHING (sqlite3): UUIDs as 32-hex text,
              UTC timestamps as "YYYY-MM-DD HH:MM:SS.ffffff" text, JSON as text.
  PostgreSQL  psycopg binary COPY straight into the table under a savepoint (UUIDs, aware
              datetimes, JSON dumped by orjson as jsonb or json, by the column's type). COPY
              cannot skip conflicts: when a row already exists (a replayed batch), the savepoint
              is rolled back and the rows go through a per-connection temporary table and one
              INSERT ... SELECT ... ON CONFLICT DO NOTHING.
Any other dialect falls back to Core executemany.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain, repeat
from typing import Any

import orjson
import psycopg
from psycopg.types.json import JsonbBinaryDumper, JsonBinaryDumper
from psycopg.types.string import StrBinaryDumper, StrBinaryDumperVarchar
from psycopg.types.uuid import UUIDBinaryDumper
from sqlalchemy import JSON, Connection, Engine, Table, Uuid
from sqlalchemy.dialects import postgresql, sqlite

from store.types import UTCDateTime

Converter = Callable[[Any], Any]
Row = tuple[Any, ...]

# Python 3.11's sqlite3 binds only int, float, str and bytearray directly: any other value,
# None included, goes through its adapter lookup, which for None ends in two failed attribute
# lookups, one of them formatting an AttributeError message that is then thrown away. An
# interaction row binds about nine Nones: that was 7-9 µs per row, over half of what binding
# and inserting it cost. With an adapter registered for None, the lookup finds it at once;
# `{}.get` is a C function that returns None for None, so NULL is bound as before.
_NONE_ADAPTER: Callable[[None], None] = {}.get  # type: ignore[assignment]
sqlite3.register_adapter(type(None), _NONE_ADAPTER)


class LazyRows:
    """Rows made one at a time while the driver consumes them, so a big batch never holds
    them all (fewer live objects, less work for the garbage collector); iterable again."""

    def __init__(self, make: Callable[[], Iterator[Row]]) -> None:
        self._make = make

    def __iter__(self) -> Iterator[Row]:
        return self._make()


Rows = Sequence[Row] | LazyRows


def _identity(value: Any) -> Any:
    return value


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid_hex(value: Any) -> Any:
    if type(value) is str and _CANONICAL_UUID.fullmatch(value):
        return value.replace("-", "")
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value.hex
    return uuid.UUID(str(value)).hex


def _uuid_bytes(value: Any) -> Any:
    """psycopg: the 16 bytes of the UUID (_UuidDumper sends them as they are).

    Four calls per bulk item: the usual text form is tried first, without a context manager
    (`contextlib.suppress` cost more than the conversion)."""
    if type(value) is str and len(value) == 36 and value[8::5][:4] == "----":
        try:
            data = bytes.fromhex(value.replace("-", ""))  # hex digits only, at most 32
        except ValueError:
            data = b""
        if len(data) == 16:  # fromhex skips whitespace: anything else goes to uuid.UUID
            return data
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value.bytes
    return uuid.UUID(str(value)).bytes


def _uuid_value(value: Any) -> Any:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _aware_datetime(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime: Interlog stores timezone-aware timestamps only")
    return value


#: The last datetime formatted for SQLite and its text: a bulk request stamps many rows with
#: one `now`, formatted once. A tuple, replaced whole, so threads never see half of it.
_last_sqlite_datetime: tuple[Any, str] = (None, "")


def _sqlite_datetime(value: Any) -> Any:
    global _last_sqlite_datetime
    if value is None:
        return None
    last = _last_sqlite_datetime
    if value is last[0]:
        return last[1]
    moment = _aware_datetime(value).astimezone(UTC).replace(tzinfo=None)
    text = moment.isoformat(" ", "microseconds")
    _last_sqlite_datetime = (value, text)
    return text


def _json_text(value: Any) -> Any:
    if value is None:
        return None
    if not value and isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"  # params, mostly
    return orjson.dumps(value).decode()


WRITER_KINDS = ("sqlite", "psycopg", "core")


def writer_kind(connectable: Connection | Engine) -> str:
    """How rows reach this database: "sqlite", "psycopg" (COPY) or "core"."""
    dialect = connectable.dialect
    if dialect.name == "sqlite":
        return "sqlite"
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return "psycopg"
    return "core"


def _converter(column_type: Any, kind: str) -> Converter:
    if isinstance(column_type, Uuid):
        return {"sqlite": _uuid_hex, "psycopg": _uuid_bytes}.get(kind, _uuid_value)
    if isinstance(column_type, UTCDateTime):
        return _sqlite_datetime if kind == "sqlite" else _aware_datetime
    is_json = isinstance(column_type, JSON) or "JSON" in type(column_type).__name__.upper()
    if is_json and kind == "sqlite":
        return _json_text
    return _identity  # psycopg: JSON values are dumped by the COPY (_COPY_DUMPERS)


def column_converter(table: Table, column: str, kind: str) -> Converter:
    """The function that turns a value of COLUMN into what a writer of KIND is given."""
    return _converter(table.c[column].type, kind)


def row_builder(
    table: Table, kind: str, defaults: Mapping[str, Any] | None = None
) -> Callable[[Mapping[str, Any]], Row]:
    """A function row -> tuple for this table, generated: no per-value loop overhead.

    DEFAULTS stand in for keys a row lacks; a None given for a column whose default is a dict
    or a list becomes that default too. Generate once and keep the function."""
    namespace: dict[str, Any] = {}
    given = dict(defaults or {})
    parts = []
    for number, column in enumerate(table.columns):
        convert = _converter(column.type, kind)
        key = repr(column.name)
        value = f"get({key})"
        if column.name in given:
            namespace[f"d{number}"] = given[column.name]
            value = f"get({key}, d{number})"
            if isinstance(given[column.name], dict | list):
                value = f"({value} or d{number})"
        if convert is not _identity:
            namespace[f"c{number}"] = convert
            value = f"c{number}({value})"
        parts.append(value)
    source = "def build(row):\n    get = row.get\n    return (" + ", ".join(parts) + ",)\n"
    exec(source, namespace)  # the source is made from column names of our own tables only
    build: Callable[[Mapping[str, Any]], Row] = namespace["build"]
    return build


def _quoted_columns(table: Table) -> str:
    return ", ".join(f'"{column.name}"' for column in table.columns)


#: Most rows per multi-row INSERT on SQLite (bounded by its limit on bound variables too).
SQLITE_ROWS_PER_STATEMENT = 250


@lru_cache(maxsize=64)
def _sqlite_insert(table: Table, rows: int) -> str:
    columns = _quoted_columns(table)
    values = "(" + ", ".join("?" for _ in table.columns) + ")"
    return (
        f'INSERT INTO "{table.name}" ({columns}) VALUES '
        + ", ".join(values for _ in range(rows))
        + " ON CONFLICT DO NOTHING"
    )


def statement_sizes(rows: int, per_statement: int) -> Iterator[int]:
    """Rows per INSERT for ROWS rows: full statements of PER_STATEMENT rows, then the rest as
    powers of two (100 = 64 + 32 + 4). Each distinct row count is a statement of its own that
    sqlite3 keeps prepared in its per-connection cache (128 statements), and a prepared 250-row
    INSERT takes about half a megabyte: one statement per remainder length let a gateway grow by
    tens of MB per pooled connection. With powers of two a table has at most 9 shapes."""
    full, rest = divmod(rows, per_statement)
    yield from repeat(per_statement, full)
    size = 1 << max(rest.bit_length() - 1, 0)
    while rest:
        if rest >= size:
            yield size
            rest -= size
        size >>= 1


def _insert_sqlite(connection: Connection, table: Table, rows: Iterable[Row]) -> None:
    """Multi-row INSERTs: sqlite3 lets other threads run Python only while a statement steps,
    so one step per few hundred rows (not one per row, as executemany does) keeps the writer
    from queueing for the GIL behind busy threads, row after row."""
    driver = connection.connection.driver_connection
    assert driver is not None
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, limit // len(table.columns)))
    pending = rows if isinstance(rows, Sequence) else list(rows)
    cursor = driver.cursor()
    try:
        start = 0
        for size in statement_sizes(len(pending), per_statement):
            chunk = pending[start : start + size]
            start += size
            cursor.execute(_sqlite_insert(table, size), list(chain.from_iterable(chunk)))
    finally:
        cursor.close()


class _OrjsonJsonbDumper(JsonbBinaryDumper):
    """jsonb for binary COPY, dumped by orjson (a COPY cursor registers it by oid only)."""

    _dumps = orjson.dumps


#: PostgreSQL cannot hold U+0000 in text or jsonb (SQLite can): there it becomes U+FFFD.
NUL, NUL_REPLACEMENT = "\x00", "\ufffd"
_NUL_IN_JSON = b"\\u0000"
#: What the server answers to U+0000 in text (a 0x00 byte) and in jsonb (a \u0000 escape).
_NUL_REFUSED = (psycopg.errors.CharacterNotInRepertoire, psycopg.errors.UntranslatableCharacter)


def without_nul(value: Any) -> Any:
    """VALUE (a JSON value: str, list, dict, ...) with every U+0000 replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(NUL, NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def _json_dumps_without_nul(value: Any) -> bytes:
    data = orjson.dumps(value)
    # A match may also be an escaped backslash before "u0000": the rewrite is right either way.
    return orjson.dumps(without_nul(value)) if _NUL_IN_JSON in data else data


class _JsonbWithoutNulDumper(JsonbBinaryDumper):
    """jsonb for binary COPY, U+0000 replaced."""

    _dumps = staticmethod(_json_dumps_without_nul)


class _JsonWithoutNulDumper(JsonBinaryDumper):
    """json (interaction.messages, migration 0005) for binary COPY, U+0000 replaced, always:
    json takes a `\\u0000` escape that jsonb refuses, so the server never asks for a retry,
    and the value would then read back with U+0000 where jsonb columns and text have U+FFFD.
    Looking for the escape in orjson's output costs little beside dumping."""

    _dumps = staticmethod(_json_dumps_without_nul)


class _TextWithoutNulDumper(StrBinaryDumper):
    """text for binary COPY, U+0000 replaced."""

    def dump(self, obj: str) -> bytes:
        return (obj.replace(NUL, NUL_REPLACEMENT) if NUL in obj else obj).encode(self._encoding)


class _VarcharWithoutNulDumper(StrBinaryDumperVarchar):
    """varchar for binary COPY, U+0000 replaced."""

    dump = _TextWithoutNulDumper.dump


class _UuidDumper(UUIDBinaryDumper):
    """uuid for binary COPY: the 16 bytes _uuid_bytes made."""

    def dump(self, obj: Any) -> bytes:
        return obj if isinstance(obj, bytes) else super().dump(obj)  # type: ignore[return-value]


#: Column type oids of each table, per driver connection (one catalog query per table each).
_column_oids: weakref.WeakKeyDictionary[Any, dict[str, list[int]]] = weakref.WeakKeyDictionary()


def _table_oids(cursor: psycopg.Cursor[Any], table: Table) -> list[int]:
    known = _column_oids.setdefault(cursor.connection, {})
    if table.name not in known:
        cursor.execute(
            "SELECT attname, atttypid::int FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [f'"{table.name}"'],
        )
        oids = dict(cursor.fetchall())
        known[table.name] = [oids[column.name] for column in table.columns]
    return known[table.name]


def _copy(cursor: psycopg.Cursor[Any], target: str, table: Table, rows: Rows) -> None:
    oids = _table_oids(cursor, table)
    statement = f'COPY "{target}" ({_quoted_columns(table)}) FROM STDIN (FORMAT BINARY)'
    with cursor.copy(statement) as copy:
        copy.set_types(oids)
        write_row = copy.write_row
        for row in rows:
            write_row(row)


#: Dumpers of a COPY cursor, chosen by the oids of the table's column types (COPY set_types):
#: jsonb and json columns each get theirs. Those that replace U+0000 run Python per value, so
#: they are used only after the server refused a COPY (psycopg's C text dumper is faster); json
#: replaces it always (_JsonWithoutNulDumper).
_COPY_DUMPERS = (_OrjsonJsonbDumper, _JsonWithoutNulDumper, _UuidDumper)
_COPY_DUMPERS_WITHOUT_NUL = (
    _JsonbWithoutNulDumper,
    _JsonWithoutNulDumper,
    _UuidDumper,
    _TextWithoutNulDumper,
    _VarcharWithoutNulDumper,
)


def _use_dumpers(cursor: psycopg.Cursor[Any], dumpers: tuple[type[Any], ...]) -> None:
    for dumper in dumpers:
        cursor.adapters.register_dumper(None, dumper)


#: What the server answers to a binary COPY of a value whose column changed type since this
#: connection read the types (_table_oids): a migration ran meanwhile (0005: jsonb -> json).
_TYPES_CHANGED = (
    psycopg.errors.InvalidTextRepresentation,  # jsonb's bytes in json
    psycopg.errors.InvalidBinaryRepresentation,
    psycopg.errors.InternalError_,  # json's bytes in jsonb: "unsupported jsonb version number"
)


def _staging_table(table: Table) -> str:
    return f"_interlog_stage_{table.name}"


def _insert_postgres(connection: Connection, table: Table, rows: Rows) -> None:
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute("SAVEPOINT interlog_copy")
        try:
            _copy_ignoring_conflicts(cursor, table, rows)
        except _TYPES_CHANGED:
            # Rare: the types were read before a migration that changed one. Read them again,
            # and make the staging table again (it copied the old ones); once.
            cursor.execute("ROLLBACK TO SAVEPOINT interlog_copy")
            known = _column_oids.get(cursor.connection, {}).pop(table.name, None)
            if _table_oids(cursor, table) == known:
                raise
            cursor.execute(f'DROP TABLE IF EXISTS "{_staging_table(table)}"')
            _copy_ignoring_conflicts(cursor, table, rows)
        cursor.execute("RELEASE SAVEPOINT interlog_copy")


def _copy_ignoring_conflicts(cursor: psycopg.Cursor[Any], table: Table, rows: Rows) -> None:
    """COPY ROWS into TABLE, under savepoint interlog_copy (the caller makes and releases it)."""
    _use_dumpers(cursor, _COPY_DUMPERS)
    try:
        try:
            _copy(cursor, table.name, table, rows)
        except _NUL_REFUSED:  # rare: a model wrote U+0000; again, with it replaced
            cursor.execute("ROLLBACK TO SAVEPOINT interlog_copy")
            _use_dumpers(cursor, _COPY_DUMPERS_WITHOUT_NUL)
            _copy(cursor, table.name, table, rows)
        return
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT interlog_copy")
    # Some rows exist already: stage them all, keep only the new ones.
    _use_dumpers(cursor, _COPY_DUMPERS_WITHOUT_NUL)
    staging = _staging_table(table)
    columns = _quoted_columns(table)
    cursor.execute(
        f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" '
        f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
    )
    _copy(cursor, staging, table, rows)
    cursor.execute(
        f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{staging}" '
        "ON CONFLICT DO NOTHING"
    )
    cursor.execute(f'TRUNCATE "{staging}"')


def insert_rows_ignoring_conflicts(connection: Connection, table: Table, rows: Rows) -> None:
    """Insert tuples made by `row_builder(table, dialect)` in the caller's transaction,
    skipping rows whose key exists already. ROWS may be iterated twice (PostgreSQL, when some
    exist already)."""
    kind = writer_kind(connection)
    if kind == "sqlite":
        _insert_sqlite(connection, table, rows)
    elif kind == "psycopg":
        _insert_postgres(connection, table, rows)
    else:
        dialect = connection.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        names = [column.name for column in table.columns]
        values = [dict(zip(names, row, strict=True)) for row in rows]
        connection.execute(insert(table).on_conflict_do_nothing(), values)


@lru_cache(maxsize=64)
def _plain_builder(table: Table, kind: str) -> Callable[[Mapping[str, Any]], Row]:
    return row_builder(table, kind)


def build_rows(table: Table, kind: str, rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Rows (dicts by column name) as tuples for a writer of KIND, in the table's column order."""
    return list(map(_plain_builder(table, kind), rows))


def insert_ignoring_conflicts(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rows (dicts by column name) in the caller's transaction, skipping existing keys."""
    if not rows:
        return
    built = build_rows(table, writer_kind(connection), rows)
    insert_rows_ignoring_conflicts(connection, table, built)
