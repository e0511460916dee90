"""The tables keep what they are given, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session

from store.catalog_admin import delete_project
from store.db import session_scope
from store.ids import uuid7, uuid7_str, uuid7_time_ms
from store.models import AbTest, Interaction, InteractionLabel, Model, Project


def _project(session: Session, key: str = "support-bot") -> Project:
    project = Project(key=key, name=key)
    session.add(project)
    session.flush()
    return project


def test_interaction_round_trips_json_uuid_and_aware_time(engine: Engine) -> None:
    created = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    session_id = uuid.uuid4()
    with session_scope(engine) as session:
        project = _project(session)
        model = Model(key="m1", name="m1", upstream_urls=["http://127.0.0.1:9/v1"])
        session.add(model)
        session.flush()
        interaction = Interaction(
            project_id=project.id or 0,
            model_id=model.id,
            session_id=session_id,
            labels={"team": "a", "ünï": "cödé"},
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            params={"temperature": 0.2, "stop": ["\n"]},
            completion="hello",
            created_at=created,
        )
        session.add(interaction)
        completion_id = interaction.completion_id

    with Session(engine) as session:
        stored = session.get(Interaction, completion_id)
        assert stored is not None
        assert stored.session_id == session_id
        assert stored.labels == {"team": "a", "ünï": "cödé"}
        assert stored.messages[0]["content"][0]["text"] == "hi"
        assert stored.params["stop"] == ["\n"]
        assert stored.created_at == created
        assert stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset() == timedelta(0)


def test_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as session:
        session.add(Project(key="p", name="p", created_at=datetime(2026, 1, 1)))


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(AbTest(project_id=999_999, key="t"))


def test_interactions_have_no_foreign_keys(engine: Engine) -> None:
    """Migration 0003: the ids of project, model and A/B test are not checked by the database
    (Interlog resolves them before writing); such a row is kept, not refused."""
    with session_scope(engine) as session:
        session.add(Interaction(project_id=999_999, model_id=999, session_id=uuid.uuid4()))
    with Session(engine) as session:
        stored = session.exec(select(Interaction.project_id, Interaction.model_id)).all()  # type: ignore[call-overload]
    assert [tuple(row) for row in stored] == [(999_999, 999)]


def test_deleting_an_emptied_project_removes_labels_left_behind(engine: Engine) -> None:
    """Labels have no foreign keys (migration 0002). If a project's interactions are deleted
    outside Interlog, their label rows stay; deleting the now empty project removes them."""
    with session_scope(engine) as session:
        project = _project(session)
        other = _project(session, key="other")
        for owner in (project, other):
            interaction = Interaction(project_id=owner.id or 0, session_id=uuid.uuid4())
            session.add(interaction)
            session.flush()
            session.add(
                InteractionLabel(
                    completion_id=interaction.completion_id,
                    project_id=owner.id or 0,
                    key="team",
                    value="a",
                )
            )
    with engine.begin() as connection:
        connection.execute(delete(Interaction).where(Interaction.project_id == project.id))  # type: ignore[arg-type]
    delete_project(engine, key=project.key)
    with Session(engine) as session:
        left = session.exec(select(InteractionLabel.project_id)).all()  # type: ignore[call-overload]
    assert [row[0] for row in left] == [other.id]


def test_uuid7_ids_sort_by_creation_time() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(value.version == 7 for value in ids)
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert abs(uuid7_time_ms(ids[-1]) - now_ms) < 5_000


def test_uuid7_values_behave_like_parsed_uuids() -> None:
    made = uuid7()
    parsed = uuid.UUID(str(made))
    assert parsed == made and hash(parsed) == hash(made) and parsed.variant == uuid.RFC_4122
    texts = [uuid7_str() for _ in range(2000)]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)
    assert all(uuid.UUID(text).version == 7 and str(uuid.UUID(text)) == text for text in texts)
    assert str(uuid7()) > texts[-1]  # one sequence for both forms


def test_forked_processes_make_different_uuid7s() -> None:
    uuid7()  # the parent has random bytes pooled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, uuid7_str().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert uuid.UUID(child).int & ((1 << 62) - 1) != uuid7().int & ((1 << 62) - 1)
