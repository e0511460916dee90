"""Alembic owns the schema: upgrading an empty database gives exactly store.models."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

import migrations
from store.catalog import create_project
from store.db import create_store_engine, is_sqlite
from store.interactions import INTERACTION_TABLE as INTERACTION
from store.interactions import LABEL_TABLE as LABEL
from store.interactions import InteractionRecord, write_interactions
from store.models import metadata
from store.types import utcnow
from tests.migrations.older_writes import write_before_0006

REFUSED = (IntegrityError, sqlite3.IntegrityError, psycopg.errors.IntegrityError)

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
                    "include_object": migrations.include_object,
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


def test_0002_keeps_labels_and_drops_their_foreign_keys(empty_database_url: str) -> None:
    """Upgrading a store with data from 0001: label rows survive the table rebuild (SQLite's
    batch mode copies them), and a label no longer needs an interaction row or a project."""
    migrations.upgrade(empty_database_url, "0001")
    engine = create_store_engine(empty_database_url)
    completion_id = uuid.uuid4()
    try:
        project = create_project(engine, key="p")
        record: InteractionRecord = {
            "completion_id": str(completion_id),
            "project_id": project.id or 0,
            "session_id": str(uuid.uuid4()),
            "created_at": utcnow().isoformat(),
            "labels": {"team": "a"},
        }
        write_before_0006(engine, [record])
        migrations.upgrade(empty_database_url)
        with engine.begin() as connection:
            labels = connection.execute(select(LABEL.c.completion_id, LABEL.c.value)).all()
            assert labels == [(completion_id, "a")]
            orphan = {"completion_id": uuid.uuid4(), "project_id": 999, "key": "k", "value": "v"}
            connection.execute(insert(LABEL).values(**orphan))  # no foreign key refuses it
    finally:
        engine.dispose()


def _foreign_keys(url: str, table: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        return {key["referred_table"] for key in inspect(engine).get_foreign_keys(table)}
    finally:
        engine.dispose()


def test_0003_keeps_interactions_and_drops_their_foreign_keys(empty_database_url: str) -> None:
    """Upgrading a store with data from 0002 keeps its interactions and labels (SQLite rebuilds
    the table); afterwards an interaction naming no project is stored. Downgrading does what
    the keys would have done to such rows (delete them with their labels), then restores the
    keys, which refuse the next one."""
    url = empty_database_url
    migrations.upgrade(url, "0002")
    assert _foreign_keys(url, "interaction") == {"project", "model", "ab_test"}
    engine = create_store_engine(url)
    try:
        project = create_project(engine, key="p")
        kept = _interaction_record(project.id or 0)
        write_before_0006(engine, [kept])
        migrations.upgrade(url)
        assert _foreign_keys(url, "interaction") == set()
        orphan = _interaction_record(999)
        write_interactions(engine, [orphan])
        assert _stored_ids(engine) == {kept["completion_id"], orphan["completion_id"]}
        migrations.downgrade(url, "0002")
        assert _stored_ids(engine) == {kept["completion_id"]}
        with engine.connect() as connection:
            labels = connection.execute(select(LABEL.c.completion_id)).scalars().all()
        assert [str(label) for label in labels] == [kept["completion_id"]]
        assert _foreign_keys(url, "interaction") == {"project", "model", "ab_test"}
        with pytest.raises(REFUSED):
            write_before_0006(engine, [_interaction_record(999)])
    finally:
        engine.dispose()


def _interaction_record(project_id: int) -> InteractionRecord:
    return {
        "completion_id": str(uuid.uuid4()),
        "project_id": project_id,
        "session_id": str(uuid.uuid4()),
        "created_at": utcnow().isoformat(),
        "labels": {"team": "a"},
    }


def _stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        rows = connection.execute(select(INTERACTION.c.completion_id)).scalars().all()
    return {str(row) for row in rows}


def test_schema_problem_names_a_store_older_than_the_code(empty_database_url: str) -> None:
    """Not migrated and older revisions are problems; head and a revision newer than this code
    (a newer Interlog's, during a rolling upgrade) are not."""

    def problem() -> str | None:
        engine = create_store_engine(empty_database_url)
        try:
            with engine.connect() as connection:
                return migrations.schema_problem(connection)
        finally:
            engine.dispose()

    assert (problem() or "").startswith("no Interlog tables")
    migrations.upgrade(empty_database_url, "0001")
    assert (problem() or "").startswith("schema at revision 0001, ")
    migrations.upgrade(empty_database_url)
    assert problem() is None and migrations.head_revision() != "0001"
    engine = create_store_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    finally:
        engine.dispose()
    assert problem() is None
