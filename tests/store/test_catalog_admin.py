"""Updating and deleting projects, updating models, listing and revoking keys (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from store.catalog import create_model, create_project
from store.catalog_admin import (
    ProjectNotEmptyError,
    delete_project,
    describe_project,
    describe_projects,
    model_projects,
    project_holdings,
    update_model,
    update_project,
)
from store.errors import InvalidInputError, NotFoundError
from store.key_admin import find_key_id, get_api_key, list_api_keys, revoke_api_key
from store.keys import authenticate_key, create_api_key
from tests.interaction_seeds import log_interaction, seed_project


def test_update_project_sets_and_clears_the_default_model(engine: Engine) -> None:
    seed_project(engine, "p1", models=("m1", "m2"))
    create_model(engine, key="m3", upstream_urls=["http://127.0.0.1:9"])
    details = update_project(engine, key="p1", name="Project one", default_model="m3")
    assert (details.name, details.default_model) == ("Project one", "m3")
    assert details.models == ["m1", "m2", "m3"]  # setting a default attaches it
    cleared = update_project(engine, key="p1", default_model=None)
    assert cleared.default_model is None and cleared.name == "Project one"
    assert describe_project(engine, key="p1").default_model is None
    assert [p.key for p in describe_projects(engine)] == ["p1"]
    with pytest.raises(NotFoundError):
        update_project(engine, key="p1", default_model="nope")


def test_a_project_holding_data_is_not_deleted_and_says_what_it_holds(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    log_interaction(engine, project)
    create_api_key(engine, project_key="p1")
    with pytest.raises(ProjectNotEmptyError) as caught:
        delete_project(engine, key="p1")
    assert caught.value.holdings == {"interactions": 1, "metrics": 2, "active API keys": 1}
    assert "1 interactions" in str(caught.value)
    assert describe_project(engine, key="p1").key == "p1"


def test_an_empty_project_is_deleted_with_its_revoked_keys(engine: Engine) -> None:
    create_project(engine, key="empty")
    created = create_api_key(engine, project_key="empty")
    assert project_holdings(engine, key="empty") == {"active API keys": 1}
    revoke_api_key(engine, key_id=created.id)
    delete_project(engine, key="empty")
    with pytest.raises(NotFoundError):
        describe_project(engine, key="empty")
    assert list_api_keys(engine) == []


def test_update_model_changes_only_what_is_given(engine: Engine) -> None:
    seed_project(engine, "p1", models=("m1",))
    model = update_model(
        engine, key="m1", upstream_urls=["http://a:1/v1/", "http://b:2/v1"], timeout=9.5
    )
    assert model.upstream_urls == ["http://a:1/v1", "http://b:2/v1"]
    assert (model.timeout, model.connect_timeout, model.multimodal) == (9.5, None, False)
    model = update_model(engine, key="m1", multimodal=True, api_key_env="INTERLOG_UPSTREAM_KEY")
    assert (model.multimodal, model.api_key_env, model.timeout) == (
        True,
        "INTERLOG_UPSTREAM_KEY",
        9.5,
    )
    assert model_projects(engine, key="m1") == ["p1"]
    with pytest.raises(InvalidInputError):
        update_model(engine, key="m1", upstream_urls=["ftp://x"])
    with pytest.raises(InvalidInputError):
        update_model(engine, key="m1", timeout=0)
    with pytest.raises(NotFoundError):
        update_model(engine, key="missing", name="x")


def test_keys_are_listed_without_secrets_and_revoked_keys_stop_working(engine: Engine) -> None:
    create_project(engine, key="p1")
    admin = create_api_key(engine, admin=True, name="ops")
    scoped = create_api_key(engine, project_key="p1", name="app")
    listed = list_api_keys(engine)
    assert [(k.prefix, k.scope, k.project, k.name) for k in listed] == [
        (admin.prefix, "admin", None, "ops"),
        (scoped.prefix, "project", "p1", "app"),
    ]
    assert not any(k.revoked for k in listed)
    assert [k.id for k in list_api_keys(engine, project_key="p1")] == [scoped.id]
    assert find_key_id(engine, id_or_prefix=scoped.prefix) == scoped.id
    revoked = revoke_api_key(engine, key_id=scoped.id)
    assert revoked.revoked and revoked.revoked_at is not None
    again = revoke_api_key(engine, key_id=scoped.id)
    assert again.revoked_at == revoked.revoked_at
    assert authenticate_key(engine, scoped.secret) is None
    assert authenticate_key(engine, admin.secret) is not None
    assert list_api_keys(engine, include_revoked=False)[0].id == admin.id
    with pytest.raises(NotFoundError):
        get_api_key(engine, key_id=9999)
    with pytest.raises(NotFoundError):
        find_key_id(engine, id_or_prefix="il_nothere")
