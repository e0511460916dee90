"""Read guards: a statement past the read timeout is stopped, `cancel()` from another thread
stops the statement in progress, and the connection serves the next read, on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text

from store.errors import QueryCancelledError
from store.read_guard import ReadGuard, read_connection

#: Seconds of work for either database, far longer than any timeout or cancel below.
_SLOW = {
    "sqlite": "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r "
    "WHERE i < 1000000000) SELECT count(*) FROM r",
    "postgresql": "SELECT pg_sleep(30)",
}


def _slow(engine: Engine) -> str:
    return _SLOW[engine.dialect.name]


def test_a_statement_past_the_timeout_is_stopped(engine: Engine) -> None:
    started = time.monotonic()
    with (
        pytest.raises(QueryCancelledError, match="INTERLOG_READ_TIMEOUT_SECONDS") as caught,
        read_connection(engine, ReadGuard(0.2)) as connection,
    ):
        connection.execute(text(_slow(engine))).all()
    assert caught.value.timed_out
    assert time.monotonic() - started < 5
    with read_connection(engine, ReadGuard(0.2)) as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1


def test_the_timeout_is_per_statement(engine: Engine) -> None:
    with read_connection(engine, ReadGuard(0.5)) as connection:
        for _ in range(4):
            time.sleep(0.2)  # the read as a whole outlives the timeout; no statement does
            assert connection.execute(text("SELECT 1")).scalar_one() == 1


def test_cancel_from_another_thread_stops_the_statement(engine: Engine) -> None:
    guard = ReadGuard(30)
    threading.Timer(0.3, guard.cancel).start()
    started = time.monotonic()
    with (
        pytest.raises(QueryCancelledError, match="client went away") as caught,
        read_connection(engine, guard) as connection,
    ):
        connection.execute(text(_slow(engine))).all()
    assert not caught.value.timed_out
    assert time.monotonic() - started < 5
    with pytest.raises(QueryCancelledError), read_connection(engine, guard):
        pass  # a cancelled guard refuses further reads
    with read_connection(engine, ReadGuard(30)) as connection:  # the pooled connection is fine
        assert connection.execute(text("SELECT 1")).scalar_one() == 1


def test_a_cancelled_guard_refuses_the_next_statement(engine: Engine) -> None:
    guard = ReadGuard(30)
    with read_connection(engine, guard) as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
        guard.cancel()
        with pytest.raises(QueryCancelledError):
            connection.execute(text("SELECT 2"))


def test_no_timeout_means_no_limit(engine: Engine) -> None:
    with read_connection(engine, ReadGuard(0)) as connection:
        if engine.dialect.name == "postgresql":
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "0"
        assert connection.execute(text("SELECT 1")).scalar_one() == 1


def test_on_cancel_calls_back_while_registered_and_at_once_when_late() -> None:
    guard = ReadGuard(30)
    calls: list[str] = []
    with guard.on_cancel(lambda: calls.append("during")):
        assert calls == []
        guard.cancel()
        assert calls == ["during"]
    guard.cancel()  # no longer registered: not called again
    assert calls == ["during"]
    with guard.on_cancel(lambda: calls.append("late")):  # cancelled before: called at once
        assert calls == ["during", "late"]
