"""Bounds on the relational reads of one request: a statement timeout, and cancellation.

`read_connection(engine, guard)` yields a connection whose statements each run under the guard's
timeout: on PostgreSQL `SET LOCAL statement_timeout` in the read transaction, on SQLite a
progress handler that interrupts a statement past its deadline. `guard.cancel()`, from any
thread, stops the statement running now (psycopg's cancel request, what `pg_cancel_backend`
does; `sqlite3.Connection.interrupt()`) and refuses the next ones: the gateway calls it when the
HTTP client goes away (ingest/reads.py), so an abandoned query does not keep a database busy.
Either way the read raises QueryCancelledError (`timed_out` tells which).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

from store.errors import QueryCancelledError
from store.settings import get_settings

log = logging.getLogger("interlog.reads")

#: SQLite runs the progress handler every this many virtual machine instructions (~0.1 ms).
SQLITE_PROGRESS_STEPS = 10_000
#: PostgreSQL's SQLSTATE for a statement stopped by statement_timeout or a cancel request.
_QUERY_CANCELED = "57014"
#: Longest wait for PostgreSQL to take a cancel request.
_CANCEL_TIMEOUT_SECONDS = 5.0


class ReadGuard:
    """The limits of one request's reads: `timeout` seconds per statement (None or 0: none),
    and `cancel()`. One guard serves one read at a time."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout or None
        self._lock = threading.Lock()
        self._raw: Any = None  # the DBAPI connection of the read in progress
        self._sqlite = False
        self._cancelled = False
        self._deadline = math.inf
        self._duckdb: list[Any] = []  # DuckDB cursors of the analytics store being watched
        self._callbacks: list[Callable[[], None]] = []  # what else cancel() must stop

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop the statement running now and refuse the next ones; safe from any thread.

        The lock is held while the cancel request goes out, so the connection cannot go back to
        the pool (and serve another request) before the request reaches it."""
        with self._lock:
            self._cancelled = True
            if self._raw is not None:
                _interrupt(self._raw, sqlite=self._sqlite)
            for cursor in self._duckdb:
                cursor.interrupt()
            for callback in self._callbacks:
                callback()

    @contextmanager
    def connect(self, engine: Engine) -> Iterator[Connection]:
        """A connection of ENGINE whose statements run under this guard."""
        self._refuse_if_cancelled()
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            raw = connection.connection.dbapi_connection
            if not sqlite and self.timeout is not None:
                milliseconds = max(1, math.ceil(self.timeout * 1000))
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
            with self._lock:
                self._raw, self._sqlite = raw, sqlite
            event.listen(connection, "before_cursor_execute", self._before_statement)
            if sqlite:
                assert raw is not None
                raw.set_progress_handler(self._sqlite_progress, SQLITE_PROGRESS_STEPS)
            try:
                yield connection
            except DBAPIError as exc:
                stopped = self._stopped(exc, sqlite=sqlite)
                if stopped is None:
                    raise
                raise stopped from exc
            finally:
                with self._lock:
                    self._raw = None
                if sqlite:
                    assert raw is not None
                    raw.set_progress_handler(None, 0)
                event.remove(connection, "before_cursor_execute", self._before_statement)

    @contextmanager
    def watching(self, cursor: Any) -> Iterator[None]:
        """Bound the queries of a DuckDB cursor (the analytics store) the same way: the cursor
        is interrupted when the timeout passes or `cancel()` is called, and the query raises
        QueryCancelledError. The timeout counts from here, for everything run in the block."""
        self._refuse_if_cancelled()
        expired = threading.Event()
        timer = None
        if self.timeout is not None:

            def expire() -> None:
                expired.set()
                cursor.interrupt()

            timer = threading.Timer(self.timeout, expire)
            timer.daemon = True
            timer.start()
        with self._lock:
            self._duckdb.append(cursor)
        try:
            yield
        except Exception as exc:
            if not (expired.is_set() or self._cancelled):
                raise
            if self._cancelled:
                raise QueryCancelledError("the query was cancelled: the client went away") from exc
            raise QueryCancelledError(timeout_message(self.timeout), timed_out=True) from exc
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._duckdb.remove(cursor)

    @contextmanager
    def on_cancel(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call CALLBACK if `cancel()` comes while the block runs (at once if it came before):
        e.g. close the connection to the process that runs the read."""
        with self._lock:
            if self._cancelled:
                callback()
            self._callbacks.append(callback)
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)

    def _refuse_if_cancelled(self) -> None:
        if self._cancelled:
            raise QueryCancelledError("the query was cancelled: the client went away")

    def _before_statement(self, *_: Any) -> None:
        self._refuse_if_cancelled()
        if self.timeout is not None:
            self._deadline = time.monotonic() + self.timeout

    def _sqlite_progress(self) -> bool:
        """True (interrupt) once the statement is past its deadline or the read is cancelled."""
        return self._cancelled or time.monotonic() > self._deadline

    def _stopped(self, exc: DBAPIError, *, sqlite: bool) -> QueryCancelledError | None:
        """The QueryCancelledError that EXC means, or None for any other database error."""
        if sqlite:
            stopped = "interrupted" in str(exc.orig)
        else:
            stopped = getattr(exc.orig, "sqlstate", None) == _QUERY_CANCELED
        if not stopped:
            return None
        if self._cancelled:
            return QueryCancelledError("the query was cancelled: the client went away")
        return QueryCancelledError(timeout_message(self.timeout), timed_out=True)


def timeout_message(timeout: float | None) -> str:
    """What a client is told when its query ran past the read timeout."""
    return (
        f"the query ran longer than the read timeout ({timeout or 0:g} s, "
        "INTERLOG_READ_TIMEOUT_SECONDS) and was stopped; narrow the filters (a project, a time "
        "range, fewer label conditions) or raise the timeout"
    )


def _interrupt(raw: Any, *, sqlite: bool) -> None:
    if sqlite:
        raw.interrupt()
        return
    try:
        raw.cancel_safe(timeout=_CANCEL_TIMEOUT_SECONDS)
    except Exception:  # the read goes on to its timeout; nothing else to do but say so
        log.warning("could not cancel a PostgreSQL query", exc_info=True)


@contextmanager
def read_connection(engine: Engine, guard: ReadGuard | None = None) -> Iterator[Connection]:
    """A connection for reads under GUARD; without one, under INTERLOG_READ_TIMEOUT_SECONDS."""
    if guard is None:
        guard = ReadGuard(get_settings().read_timeout_seconds)
    with guard.connect(engine) as connection:
        yield connection
