"""REST read-back of interactions with labels and metric values, against a live server."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

import pytest

from store.catalog import get_model
from store.feedback import add_metric_value
from tests.ingest.feedback_harness import (
    ADMIN_KEY,
    LiveStore,
    SeededProject,
    client,
    live_store,
    new_project,
)
from tests.interaction_seeds import log_interaction, minutes_ago

__all__ = ["live_store"]


def _seed_history(live: LiveStore) -> tuple[SeededProject, dict[str, uuid.UUID]]:
    """Four interactions of one project with distinct labels, models, times, users, scores."""
    seeded = new_project(live, models=("m1", "m2"))
    m1, m2 = get_model(live.engine, key="m1").id, get_model(live.engine, key="m2").id
    session = uuid.uuid4()
    ids = {
        "old": log_interaction(
            live.engine, seeded.project, model_id=m1, labels={"team": "a"},
            created_at=minutes_ago(120), user_id="alice",
        ),
        "mid": log_interaction(
            live.engine, seeded.project, model_id=m2, labels={"team": "b", "env": "prod"},
            created_at=minutes_ago(60), session_id=session,
        ),
        "new": log_interaction(
            live.engine, seeded.project, model_id=m1, labels={"team": "c"},
            created_at=minutes_ago(1), session_id=session, status="error",
        ),
        "bare": log_interaction(live.engine, seeded.project, created_at=minutes_ago(30)),
    }  # fmt: skip
    for name, value in (("old", 0.2), ("mid", 0.9), ("new", 0.5)):
        add_metric_value(
            live.engine, project_id=seeded.id, completion_id=ids[name], metric="quality",
            value=value,
        )  # fmt: skip
    return seeded, ids


@pytest.fixture(scope="module")
def history(live_store: LiveStore) -> tuple[SeededProject, dict[str, uuid.UUID]]:
    return _seed_history(live_store)


def _list(live: LiveStore, secret: str, **params: Any) -> list[str]:
    with client(live, secret) as http:
        response = http.get("/api/v1/interactions", params=params)
    assert response.status_code == 200, response.text
    return [item["completion_id"] for item in response.json()["data"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["new", "bare", "mid", "old"]),
        ({"order": "asc"}, ["old", "mid", "bare", "new"]),
        ({"label": "team=a"}, ["old"]),
        ({"label": "team=a|b"}, ["mid", "old"]),
        ({"label": "env"}, ["mid"]),
        ({"label": "env!=prod"}, ["new", "bare", "old"]),  # also without the key
        ({"label": ["env!=prod", "team"]}, ["new", "old"]),
        ({"label": ["team=b", "env=prod"]}, ["mid"]),
        ({"model": "m1"}, ["new", "old"]),
        ({"model": ["m1", "m2"]}, ["new", "mid", "old"]),
        ({"since": "ISO-90", "until": "ISO-10"}, ["bare", "mid"]),
        ({"since": "NAIVE-90", "until": "NAIVE-10"}, ["bare", "mid"]),  # no timezone: UTC
        ({"user_id": "alice"}, ["old"]),
        ({"status": "error"}, ["new"]),
        ({"metric": "quality>=0.5"}, ["new", "mid"]),
        ({"where": "quality>=0.5"}, ["new", "mid"]),
        ({"metric": "quality!=0.5"}, ["mid", "old"]),
        ({"user": "alice"}, ["old"]),
        ({"metric": ["quality>0.1", "quality<0.6"]}, ["new", "old"]),
        ({"metric": "thumbs=true"}, []),
    ],
)
def test_interactions_are_filtered(
    live_store: LiveStore,
    history: tuple[SeededProject, dict[str, uuid.UUID]],
    params: dict[str, Any],
    expected: list[str],
) -> None:
    seeded, ids = history
    for name in ("since", "until"):
        if name in params:
            kind, minutes = params[name].split("-")
            moment = minutes_ago(int(minutes)).astimezone(UTC)
            params[name] = (moment.replace(tzinfo=None) if kind == "NAIVE" else moment).isoformat()
    assert _list(live_store, seeded.secret, **params) == [str(ids[n]) for n in expected]


def test_interactions_are_filtered_by_session_and_completion_id(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = history
    with client(live_store, seeded.secret) as http:
        item = http.get(f"/api/v1/interactions/{ids['mid']}").json()
    assert _list(live_store, seeded.secret, session_id=item["session_id"]) == [
        str(ids["new"]),
        str(ids["mid"]),
    ]
    assert _list(live_store, seeded.secret, completion_id=[str(ids["old"])]) == [str(ids["old"])]


def test_pages_follow_the_cursor_newest_first(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = history
    seen: list[str] = []
    cursor = None
    with client(live_store, seeded.secret) as http:
        while True:
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            body = http.get("/api/v1/interactions", params=params).json()
            assert body["total_count"] == 4
            seen += [item["completion_id"] for item in body["data"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        bad = http.get("/api/v1/interactions", params={"cursor": "zzz"})
        assert bad.status_code == 400 and "cursor" in bad.json()["error"]["message"]
    assert seen == [str(ids[n]) for n in ("new", "bare", "mid", "old")]


def test_one_interaction_has_labels_and_metric_values(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = history
    with client(live_store, seeded.secret) as http:
        item = http.get(f"/api/v1/interactions/{ids['mid']}").json()
    assert item["labels"] == {"team": "b", "env": "prod"}
    assert item["model"] == "m2"
    assert [(m["metric"], m["value"]) for m in item["metrics"]] == [("quality", 0.9)]
    assert item["usage"] == {"prompt_tokens": 3, "completion_tokens": 2}


def test_another_projects_interaction_is_404(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = history
    other = new_project(live_store)
    with client(live_store, other.secret) as http:
        response = http.get(f"/api/v1/interactions/{ids['old']}")
        assert response.status_code == 404
        assert str(ids["old"]) in response.json()["error"]["message"]
        assert http.get("/api/v1/interactions", params={"project": seeded.key}).status_code == 404
        assert http.get("/api/v1/interactions/not-a-uuid").status_code == 404
    assert _list(live_store, other.secret) == []
    assert _list(live_store, ADMIN_KEY, project=seeded.key, label="team=a") == [str(ids["old"])]


@pytest.mark.parametrize(
    "params",
    [
        {"label": "bad key=x"},
        {"metric": "quality~1"},
        {"label": [f"k{i}" for i in range(51)]},
        {"metric": [f"quality>{i}" for i in range(21)]},
        {"metric": "nosuch>1"},
        {"status": "failed"},
        {"session": "not-a-uuid"},
    ],
)
def test_bad_filters_are_400(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID]], params: dict
) -> None:
    seeded, _ = history
    with client(live_store, seeded.secret) as http:
        response = http.get("/api/v1/interactions", params=params)
    assert response.status_code == 400, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_label_key_absent_from_the_project_is_a_warning(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, _ = history
    with client(live_store, seeded.secret) as http:
        body = http.get("/api/v1/interactions", params={"label": "project=x"}).json()
        known = http.get("/api/v1/interactions", params={"label": "team"}).json()
    assert (body["data"], body["total_count"]) == ([], 0)
    assert body["warnings"] == [
        "no interaction has label key 'project'; to filter by project use project=..."
    ]
    assert known["warnings"] == [] and known["total_count"] == 3
