"""API keys are stored only as hashes, scoped to one project or admin, and revocable."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from store.catalog import create_project
from store.keys import authenticate_key, create_api_key, hash_key, touch_key
from store.models import ApiKey
from store.types import utcnow


def test_project_key_authenticates_to_its_project(engine: Engine) -> None:
    create_project(engine, key="support-bot")
    created = create_api_key(engine, project_key="support-bot")
    principal = authenticate_key(engine, created.secret)
    assert principal is not None
    assert not principal.is_admin
    assert principal.project_key == "support-bot"
    assert principal.can_access(principal.project_id or 0)
    assert not principal.can_access((principal.project_id or 0) + 1)


def test_only_the_hash_is_stored(engine: Engine) -> None:
    create_project(engine, key="p")
    created = create_api_key(engine, project_key="p")
    with engine.connect() as connection:
        dump = " ".join(
            str(value) for row in connection.execute(text("SELECT * FROM api_key")) for value in row
        )
    assert created.secret not in dump
    assert hash_key(created.secret) in dump
    assert created.prefix in dump


@pytest.mark.parametrize("presented", ["", "il_nothere_x", "garbage", "Bearer il_", "il_a_b_c"])
def test_unknown_or_malformed_keys_are_refused(engine: Engine, presented: str) -> None:
    create_api_key(engine, admin=True)
    assert authenticate_key(engine, presented) is None


def test_a_key_with_a_known_prefix_but_wrong_secret_is_refused(engine: Engine) -> None:
    created = create_api_key(engine, admin=True)
    assert authenticate_key(engine, created.prefix + "_wrongsecret") is None


def test_revoked_key_is_refused(engine: Engine) -> None:
    created = create_api_key(engine, admin=True)
    assert authenticate_key(engine, created.secret) is not None
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.id == created.id)).one()
        row.revoked_at = utcnow()
        session.add(row)
        session.commit()
    assert authenticate_key(engine, created.secret) is None


def test_bootstrap_admin_key_from_settings(engine: Engine) -> None:
    principal = authenticate_key(engine, "s3cret-admin", admin_key="s3cret-admin")
    assert principal is not None and principal.is_admin
    assert authenticate_key(engine, "other", admin_key="s3cret-admin") is None


def test_key_for_unknown_project_is_refused(engine: Engine) -> None:
    with pytest.raises(LookupError):
        create_api_key(engine, project_key="nope")
    with pytest.raises(ValueError):
        create_api_key(engine)


def test_touch_records_last_use(engine: Engine) -> None:
    created = create_api_key(engine, admin=True)
    touch_key(engine, key_id=created.id)
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.id == created.id)).one()
    assert row.last_used_at is not None
