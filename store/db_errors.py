"""What a database error means for its caller: the store is away or busy (retry later), or it
refuses this data (retrying can never succeed).

The journal writer retries the first and sets the record aside for the second (ingest/writer.py);
the REST API answers the first 503 with Retry-After and the second 400 (ingest/errors.py).
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

#: SQLSTATE classes of errors caused by the record itself: data exception (22: a value out of
#: range, invalid text), integrity constraint violation (23) and program limit exceeded (54: e.g.
#: an index row larger than a btree page allows). Every other SQLSTATE (connection, lock,
#: serialization, resources, operator intervention, a schema not migrated yet) is the store's
#: state: retrying later may succeed, and rejecting records for it would set aside every record.
PERMANENT_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
#: SQLite's primary result codes caused by the record: TOOBIG, CONSTRAINT, MISMATCH, RANGE.
PERMANENT_SQLITE_CODES = frozenset({18, 19, 20, 25})


def is_transient(exc: BaseException) -> bool:
    """True when the store is unreachable, busy or not ready (retry the batch later); False when
    it refuses the data (find the bad records and set them aside).

    By SQLSTATE on PostgreSQL (psycopg files ProgramLimitExceeded under OperationalError, yet
    retrying it can never succeed) and by result code on SQLite. Driver errors count too:
    store.bulk_insert talks to sqlite3 and psycopg directly. Errors that are not the database's
    (a bug meeting an odd record) are treated as the record's.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    driver = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(driver, psycopg.Error):
        sqlstate = driver.sqlstate
        if sqlstate is None:  # no answer from the server: the connection failed
            return isinstance(driver, psycopg.OperationalError | psycopg.InterfaceError)
        return sqlstate[:2] not in PERMANENT_SQLSTATE_CLASSES
    if isinstance(driver, sqlite3.Error):
        code = getattr(driver, "sqlite_errorcode", None)
        if isinstance(driver, sqlite3.IntegrityError | sqlite3.DataError):
            return False
        if code is not None and (code & 0xFF) in PERMANENT_SQLITE_CODES:
            return False
        return isinstance(driver, sqlite3.OperationalError | sqlite3.InterfaceError)
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, OSError | TimeoutError)


def driver_message(exc: BaseException) -> str:
    """The first line of the database's own message (without SQLAlchemy's statement dump)."""
    driver = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(driver).strip().splitlines()
    return text[0][:300] if text else type(driver).__name__
