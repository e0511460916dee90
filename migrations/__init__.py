"""Alembic migrations of the store; `upgrade` and `downgrade` run them programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

from store.db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str | URL) -> Config:
    """An Alembic config pointing at this package and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = normalize_url(database_url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(database_url: str | URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | URL, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str | URL) -> None:
    command.current(alembic_config(database_url), verbose=False)
