"""Every JSON POST/PUT/PATCH takes its JSON body whatever the Content-Type says: real `curl -d`
(which sends application/x-www-form-urlencoded, as in the README's examples) against a live
server, for metrics, feedback, bulk feedback, comparisons and the admin API."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from ingest.json_bodies import is_json_content_type
from store.readback import get_interaction
from tests.ingest.feedback_harness import ADMIN_KEY, LiveStore, live_store, new_project
from tests.interaction_seeds import log_interaction

__all__ = ["live_store"]


def curl(
    live: LiveStore, key: str, method: str, path: str, data: str, *extra: str
) -> tuple[int, Any]:
    """`curl -s -X METHOD -d DATA` (plus EXTRA arguments): the status and the JSON answer."""
    done = subprocess.run(
        ["curl", "-s", "-X", method, "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {key}",
         *extra, "-d", data, f"{live.base_url}{path}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_curl_d_defines_a_metric_and_scores_with_it(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    status, metric = curl(
        live_store, seeded.secret, "POST", "/api/v1/metrics",
        '{"key": "helpful", "kind": "scalar", "scoring_type": "higher_is_better"}',
    )  # fmt: skip
    assert (status, metric["key"]) == (201, "helpful"), metric
    status, one = curl(
        live_store, seeded.secret, "POST", "/api/v1/feedback",
        json.dumps({"value": 4, "completion_id": str(completion_id), "metric": "helpful"}),
    )  # fmt: skip
    assert status == 201, one
    item = {"value": 1, "completion_id": str(completion_id), "metric": "quality"}
    status, bulk = curl(
        live_store, seeded.secret, "POST", "/api/v1/feedback/bulk",
        json.dumps({"items": [item]}), "-H", "Content-Type: text/plain",
    )  # fmt: skip
    assert (status, bulk["succeeded"]) == (200, 1), bulk
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=seeded.id)
    assert sorted(score.value for score in view.scores) == [1.0, 4.0]


def test_curl_d_compares_two_completions(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    first = log_interaction(live_store.engine, seeded.project)
    second = log_interaction(live_store.engine, seeded.project)
    status, answer = curl(
        live_store, seeded.secret, "POST", "/api/v1/comparison",
        json.dumps({"metric": "quality", "preferred_completion": str(first),
                    "other_completion": str(second)}),
    )  # fmt: skip
    assert status == 201, answer
    assert uuid.UUID(answer["comparison_id"])


def test_curl_d_on_the_admin_api(live_store: LiveStore) -> None:
    key = f"p{uuid.uuid4().hex[:10]}"
    status, created = curl(
        live_store, ADMIN_KEY, "POST", "/api/v1/admin/projects", f'{{"key": "{key}"}}'
    )
    assert (status, created["key"]) == (201, key), created
    status, changed = curl(
        live_store, ADMIN_KEY, "PATCH", f"/api/v1/admin/projects/{key}", '{"name": "Renamed"}'
    )
    assert (status, changed["name"]) == (200, "Renamed"), changed


def test_a_body_that_is_not_json_is_a_422_naming_the_json_error(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    status, answer = curl(live_store, seeded.secret, "POST", "/api/v1/metrics", "key=helpful")
    assert status == 422
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert "JSON" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("value", "is_json"),
    [
        (b"application/json", True),
        (b"Application/JSON; charset=utf-8", True),
        (b"application/merge-patch+json", True),
        (b"application/x-www-form-urlencoded", False),
        (b"text/plain", False),
        (b"multipart/form-data; boundary=x", False),
    ],
)
def test_json_content_types(value: bytes, is_json: bool) -> None:
    assert is_json_content_type(value) is is_json
