"""Migration 0005: interaction.messages is json on PostgreSQL (jsonb before), nothing on SQLite."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, select, text

import migrations
from store.catalog import create_project
from store.db import create_store_engine
from store.interactions import INTERACTION_TABLE as INTERACTION
from store.interactions import write_interactions
from store.readback import get_interaction
from tests.migrations.older_writes import as_stored, write_before_0006
from tests.migrations.test_schema import _schema_diff
from tests.store.records import interaction_record

#: U+0000, non-ASCII (accents, CJK, an emoji outside the BMP), an escaped backslash before
#: "u0000" (a literal, kept), nesting, and keys in an order jsonb would change.
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Réponds en français, 日本語も可 🙂"},
    {"role": "user", "content": "x\x00y", "zz": 1, "a": [None, True, 1.5, {"k\x00": ["\x00"]}]},
    {"role": "assistant", "content": "a literal \\u0000 stays"},
]


def _kept(url: str) -> str:
    """What U+0000 is stored as: SQLite keeps it; PostgreSQL text and jsonb cannot hold it."""
    return "\x00" if url.startswith("sqlite") else "\ufffd"


def _column_types(connection: Connection) -> dict[str, str]:
    rows = connection.execute(
        text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'interaction' AND column_name IN ('labels', 'messages', 'params')"
        )
    )
    return {name: kind for name, kind in rows}


def _tracking(connection: Connection) -> tuple[str | None, set[str]]:
    """PostgreSQL: change_txid's default on interaction, and the table's (non-internal) triggers."""
    default = connection.execute(
        text(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'interaction' AND column_name = 'change_txid'"
        )
    ).scalar()
    triggers = connection.execute(
        text(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = 'interaction'::regclass AND NOT tgisinternal"
        )
    )
    return default, set(triggers.scalars())


def test_messages_are_json_and_labels_params_stay_jsonb(postgres_url: str) -> None:
    engine = create_store_engine(postgres_url)
    try:
        with engine.connect() as connection:
            types = _column_types(connection)
            default, triggers = _tracking(connection)
    finally:
        engine.dispose()
    assert types == {"messages": "json", "labels": "jsonb", "params": "jsonb"}
    assert default is not None and "pg_current_xact_id" in default
    assert triggers == {"interaction_tombstone"}


def test_messages_with_nul_and_non_ascii_round_trip(engine: Engine, database_url: str) -> None:
    """Through the writer (binary COPY on PostgreSQL, first try and replay) and the read-back.
    json would take a \\u0000 escape where jsonb refused one: the writer replaces U+0000 in
    json too, so the text converts to jsonb (a downgrade) and every JSON function reads it."""
    project = create_project(engine, key="p")
    record = interaction_record(project.id or 0, messages=MESSAGES)
    write_interactions(engine, [record])
    write_interactions(engine, [record, interaction_record(project.id or 0)])  # a replay
    view = get_interaction(engine, completion_id=record["completion_id"], project_id=project.id)
    expected = as_stored(MESSAGES, _kept(database_url))
    assert view.messages == expected
    assert list(view.messages[1]) == ["role", "content", "zz", "a"]
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        stored, as_jsonb = connection.execute(
            select(text("messages::text"), text("messages::text::jsonb")).where(
                INTERACTION.c.completion_id == record["completion_id"]
            )
        ).one()
    assert "\\u0000" not in stored.replace("\\\\u0000", "")
    assert as_jsonb == expected
    assert stored.startswith('[{"role":"system","content":"Réponds')  # the text as written


@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgres"], indirect=True)
def test_upgrade_from_0004_keeps_rows_triggers_and_change_tracking(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    postgres = url.startswith("postgresql")
    migrations.upgrade(url, "0004")
    engine = create_store_engine(url)
    try:
        if postgres:
            with engine.connect() as connection:
                assert _column_types(connection)["messages"] == "jsonb"
                before = _tracking(connection)
        assert [entry[2:4] for entry in _modified_types(url)] == (
            [("interaction", "messages")] if postgres else []
        )
        project = create_project(engine, key="p")
        old = [interaction_record(project.id or 0, messages=MESSAGES) for _ in range(3)]
        write_before_0006(engine, old)  # the engine's connections now know jsonb's oid
        messages_before = _messages(engine)

        migrations.upgrade(url)
        assert _schema_diff(url) == []
        assert _messages(engine) == messages_before
        with engine.connect() as connection:
            if postgres:
                assert _column_types(connection)["messages"] == "json"
                assert _tracking(connection) == before
        # The same engine writes on: its connections read the changed column type again.
        new = interaction_record(project.id or 0, messages=MESSAGES)
        write_interactions(engine, [new, old[0]])
        assert len(_messages(engine)) == 4
        if postgres:
            with engine.connect() as connection:
                txids = connection.execute(
                    text("SELECT completion_id::text, change_txid FROM interaction")
                ).all()
            assert {ident for ident, txid in txids if txid is not None} == {
                r["completion_id"] for r in [*old, new]
            }

        # Tombstone triggers fire on delete (per row on SQLite, per statement on PostgreSQL).
        gone = [uuid.UUID(old[1]["completion_id"]), uuid.UUID(new["completion_id"])]
        with engine.begin() as connection:
            connection.execute(delete(INTERACTION).where(INTERACTION.c.completion_id.in_(gone)))
            tombstones = connection.execute(
                text("SELECT source, key FROM analytics_tombstone")
            ).all()
        assert {uuid.UUID(key) for source, key in tombstones if source == "interaction"} == set(
            gone
        )

        # And back: jsonb again, the rows still equal, the same engine still writes (as 0004's
        # gateway did: today's writer writes 0006's tool_calls too).
        migrations.downgrade(url, "0004")
        if postgres:
            with engine.connect() as connection:
                assert _column_types(connection)["messages"] == "jsonb"
                assert _tracking(connection) == before
        write_before_0006(engine, [interaction_record(project.id or 0, messages=MESSAGES)])
        left = _messages(engine)
        assert len(left) == 3
        assert all(messages == as_stored(MESSAGES, _kept(url)) for messages in left.values())
    finally:
        engine.dispose()


def _modified_types(url: str) -> list[Any]:
    """The model/migration comparison's type differences (compare_type sees json vs jsonb)."""
    return [entry[0] for entry in _schema_diff(url) if isinstance(entry, list)]


def _messages(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(select(INTERACTION.c.completion_id, INTERACTION.c.messages))
        return {str(ident): messages for ident, messages in rows}
