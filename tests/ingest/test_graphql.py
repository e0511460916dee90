"""Hand-written GraphQL documents over the schema subset: any valid document works, and errors
follow GraphQL conventions (HTTP 200, `errors[]`, `EntityNotFound:` for unknown entities)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from store.catalog import get_model
from store.feedback import add_metric_value
from tests.ingest.feedback_harness import LiveStore, SeededProject, client, live_store, new_project
from tests.interaction_seeds import log_interaction, minutes_ago

__all__ = ["live_store"]

HAND_WRITTEN = """
query Recent($project: IdOrKey!) {
  good: completions(
    filter: {project: $project, advancedFilter: {or: [
      {scores: {metric: "quality", value: {gte: 0.5}}},
      {and: [{userId: "alice"}, {not: {label: {key: "team", value: {eq: "b"}}}}]}
    ]}}
    page: {first: 10}
    order: [{field: "created_at", order: ASC}]
  ) {
    totalCount
    nodes { ...Brief }
  }
  fromM2: completions(filter: {project: $project, models: ["m2"]}, page: {}) {
    nodes { id model { key } }
  }
}

fragment Brief on Completion {
  id
  userId
  labels { key value }
  directScores { value metric { key hasDirectScores } }
}
"""


def _post(live: LiveStore, secret: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    with client(live, secret) as http:
        response = http.post("/api/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def scored(live_store: LiveStore) -> tuple[SeededProject, dict[str, uuid.UUID]]:
    seeded = new_project(live_store, models=("m1", "m2"))
    m1, m2 = get_model(live_store.engine, key="m1").id, get_model(live_store.engine, key="m2").id
    ids = {
        "alice_a": log_interaction(
            live_store.engine, seeded.project, model_id=m1, user_id="alice",
            labels={"team": "a"}, created_at=minutes_ago(3),
        ),
        "alice_b": log_interaction(
            live_store.engine, seeded.project, model_id=m1, user_id="alice",
            labels={"team": "b"}, created_at=minutes_ago(2),
        ),
        "good": log_interaction(
            live_store.engine, seeded.project, model_id=m2, created_at=minutes_ago(1)
        ),
    }  # fmt: skip
    add_metric_value(
        live_store.engine, project_id=seeded.id, completion_id=ids["good"], metric="quality",
        value=0.8,
    )  # fmt: skip
    return seeded, ids


def test_hand_written_document_with_aliases_fragments_and_or_not(
    live_store: LiveStore, scored: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = scored
    body = _post(live_store, seeded.secret, HAND_WRITTEN, {"project": seeded.key})
    assert "errors" not in body, body
    good = body["data"]["good"]
    assert good["totalCount"] == 2
    assert [n["id"] for n in good["nodes"]] == [str(ids["alice_a"]), str(ids["good"])]
    assert good["nodes"][1]["directScores"] == [
        {"value": 0.8, "metric": {"key": "quality", "hasDirectScores": True}}
    ]
    assert good["nodes"][0]["labels"] == [{"key": "team", "value": "a"}]
    assert body["data"]["fromM2"]["nodes"] == [{"id": str(ids["good"]), "model": {"key": "m2"}}]


def test_literal_mutation_scores_a_completion(
    live_store: LiveStore, scored: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = scored
    mutation = (
        'mutation { addDirectScore(completionId: "CID", metricId: "thumbs", '
        'input: {value: true, details: "literal"}) { id value details metric { kind } } }'
    ).replace("CID", str(ids["alice_b"]))
    body = _post(live_store, seeded.secret, mutation, {})
    score = body["data"]["addDirectScore"]
    assert (score["value"], score["details"], score["metric"]) == (1.0, "literal", {"kind": "BOOL"})


def test_sdk_013_add_direct_feedback_is_accepted(
    live_store: LiveStore, scored: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = scored
    mutation = """mutation AddDirectFeedback($completionId_0: UUID!, $metricId_0: IdOrKey!,
      $input_0: FeedbackAddInput!) {
      addDirectFeedback(completionId: $completionId_0, metricId: $metricId_0, input: $input_0) {
        id
      }
    }"""
    variables = {
        "completionId_0": str(ids["alice_a"]),
        "metricId_0": "quality",
        "input_0": {"value": 3, "details": None},
    }
    body = _post(live_store, seeded.secret, mutation, variables)
    assert uuid.UUID(body["data"]["addDirectFeedback"]["id"])


ADD_SCORE = """mutation($c: UUID!, $v: JSON!) {
  addDirectScore(completionId: $c, metricId: "quality", input: {value: $v}) { value }
}"""


@pytest.mark.parametrize("value", [1e13, -1e13, 1e308])
def test_score_out_of_range_is_refused_in_the_graphql_shape(
    live_store: LiveStore, value: float
) -> None:
    seeded = new_project(live_store)
    completion_id = str(log_interaction(live_store.engine, seeded.project))
    body = _post(live_store, seeded.secret, ADD_SCORE, {"c": completion_id, "v": value})
    [error] = body["errors"]
    assert error["message"].startswith("InvalidInput: metric quality: value")
    assert "out of range" in error["message"]
    assert error["extensions"] == {"code": "value_out_of_range", "type": "invalid_request_error"}
    assert body["data"] is None


def test_score_at_the_limit_is_stored(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = str(log_interaction(live_store.engine, seeded.project))
    for value in (1e12, -1e12):
        body = _post(live_store, seeded.secret, ADD_SCORE, {"c": completion_id, "v": value})
        assert body["data"]["addDirectScore"] == {"value": value}, body


@pytest.mark.parametrize(
    ("query", "variables", "fragment"),
    [
        (
            '{ completion(project: "nope", id: "CID") { id } }'.replace("CID", str(uuid.uuid4())),
            {},
            "EntityNotFound: project nope not found",
        ),
        (
            'mutation { addDirectScore(completionId: "%s", metricId: "quality", '
            "input: {value: 1}) { id } }".replace("%s", str(uuid.UUID(int=7))),
            {},
            "EntityNotFound: completion 00000000-0000-0000-0000-000000000007 not found",
        ),
        (
            'mutation { createMetric(project: "PROJECT", input: {name: "x", kind: SCALAR, '
            'key: "quality"}) { id } }',
            {},
            "AlreadyExists: metric quality",
        ),
        ("{ metrics { id nonsense } }", {}, "Cannot query field 'nonsense'"),
        (
            "query($p: IdOrKey!) { completions(filter: {project: $p}, page: {last: 2}) "
            "{ totalCount } }",
            {"p": "PROJECT"},
            "InvalidInput: only forward paging",
        ),
    ],
)
def test_errors_follow_graphql_conventions(
    live_store: LiveStore,
    scored: tuple[SeededProject, dict[str, uuid.UUID]],
    query: str,
    variables: dict[str, Any],
    fragment: str,
) -> None:
    seeded, _ = scored
    query = query.replace("PROJECT", seeded.key)
    variables = {k: v.replace("PROJECT", seeded.key) for k, v in variables.items()}
    body = _post(live_store, seeded.secret, query, variables)
    assert fragment in body["errors"][0]["message"], body


def test_project_key_cannot_see_another_project(
    live_store: LiveStore, scored: tuple[SeededProject, dict[str, uuid.UUID]]
) -> None:
    seeded, ids = scored
    other = new_project(live_store)
    query = "query($p: IdOrKey!, $id: UUID!) { completion(project: $p, id: $id) { id } }"
    body = _post(live_store, other.secret, query, {"p": seeded.key, "id": str(ids["good"])})
    assert body["errors"][0]["message"].startswith("EntityNotFound: project")
    keys = _post(live_store, other.secret, "{ metrics { key projects { key } } }", {})
    assert {p["key"] for m in keys["data"]["metrics"] for p in m["projects"]} == {other.key}


def test_graphql_without_a_key_is_401_in_the_graphql_shape(live_store: LiveStore) -> None:
    with client(live_store, "il_bad_key") as http:
        response = http.post("/api/graphql", json={"query": "{ metrics { id } }"})
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "invalid_api_key" and "API key" in error["message"]


def test_requests_graphql_cannot_run_are_4xx_in_the_graphql_shape(live_store: LiveStore) -> None:
    """strawberry answered these in plain text; clients of this path parse `errors`."""
    seeded = new_project(live_store)
    with client(live_store, seeded.secret) as http:
        answers = {
            "no query": http.post("/api/graphql", json={}),
            "a batch": http.post("/api/graphql", json=[{"query": "{ metrics { key } }"}]),
            "a GET": http.get("/api/graphql", params={"query": "{ metrics { key } }"}),
        }
    for what, response in answers.items():
        assert 400 <= response.status_code < 500, what
        assert response.headers["content-type"].startswith("application/json"), what
        [error] = response.json()["errors"]
        assert error["message"] and error["extensions"]["code"], what


def test_create_metric_without_a_key_derives_it_from_the_name(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    mutation = """mutation($p: IdOrKey!) {
      createMetric(project: $p, input: {name: "Answer Quality", kind: BOOL,
                                        scoringType: LOWER_IS_BETTER}) {
        key name kind scoringType description hasDirectScores hasComparisonScores
      }
    }"""
    body = _post(live_store, seeded.secret, mutation, {"p": seeded.key})
    assert body["data"]["createMetric"] == {
        "key": "answer_quality",
        "name": "Answer Quality",
        "kind": "BOOL",
        "scoringType": "LOWER_IS_BETTER",
        "description": "",
        "hasDirectScores": False,
        "hasComparisonScores": False,
    }
