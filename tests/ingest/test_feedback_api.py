"""REST metrics, feedback and comparisons against a live server (SQLite store, loopback HTTP)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from store.readback import get_interaction
from tests.ingest.feedback_harness import ADMIN_KEY, LiveStore, client, live_store, new_project
from tests.interaction_seeds import log_interaction

__all__ = ["live_store"]


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return str(body["error"]["message"])


def test_metrics_are_created_listed_and_read_per_project(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    with client(live_store, seeded.secret) as http:
        created = http.post(
            "/api/v1/metrics",
            json={"key": "latency", "kind": "scalar", "scoring_type": "lower_is_better"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["scoring_type"] == "lower_is_better"
        listed = http.get("/api/v1/metrics").json()["data"]
        assert [m["key"] for m in listed] == ["latency", "quality", "thumbs"]
        assert {m["project"] for m in listed} == {seeded.key}
        one = http.get("/api/v1/metrics/thumbs").json()
        assert (one["kind"], one["scoring_type"]) == ("bool", "higher_is_better")
        assert "interlog metrics create" in _error(http.get("/api/v1/metrics/nope"), 404)
        assert "already exists" in _error(
            http.post("/api/v1/metrics", json={"key": "latency"}), 409
        )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"key": "x", "kind": "float"}, "kind"),
        ({"key": "x", "scoring_type": "sideways"}, "lower_is_better"),
        ({"key": "bad key"}, "invalid metric key"),
    ],
)
def test_metric_with_bad_definition_is_refused(
    live_store: LiveStore, body: dict[str, Any], fragment: str
) -> None:
    seeded = new_project(live_store)
    with client(live_store, seeded.secret) as http:
        response = http.post("/api/v1/metrics", json=body)
        assert response.status_code in (400, 422)
        assert fragment in _error(response, response.status_code)


def test_project_key_cannot_define_or_read_metrics_of_another_project(
    live_store: LiveStore,
) -> None:
    mine, theirs = new_project(live_store), new_project(live_store)
    with client(live_store, mine.secret) as http:
        _error(http.post("/api/v1/metrics", json={"key": "x", "project": theirs.key}), 404)
        _error(http.get("/api/v1/metrics", params={"project": theirs.key}), 404)
    with client(live_store, ADMIN_KEY) as http:
        assert "admin key must name the project" in _error(
            http.post("/api/v1/metrics", json={"key": "x"}), 400
        )
        created = http.post("/api/v1/metrics", json={"key": "x", "project": theirs.key})
        assert created.status_code == 201
        keys = {(m["project"], m["key"]) for m in http.get("/api/v1/metrics").json()["data"]}
        assert {(theirs.key, "x"), (mine.key, "quality")} <= keys


@pytest.mark.parametrize(
    ("metric", "value", "stored"),
    [("quality", 0.25, 0.25), ("quality", 7, 7.0), ("thumbs", True, 1.0), ("thumbs", 0, 0.0)],
)
def test_feedback_is_stored_with_the_pre_013_sdk_body(
    live_store: LiveStore, metric: str, value: Any, stored: float
) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    body = {
        "value": value,
        "completion_id": str(completion_id),
        "metric": metric,
        "user_id": str(uuid.uuid4()),
        "details": "from the old SDK",
        "reason": "Style",
    }
    with client(live_store, seeded.secret) as http:
        response = http.post("/api/v1/feedback", json=body)
    assert response.status_code == 201, response.text
    feedback_id = uuid.UUID(response.json()["feedback_id"])
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=seeded.id)
    score = view.scores[0]
    assert (score.id, score.value, score.details, score.reason) == (
        feedback_id,
        stored,
        "from the old SDK",
        "Style",
    )


@pytest.mark.parametrize(
    ("metric", "value"), [("quality", True), ("quality", "high"), ("thumbs", 3), ("thumbs", 0.5)]
)
def test_feedback_of_the_wrong_kind_is_400(live_store: LiveStore, metric: str, value: Any) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    body = {"value": value, "completion_id": str(completion_id), "metric": metric}
    with client(live_store, seeded.secret) as http:
        assert f"metric {metric} is a" in _error(http.post("/api/v1/feedback", json=body), 400)
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=seeded.id)
    assert view.scores == []


@pytest.mark.parametrize(
    "value_json",
    ["1e13", "-1e13", "1e308", "-1e308", "1e400", "NaN", "-Infinity", "1" + "0" * 400],
)
def test_feedback_value_out_of_range_is_422(live_store: LiveStore, value_json: str) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    body = f'{{"completion_id": "{completion_id}", "metric": "quality", "value": {value_json}}}'
    with client(live_store, seeded.secret) as http:
        response = http.post(
            "/api/v1/feedback", content=body, headers={"Content-Type": "application/json"}
        )
    message = _error(response, 422)
    assert response.json()["error"]["code"] == "value_out_of_range"
    assert response.json()["error"]["param"] == "value"
    assert "metric quality" in message and ("out of range" in message or "finite" in message)
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=seeded.id)
    assert view.scores == []


def test_feedback_value_at_the_limit_is_stored_exactly(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    with client(live_store, seeded.secret) as http:
        for value in (1e12, -1e12):
            body = {"value": value, "completion_id": str(completion_id), "metric": "quality"}
            response = http.post("/api/v1/feedback", json=body)
            assert response.status_code == 201, response.text
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=seeded.id)
    assert sorted(s.value for s in view.scores) == [-1e12, 1e12]


def test_feedback_for_unknown_metric_says_how_to_register_it(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    body = {"value": 1, "completion_id": str(completion_id), "metric": "helpfulness"}
    with client(live_store, seeded.secret) as http:
        message = _error(http.post("/api/v1/feedback", json=body), 404)
    assert f"`interlog metrics create {seeded.key} helpfulness --kind scalar|bool`" in message


def test_metric_for_unknown_or_foreign_completion_is_404(live_store: LiveStore) -> None:
    mine, theirs = new_project(live_store), new_project(live_store)
    foreign = log_interaction(live_store.engine, theirs.project)
    with client(live_store, mine.secret) as http:
        for completion_id in (foreign, uuid.uuid4()):
            body = {"value": 1, "completion_id": str(completion_id), "metric": "quality"}
            assert str(completion_id) in _error(http.post("/api/v1/feedback", json=body), 404)
        body = {"value": 1, "completion_id": "not-a-uuid", "metric": "quality"}
        assert "not-a-uuid" in _error(http.post("/api/v1/feedback", json=body), 404)
    view = get_interaction(live_store.engine, completion_id=foreign, project_id=theirs.id)
    assert view.scores == []


def test_admin_key_scores_any_project_by_completion(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    body = {"value": 0.5, "completion_id": str(completion_id), "metric": "quality"}
    with client(live_store, ADMIN_KEY) as http:
        assert http.post("/api/v1/feedback", json=body).status_code == 201


def test_resubmission_with_the_same_id_is_idempotent(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    body = {"value": 0.5, "completion_id": str(completion_id), "metric": "quality", "id": "r-1"}
    with client(live_store, seeded.secret) as http:
        first = http.post("/api/v1/feedback", json=body)
        second = http.post("/api/v1/feedback", json=body)
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert "different value" in _error(
            http.post("/api/v1/feedback", json={**body, "value": 0.9}), 409
        )
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=seeded.id)
    assert [s.value for s in view.scores] == [0.5]


def test_bulk_feedback_answers_each_item(live_store: LiveStore) -> None:
    mine, theirs = new_project(live_store), new_project(live_store)
    completion_id = str(log_interaction(live_store.engine, mine.project))
    foreign = str(log_interaction(live_store.engine, theirs.project))
    items = [
        {"value": 1.5, "completion_id": completion_id, "metric": "quality"},
        {"value": "no", "completion_id": completion_id, "metric": "thumbs"},
        {"value": 1, "completion_id": completion_id, "metric": "unknown"},
        {"value": 1, "completion_id": foreign, "metric": "quality"},
        {"value": True, "completion_id": completion_id, "metric": "thumbs", "id": "b-1"},
        {"value": True, "completion_id": completion_id, "metric": "thumbs", "id": "b-1"},
    ]
    with client(live_store, mine.secret) as http:
        response = http.post("/api/v1/feedback/bulk", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (3, 3)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["error"]["status"] if r["error"] else 201 for r in results] == [
        201, 400, 404, 404, 201, 201,
    ]  # fmt: skip
    assert foreign in results[3]["error"]["message"]
    assert "interlog metrics create" in results[2]["error"]["message"]
    assert results[4]["feedback_id"] == results[5]["feedback_id"]
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=mine.id)
    assert sorted(s.value for s in view.scores) == [1.0, 1.5]


def test_bulk_feedback_out_of_range_fails_alone_with_422(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = str(log_interaction(live_store.engine, seeded.project))
    values = [1e12, 1e13, -1e13, 1e308, -1e12]
    items = [{"value": v, "completion_id": completion_id, "metric": "quality"} for v in values]
    with client(live_store, seeded.secret) as http:
        response = http.post("/api/v1/feedback/bulk", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 3)
    errors = [r["error"] for r in body["results"]]
    assert [e["status"] if e else 201 for e in errors] == [201, 422, 422, 422, 201]
    assert [e["code"] for e in errors if e] == ["value_out_of_range"] * 3
    view = get_interaction(
        live_store.engine, completion_id=uuid.UUID(completion_id), project_id=seeded.id
    )
    assert sorted(s.value for s in view.scores) == [-1e12, 1e12]


def test_comparison_of_two_completion_ids_with_a_tie(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    first = log_interaction(live_store.engine, seeded.project)
    second = log_interaction(live_store.engine, seeded.project)
    body = {
        "metric": "quality",
        "preferred_completion": str(first),
        "other_completion": str(second),
        "tied": "good",
        "project": seeded.key,
    }
    with client(live_store, seeded.secret) as http:
        response = http.post("/api/v1/comparison", json=body)
        assert response.status_code == 201, response.text
        comparison_id = uuid.UUID(response.json()["comparison_id"])
        _error(http.post("/api/v1/comparison", json={**body, "tied": "meh"}), 422)
        _error(
            http.post("/api/v1/comparison", json={**body, "other_completion": str(uuid.uuid4())}),
            404,
        )
        _error(http.post("/api/v1/comparison", json={**body, "metric": "nope"}), 404)
    view = get_interaction(live_store.engine, completion_id=first, project_id=seeded.id)
    assert [(c.id, c.tie) for c in view.comparisons] == [(comparison_id, "good")]


def test_comparison_of_two_texts_stores_offline_interactions(live_store: LiveStore) -> None:
    seeded = new_project(live_store, models=("m1", "m2"))
    body = {
        "metric": "quality",
        "messages": [{"role": "user", "content": "q"}],
        "preferred_completion": {"text": "A", "model": "m1"},
        "other_completion": {"text": "B", "model": "m2"},
        "project": seeded.key,
    }
    with client(live_store, seeded.secret) as http:
        response = http.post("/api/v1/comparison", json=body)
        assert response.status_code == 201, response.text
        mixed = {**body, "other_completion": str(uuid.uuid4())}
        assert "both completions as ids" in _error(http.post("/api/v1/comparison", json=mixed), 400)
    preferred_id = response.json()["preferred_completion_id"]
    view = get_interaction(live_store.engine, completion_id=preferred_id, project_id=seeded.id)
    assert (view.source, view.completion, view.model_key) == ("OFFLINE", "A", "m1")
    assert view.messages == [{"role": "user", "content": "q"}]


def test_comparison_for_another_project_is_404(live_store: LiveStore) -> None:
    mine, theirs = new_project(live_store), new_project(live_store)
    first = log_interaction(live_store.engine, theirs.project)
    second = log_interaction(live_store.engine, theirs.project)
    body = {
        "metric": "quality",
        "preferred_completion": str(first),
        "other_completion": str(second),
    }
    with client(live_store, mine.secret) as http:
        _error(http.post("/api/v1/comparison", json={**body, "project": theirs.key}), 404)
        assert str(first) in _error(http.post("/api/v1/comparison", json=body), 404)


def test_feedback_needs_a_valid_key(live_store: LiveStore) -> None:
    with client(live_store, "il_nope_nope") as http:
        _error(http.post("/api/v1/feedback", json={}), 401)
