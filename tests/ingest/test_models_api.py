"""GET /api/v1/models: the real `openai` package's models.list() / models.retrieve() against a
live gateway, scoped to the key; and the store's listing on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import Engine

from store.abtests import create_ab_test
from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.keys import create_api_key
from store.metrics import create_metric
from store.routable_models import routable_models
from tests.servers import LiveGateway, demo_upstream, live_gateway

__all__ = ["demo_upstream", "live_gateway"]


@pytest.fixture(scope="module")
def admin_key(live_gateway: LiveGateway) -> Iterator[str]:
    """An admin key, and a second project `other` (models m1 and m2, no default, an A/B test)
    that the live gateway's project key must not see."""
    engine = create_store_engine(live_gateway.database_url)
    try:
        create_project(engine, key="other")
        create_model(engine, key="m2", upstream_urls=[live_gateway.upstream_url])
        attach_model(engine, project_key="other", model_key="m1")
        attach_model(engine, project_key="other", model_key="m2")
        create_metric(engine, project_key="other", key="quality")
        create_ab_test(
            engine,
            project_key="other",
            key="m1-vs-m2",
            metric_key="quality",
            variants=[{"model": "m1"}, {"model": "m2"}],
        )
        yield create_api_key(engine, admin=True).secret
    finally:
        engine.dispose()


def _client(live: LiveGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api_url, api_key=key, max_retries=0)


def _extras(model: Any) -> dict[str, Any]:
    return model.model_extra or {}


def test_a_project_key_lists_its_project_and_its_models(
    live_gateway: LiveGateway, admin_key: str
) -> None:
    models = list(_client(live_gateway, live_gateway.api_key).models.list())
    assert [model.id for model in models] == ["proj", "proj/m1"]
    project, model = models
    assert all(m.object == "model" and m.owned_by == "proj" and m.created > 0 for m in models)
    assert _extras(project) == {
        "project": "proj",
        "multimodal": True,
        "default_model": "proj/m1",
        "ab_test": None,
    }
    assert _extras(model) == {"project": "proj", "multimodal": True, "default": True}


def test_an_admin_key_lists_every_project(live_gateway: LiveGateway, admin_key: str) -> None:
    models = {m.id: _extras(m) for m in _client(live_gateway, admin_key).models.list()}
    assert list(models) == ["other", "other/m1", "other/m2", "proj", "proj/m1"]
    assert models["other"] == {
        "project": "other",
        "multimodal": False,
        "default_model": None,
        "ab_test": "m1-vs-m2",
    }
    assert models["other/m2"] == {"project": "other", "multimodal": False, "default": False}


def test_every_listed_id_routes_a_chat_request(live_gateway: LiveGateway, admin_key: str) -> None:
    """What the list says is what the chat endpoint takes as `model`."""
    client = _client(live_gateway, admin_key)
    for model in client.models.list():
        answer = client.chat.completions.create(
            model=model.id, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content == "echo: hi"
        assert answer.model.startswith(f"{_extras(model)['project']}/")


def test_retrieve_one_model_scoped_to_the_key(live_gateway: LiveGateway, admin_key: str) -> None:
    project_client = _client(live_gateway, live_gateway.api_key)
    assert project_client.models.retrieve("proj/m1").id == "proj/m1"
    assert project_client.models.retrieve("proj").id == "proj"
    with pytest.raises(openai.NotFoundError) as hidden:  # another project's: as if absent
        project_client.models.retrieve("other/m2")
    assert "GET /api/v1/models lists" in str(hidden.value)
    assert _client(live_gateway, admin_key).models.retrieve("other/m2").id == "other/m2"
    with pytest.raises(openai.NotFoundError):
        _client(live_gateway, admin_key).models.retrieve("proj/nope")


def test_the_list_needs_a_key(live_gateway: LiveGateway) -> None:
    for headers in ({}, {"Authorization": "Bearer il_wrong"}):
        answer = httpx.get(f"{live_gateway.api_url}/models", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"


def test_routable_models_in_the_store(engine: Engine) -> None:
    create_project(engine, key="a")
    create_project(engine, key="b")
    create_model(engine, key="x", upstream_urls=["http://127.0.0.1:9"], multimodal=True)
    create_model(engine, key="y", upstream_urls=["http://127.0.0.1:9"])
    attach_model(engine, project_key="a", model_key="y")
    attach_model(engine, project_key="a", model_key="x", default=True)
    attach_model(engine, project_key="b", model_key="y")
    every = routable_models(engine)
    assert [m.id for m in every] == ["a", "a/x", "a/y", "b", "b/y"]
    by_id = {m.id: m for m in every}
    assert (by_id["a"].default_model, by_id["a"].multimodal) == ("a/x", True)
    assert (by_id["a/x"].default, by_id["a/y"].default) == (True, False)
    assert (by_id["b"].default, by_id["b"].default_model) == (False, None)
    project_b = by_id["b/y"]
    only_b = routable_models(engine, project_id=_project_id(engine, "b"))
    assert [m.id for m in only_b] == ["b", "b/y"]
    assert only_b[1] == project_b


def _project_id(engine: Engine, key: str) -> int:
    from store.catalog import get_project

    project_id = get_project(engine, key=key).id
    assert project_id is not None
    return project_id
