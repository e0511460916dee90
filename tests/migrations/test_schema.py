"""Alembic owns the schema: upgrading an empty database gives exactly store.models."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import migrations
from store.db import create_store_engine, is_sqlite
from store.models import metadata

pytestmark = pytest.mark.parametrize("empty_database_url", ["sqlite", "postgres"], indirect=True)


def _schema_diff(url: str) -> list[Any]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "render_as_batch": is_sqlite(url),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_of_empty_database_matches_models(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url)
    assert _schema_diff(empty_database_url) == []
    assert _tables(empty_database_url) == set(metadata.tables) | {"alembic_version"}


def test_downgrade_to_base_and_upgrade_again(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url)
    migrations.downgrade(empty_database_url, "base")
    assert _tables(empty_database_url) <= {"alembic_version"}
    migrations.upgrade(empty_database_url)
    assert _schema_diff(empty_database_url) == []


def test_models_without_migration_show_a_diff(empty_database_url: str) -> None:
    """The comparison itself can fail: an empty database differs from the models."""
    diff = _schema_diff(empty_database_url)
    added = {entry[1].name for entry in diff if entry[0] == "add_table"}
    assert added == set(metadata.tables)
