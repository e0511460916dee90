"""Projects and models: created, attached, defaulted, with clear errors for what is missing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from store.catalog import (
    attach_model,
    create_model,
    create_project,
    detach_model,
    get_project,
    list_projects,
    project_models,
)
from store.errors import AlreadyExistsError, InvalidInputError, NotFoundError


def test_attach_with_default_sets_the_projects_default_model(engine: Engine) -> None:
    create_project(engine, key="bot")
    model = create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9001/v1/"])
    create_model(engine, key="m2", upstream_urls=["http://127.0.0.1:9002/v1"])
    attach_model(engine, project_key="bot", model_key="m1", default=True)
    attach_model(engine, project_key="bot", model_key="m2")
    attach_model(engine, project_key="bot", model_key="m2")  # attaching twice is harmless
    assert get_project(engine, key="bot").default_model_id == model.id
    assert [m.key for m in project_models(engine, project_key="bot")] == ["m1", "m2"]
    assert model.upstream_urls == ["http://127.0.0.1:9001/v1"]


def test_detaching_the_default_model_unsets_it(engine: Engine) -> None:
    create_project(engine, key="bot")
    create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9001/v1"])
    attach_model(engine, project_key="bot", model_key="m1", default=True)
    detach_model(engine, project_key="bot", model_key="m1")
    assert get_project(engine, key="bot").default_model_id is None
    assert project_models(engine, project_key="bot") == []
    with pytest.raises(NotFoundError):
        detach_model(engine, project_key="bot", model_key="m1")


def test_duplicate_keys_are_refused(engine: Engine) -> None:
    create_project(engine, key="bot")
    with pytest.raises(AlreadyExistsError, match="project bot already exists"):
        create_project(engine, key="bot")
    create_model(engine, key="m", upstream_urls=["http://x/v1"])
    with pytest.raises(AlreadyExistsError):
        create_model(engine, key="m", upstream_urls=["http://x/v1"])
    assert [p.key for p in list_projects(engine)] == ["bot"]


def test_missing_entities_say_how_to_create_them(engine: Engine) -> None:
    with pytest.raises(NotFoundError, match="interlog projects create"):
        attach_model(engine, project_key="ghost", model_key="m")
    create_project(engine, key="bot")
    with pytest.raises(NotFoundError, match="interlog models add"):
        attach_model(engine, project_key="bot", model_key="ghost")


@pytest.mark.parametrize("urls", [[], ["ftp://x"], ["127.0.0.1:8000"]])
def test_models_need_http_upstreams(engine: Engine, urls: list[str]) -> None:
    with pytest.raises(InvalidInputError):
        create_model(engine, key="m", upstream_urls=urls)


def test_keys_with_a_slash_are_refused(engine: Engine) -> None:
    with pytest.raises(InvalidInputError):
        create_project(engine, key="a/b")
