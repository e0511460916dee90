"""Alembic environment: metadata from store.models, URL from the config or settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from migrations import include_object
from store.db import create_store_engine, is_sqlite
from store.models import metadata
from store.settings import get_settings

config = context.config


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def _configure(connection: Connection | None, url: str) -> None:
    context.configure(
        connection=connection,
        url=None if connection is not None else url,
        target_metadata=metadata,
        render_as_batch=is_sqlite(url),
        compare_type=True,
        compare_server_default=True,
        include_object=include_object,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    url = _database_url()
    _configure(None, url)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _database_url()
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            _configure(connection, url)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
