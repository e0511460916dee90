"""Engine settings: SQLite in WAL with foreign keys and a busy timeout; psycopg 3 for PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from store.db import create_store_engine, normalize_url


def test_sqlite_engine_uses_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    engine.dispose()


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_postgres_engine_talks_to_the_server(postgres_url: str) -> None:
    engine = create_store_engine(postgres_url)
    with engine.connect() as connection:
        assert str(connection.execute(text("SELECT current_database()")).scalar()) in postgres_url
        assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_importing_store_creates_no_engine_or_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import store.db, store.models, store.settings, ingest.app, ingest.cli"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []
