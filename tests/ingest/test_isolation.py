"""Isolation matrix: two projects, their keys and the admin key, over every endpoint and GraphQL
operation. No key or a bad key: 401. A project key on the admin API: 403. A project key on the
other project's data: 404 (never 403: that would confirm the id exists)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from store.abtests import create_ab_test
from store.keys import create_api_key
from tests.ingest.admin_harness import ADMIN_KEY, AdminApp, start_app
from tests.interaction_seeds import log_interaction, seed_project

PRINCIPALS = ("none", "bad", "alpha", "beta", "admin")
OWN = {"none": "401", "bad": "401", "alpha": "ok", "beta": "404", "admin": "ok"}
ANY_KEY = {"none": "401", "bad": "401", "alpha": "ok", "beta": "ok", "admin": "ok"}
ADMIN_ONLY = {"none": "401", "bad": "401", "alpha": "403", "beta": "403", "admin": "ok"}


class World(NamedTuple):
    api: AdminApp
    keys: dict[str, str | None]
    completions: list[str]


@pytest.fixture(scope="module")
def world(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for api in start_app(tmp_path_factory.mktemp("isolation"), _sqlite_template):
        alpha = seed_project(api.engine, "alpha", models=("am1", "am2"))
        seed_project(api.engine, "beta", models=("bm1",))
        api.http.patch("/api/v1/admin/projects/alpha", json={"default_model": "am1"},
                       headers=api.admin)  # fmt: skip
        variants = [{"model": "am1"}, {"model": "am2"}]
        create_ab_test(
            api.engine, project_key="alpha", key="ab", variants=variants, metric_key="quality"
        )
        completions = [str(log_interaction(api.engine, alpha)) for _ in range(2)]
        keys = {
            "none": None,
            "bad": "il_00000000_notakey",
            "alpha": create_api_key(api.engine, project_key="alpha").secret,
            "beta": create_api_key(api.engine, project_key="beta").secret,
            "admin": ADMIN_KEY,
        }
        yield World(api, keys, completions)


class Case(NamedTuple):
    method: str
    path: str
    expected: dict[str, str]
    body: Callable[[World, str], Any] | None = None
    graphql: bool = False


def _gql(query: str, **variables: Any) -> Callable[[World, str], Any]:
    return lambda world, who: {"query": query, "variables": variables}


CASES: dict[str, Case] = {
    "status": Case("GET", "/api/v1/status", ANY_KEY),
    "metrics list": Case("GET", "/api/v1/metrics?project=alpha", OWN),
    "metric get": Case("GET", "/api/v1/metrics/quality?project=alpha", OWN),
    "metric create": Case(
        "POST", "/api/v1/metrics", OWN,
        lambda w, who: {"key": f"m-{who}", "kind": "scalar", "project": "alpha"},
    ),
    "feedback": Case(
        "POST", "/api/v1/feedback", OWN,
        lambda w, who: {"completion_id": w.completions[0], "metric": "quality", "value": 0.5},
    ),
    "comparison": Case(
        "POST", "/api/v1/comparison", OWN,
        lambda w, who: {"metric": "quality", "preferred_completion": w.completions[0],
                        "other_completion": w.completions[1]},
    ),
    "interactions list": Case("GET", "/api/v1/interactions?project=alpha", OWN),
    "interaction get": Case("GET", "/api/v1/interactions/{completion}", OWN),
    "export": Case("GET", "/api/v1/interactions/export?project=alpha&format=csv", OWN),
    "ab report": Case("GET", "/api/v1/analytics/ab-tests/ab/report?project=alpha", OWN),
    "log interaction": Case(
        "POST", "/api/v1/interactions", OWN,
        lambda w, who: {"model_service": "am1", "project": "alpha", "completion": "hi",
                        "messages": [{"role": "user", "content": "hello"}]},
    ),
    "chat": Case(
        "POST", "/api/v1/chat/completions", OWN,
        lambda w, who: {"model": "alpha/am1", "messages": [{"role": "user", "content": "hi"}]},
    ),
    "admin projects": Case("GET", "/api/v1/admin/projects", ADMIN_ONLY),
    "admin project": Case("GET", "/api/v1/admin/projects/alpha", ADMIN_ONLY),
    "admin models": Case("GET", "/api/v1/admin/models", ADMIN_ONLY),
    "admin keys": Case("GET", "/api/v1/admin/keys", ADMIN_ONLY),
    "admin key create": Case(
        "POST", "/api/v1/admin/keys", ADMIN_ONLY, lambda w, who: {"project": "alpha"}
    ),
    "admin abtests": Case("GET", "/api/v1/admin/abtests", ADMIN_ONLY),
    "admin abtest": Case("GET", "/api/v1/admin/abtests/alpha/ab", ADMIN_ONLY),
    "gql metrics": Case(
        "POST", "/api/graphql", OWN,
        _gql("query($p: IdOrKey!) { metric(metricIdOrKey: \"quality\", projectIdOrKey: $p)"
             " { key } }", p="alpha"), True,
    ),
    "gql completion": Case(
        "POST", "/api/graphql", OWN,
        lambda w, who: {"query": "query($p: IdOrKey!, $id: UUID!) { completion(project: $p, "
                        "id: $id) { id } }", "variables": {"p": "alpha", "id": w.completions[0]}},
        True,
    ),
    "gql ListAbCampaigns": Case(
        "POST", "/api/graphql", OWN,
        _gql("query($f: AbCampaignFilter!) { abCampaigns(filter: $f) { key } }",
             f={"project": "alpha"}), True,
    ),
    "gql DescribeAbCampaign": Case(
        "POST", "/api/graphql", OWN,
        _gql("query { abCampaign(idOrKey: \"ab\") { key report { pValue } } }"), True,
    ),
    "gql CreateAbCampaign": Case(
        "POST", "/api/graphql", OWN,
        lambda w, who: {"query": "mutation($i: AbcampaignCreate!) { createAbCampaign(input: $i)"
                        " { key } }", "variables": {"i": {
                            "key": f"c-{who}", "metric": "quality", "project": "alpha",
                            "modelServices": ["am1", "am2"], "autoDeploy": False,
                            "trafficSplit": 1.0}}},
        True,
    ),
}  # fmt: skip


def _outcome(response: Any, graphql: bool) -> str:
    if response.status_code in (401, 403, 404):
        return str(response.status_code)
    if graphql and response.status_code == 200:
        errors = response.json().get("errors") or []
        if any("not found" in e["message"] for e in errors):
            return "404"
        if errors and "already has an active" not in errors[0]["message"]:
            return f"error: {errors[0]['message']}"
        return "ok"
    # Allowed: 2xx; the chat upstream of this test does not exist (502) and the active A/B test
    # refuses a second one (400), both only after authorisation and project checks passed.
    return (
        "ok"
        if response.status_code < 300 or response.status_code in (400, 502)
        else str(response.status_code)
    )


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("name", list(CASES))
def test_every_endpoint_allows_and_refuses_by_key(world: World, name: str, who: str) -> None:
    case = CASES[name]
    headers = world.api.as_key(world.keys[who])
    path = case.path.replace("{completion}", world.completions[0])
    body = case.body(world, who) if case.body else None
    response = world.api.http.request(case.method, path, json=body, headers=headers)
    assert _outcome(response, case.graphql) == case.expected[who], response.text[:300]
    if response.status_code in (401, 403, 404) and not case.graphql:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_project_key_lists_only_its_own_campaigns_and_metrics(world: World) -> None:
    http, beta = world.api.http, world.api.as_key(world.keys["beta"])
    campaigns = http.post(
        "/api/graphql", json={"query": "{ abCampaigns(filter: {}) { key } }"}, headers=beta
    ).json()
    assert campaigns == {"data": {"abCampaigns": []}}
    metrics = http.get("/api/v1/metrics", headers=beta).json()["data"]
    assert {m["project"] for m in metrics} <= {"beta"}
    listed = http.get("/api/v1/interactions", headers=beta).json()["data"]
    assert listed == []
