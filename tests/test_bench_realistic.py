"""bench/realistic.py builds its rows without the gateway's writer (for speed) and checks them
against it (store.interactions.prepare_rows): a small store on SQLite and PostgreSQL, so a new
interaction column that the generator does not know fails here, not in a benchmark run."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from bench import realistic
from store.db import create_store_engine
from store.interactions import INTERACTION_TABLE


def _count(url: str) -> int:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(INTERACTION_TABLE)).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_small_realistic_store_on_both_backends(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "realistic.db"
    realistic.main(
        ["--rows", "600", "--chunk", "200", "--sqlite", str(path), "--postgres", postgres_url,
         "--quiet", "--end", "2026-12-01T00:00:00+00:00"]
    )  # fmt: skip
    assert _count(f"sqlite:///{path}") == 600
    assert _count(postgres_url) == 600
