"""Engines and sessions for the store, built from settings; nothing is connected at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from store.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CHECKPOINT_PAGES = 10_000
#: Every SQLite connection commits durably (see _configure_sqlite).
SQLITE_SYNCHRONOUS = "FULL"


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; bare `postgresql://` means psycopg 3, never psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(url: str | URL) -> bool:
    return normalize_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL, not NORMAL: in WAL mode NORMAL does not fsync the WAL at commit, so a commit can
    # be lost to a power loss or OS crash until the next checkpoint. The journal writer
    # deletes journal segments right after its commit returns (ingest/writer.py), and bulk
    # ingest answers 200 once committed: both promise the rows are on disk. Cost: one fsync of
    # the WAL per transaction (measured in README "Configuration", INTERLOG_JOURNAL_FSYNC).
    cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
    # Checkpoint every 10,000 WAL pages (~40 MB), not SQLite's 1,000: a page written by many
    # commits between two checkpoints (the session index's, under random session ids) is then
    # copied once, not once every 1,000 pages. Bulk ingest: ~10% less CPU per interaction.
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
    cursor.close()


def create_store_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for a SQLite file (WAL, busy timeout, foreign keys) or PostgreSQL (psycopg 3)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(parsed, **kwargs)


def engine_from_settings(settings: Settings) -> Engine:
    return create_store_engine(settings.database_url)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


#: SQLSTATEs of a store whose tables are missing or older than this code (PostgreSQL).
_UNDEFINED_TABLE, _UNDEFINED_COLUMN = "42P01", "42703"


def unusable_store(exc: DBAPIError, url: str | URL) -> str | None:
    """What a user must do when EXC says the store at URL cannot be used at all (not reachable,
    no Interlog tables, an older schema); None for any other database error."""
    where = normalize_url(url).render_as_string(hide_password=True)
    orig = exc.orig
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    code = getattr(orig, "sqlstate", None)
    if code == _UNDEFINED_TABLE or message.startswith("no such table"):
        return (
            f"the store at {where} is missing Interlog tables ({message}). Create them with "
            "`interlog db upgrade` (`interlog up` and `interlog serve` migrate on start)."
        )
    if code == _UNDEFINED_COLUMN or message.startswith("no such column"):
        return (
            f"the store at {where} has an older schema than this Interlog ({message}). "
            "Upgrade it with `interlog db upgrade`."
        )
    if (
        isinstance(exc, OperationalError)
        and code is None
        and (exc.connection_invalidated or "connect" in message or "unable to open" in message)
    ):
        return f"cannot reach the store at {where}: {message}. Check INTERLOG_DATABASE_URL."
    return None
