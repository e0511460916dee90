"""An A/B test ends itself in a running gateway on feedback with a clear winner; routing follows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.ab_monitor import check_ab_tests
from store.ab_lifecycle import get_ab_test
from store.ab_sequential import MIN_SCORES
from store.catalog import get_model, get_project
from store.keys import create_api_key
from tests.ingest.admin_harness import AdminApp, start_app
from tests.interaction_seeds import log_interaction, seed_project


@pytest.fixture(scope="module")
def gateway(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminApp]:
    """Checks every 0.2 s; routes are cached for an hour, so only invalidation can reroute."""
    yield from start_app(
        tmp_path_factory.mktemp("ab-auto"), _sqlite_template,
        ab_check_seconds=0.2, routing_cache_seconds=3600.0,
    )  # fmt: skip


def _routed_model(api: AdminApp, project: str) -> str:
    route = api.http.portal.call(api.app.state.routing.route, project, uuid.uuid4())  # type: ignore[union-attr]
    return str(route.model.key)


def _feedback(
    api: AdminApp, secret: str, project_key: str, variant: str, values: list[float]
) -> None:
    row = get_project(api.engine, key=project_key)
    test = get_ab_test(api.engine, key="t", project_key=project_key)
    ids = [
        str(log_interaction(api.engine, row, ab_test_id=test.id, ab_variant=variant))
        for _ in values
    ]
    response = api.http.post(
        "/api/v1/feedback/bulk",
        json={"items": [
            {"completion_id": cid, "metric": "quality", "value": value}
            for cid, value in zip(ids, values, strict=True)
        ]},
        headers=api.as_key(secret),
    )  # fmt: skip
    assert response.status_code == 200, response.text


def _start_test(api: AdminApp, project: str) -> str:
    seed_project(api.engine, project, models=("a", "b"))
    secret = create_api_key(api.engine, project_key=project).secret
    api.http.patch(
        f"/api/v1/admin/projects/{project}", json={"default_model": "a"}, headers=api.admin
    )
    created = api.http.post(
        "/api/v1/admin/abtests",
        json={"project": project, "key": "t", "metric": "quality", "auto_deploy": True,
              "variants": [{"model": "a"}, {"model": "b"}]},
        headers=api.admin,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    return secret


def test_a_clear_winner_ends_the_test_and_routing_follows_at_once(gateway: AdminApp) -> None:
    secret = _start_test(gateway, "winner")
    assert _routed_model(gateway, "winner/a") == "a"
    n = MIN_SCORES + 6
    _feedback(gateway, secret, "winner", "a", [0.1, 0.3, 0.2] * (n // 3))
    _feedback(gateway, secret, "winner", "b", [0.8, 0.9, 0.7] * (n // 3))
    deadline = time.monotonic() + 10
    while get_ab_test(gateway.engine, key="t", project_key="winner").status == "active":
        assert time.monotonic() < deadline, "the monitor did not end the test"
        time.sleep(0.1)
    ended = gateway.http.get("/api/v1/admin/abtests/winner/t", headers=gateway.admin).json()
    assert (ended["status"], ended["winner"]) == ("done", "b")
    assert "mSPRT" in ended["end_reason"]
    project = gateway.http.get("/api/v1/admin/projects/winner", headers=gateway.admin).json()
    assert project["default_model"] == "b"
    assert _routed_model(gateway, "winner") == "b"  # no A/B test, new default, despite the TTL
    assert get_model(gateway.engine, key="b").id is not None


def test_no_difference_keeps_the_test_running(gateway: AdminApp) -> None:
    secret = _start_test(gateway, "tie")
    values = [0.2, 0.8, 0.5, 0.4, 0.6] * 8
    _feedback(gateway, secret, "tie", "a", values)
    _feedback(gateway, secret, "tie", "b", list(reversed(values)))
    assert gateway.http.portal.call(check_ab_tests, gateway.app) == []  # type: ignore[union-attr]
    detail = gateway.http.get("/api/v1/admin/abtests/tie/t", headers=gateway.admin).json()
    assert detail["status"] == "active" and detail["enough_scores"] is True
    assert detail["sequential"][0]["p_value"] == 1.0
    assert (
        gateway.http.get("/api/v1/admin/projects/tie", headers=gateway.admin).json()[
            "default_model"
        ]
        == "a"
    )
