"""Fixtures: migrated SQLite files and PostgreSQL databases, made fresh per test.

Each backend is migrated once per test session into a template (a file for SQLite, a template
database for PostgreSQL); every test then gets its own copy, so tests are isolated and fast.
PostgreSQL must be reachable (127.0.0.1:5432 by default, INTERLOG_TEST_POSTGRES_URL overrides):
if it is not, PostgreSQL cases fail with a message saying so; they are never silently skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

import migrations
from store.analytics.lake import lake_location
from store.db import create_store_engine
from store.settings import Settings, get_settings

# Gateways started by tests do not start the analytics sync owner child (one more process per
# gateway, syncing every half second): their analytics requests catch up in the request
# instead, which is the same code. Tests of the owner turn it on (tests/store/analytics/).
os.environ.setdefault("INTERLOG_ANALYTICS_SYNC", "false")
# Nor the analytics reader child: their analytics run in the gateway process, the same
# questions; tests/ingest/test_analytics_reader.py and test_lean_imports.py turn it on.
os.environ.setdefault("INTERLOG_ANALYTICS_READER", "false")

POSTGRES_SERVER_URL = os.environ.get(
    "INTERLOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgres"]


def _pg_admin_conninfo() -> str:
    url = make_url(POSTGRES_SERVER_URL)
    parts = [f"host={url.host or '127.0.0.1'}", f"port={url.port or 5432}"]
    parts.append(f"user={url.username or 'postgres'}")
    if url.password:
        parts.append(f"password={url.password}")
    parts.append(f"dbname={url.database or 'postgres'}")
    return " ".join(parts)


def _pg_execute(sql: str) -> None:
    try:
        with psycopg.connect(_pg_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(POSTGRES_SERVER_URL).host}: {exc}. "
            "Start it (see README) or set INTERLOG_TEST_POSTGRES_URL.",
            pytrace=False,
        )


def _pg_database_url(name: str) -> str:
    return make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)


def create_postgres_database(*, template: str | None = None) -> str:
    """Create a uniquely named database on the local server and return its URL."""
    name = f"interlog_test_{uuid.uuid4().hex[:12]}"
    suffix = f" TEMPLATE {template}" if template else ""
    _pg_execute(f'CREATE DATABASE "{name}"{suffix}')
    return _pg_database_url(name)


def drop_postgres_database(url: str) -> None:
    parsed = make_url(url)
    _pg_execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    # The analytics store's files of a PostgreSQL store made in this working directory.
    lake = lake_location(parsed, Settings(analytics_path=None))
    shutil.rmtree(lake.data_path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_analytics_files() -> Iterator[None]:
    """PostgreSQL stores keep their analytics files in `interlog-analytics/` of the working
    directory; remove those of this session's test databases however they were dropped."""
    yield
    for path in Path("interlog-analytics").glob("*-interlog_test_*"):
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        Path("interlog-analytics").rmdir()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are cached per process: each test reads its own environment (CLI tests)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrations.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[str]:
    url = create_postgres_database()
    try:
        migrations.upgrade(url)
        # A template database must have no open connections when it is copied.
        yield str(make_url(url).database)
    finally:
        drop_postgres_database(url)


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """URL of a migrated SQLite file of this test's own."""
    path = tmp_path / "interlog.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a migrated PostgreSQL database of this test's own, dropped afterwards."""
    template = request.getfixturevalue("_postgres_template")
    url = create_postgres_database(template=template)
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated store, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a migrated store, once per backend."""
    engine = create_store_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database, parametrised like `database_url` via indirect params."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)
