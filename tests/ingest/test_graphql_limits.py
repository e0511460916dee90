"""GraphQL documents over the depth, alias, cost or token limit are refused before they run:
HTTP 400 in GraphQL's error shape, against real gateways (the defaults on the shared live
server, lowered limits on a server of their own)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from store.metrics import list_metrics
from tests.ingest.feedback_harness import (
    ADMIN_KEY,
    REPO_ROOT,
    LiveStore,
    SeededProject,
    client,
    live_store,
    new_project,
)
from tests.interaction_seeds import log_interaction
from tests.support import free_port, interlog_process, wait_for_http

__all__ = ["live_store"]

#: Fields nested under `completions`: 12 deep with it (the limit), and 13 deep.
_TWELVE = [
    "nodes", "comparisonScores", "preferedCompletion", "comparisonScores", "otherCompletion",
    "comparisonScores", "preferedCompletion", "comparisonScores", "metric", "projects", "key",
]  # fmt: skip
_THIRTEEN = [*_TWELVE[:8], "preferedCompletion", "comparisonScores", "metric", "key"]


def _nested(names: list[str]) -> str:
    inner = names[-1]
    for name in reversed(names[:-1]):
        inner = f"{name} {{ {inner} }}"
    return (
        "query($p: IdOrKey!) { completions(filter: {project: $p}, page: {first: 5}) { "
        + inner
        + " } }"
    )


def _post(
    http: httpx.Client, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    return http.post("/api/graphql", json={"query": query, "variables": variables or {}})


def _refused(response: httpx.Response, code: str) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": code, "type": "invalid_request_error"}, error
    return str(error["message"])


@pytest.fixture(scope="module")
def seeded(live_store: LiveStore) -> SeededProject:
    project = new_project(live_store)
    log_interaction(live_store.engine, project.project)
    return project


def test_depth_at_the_limit_runs_and_one_more_is_refused(
    live_store: LiveStore, seeded: SeededProject
) -> None:
    with client(live_store, seeded.secret) as http:
        at_limit = _post(http, _nested(_TWELVE), {"p": seeded.key})
        over = _post(http, _nested(_THIRTEEN), {"p": seeded.key})
    assert at_limit.status_code == 200, at_limit.text
    body = at_limit.json()
    assert "errors" not in body and len(body["data"]["completions"]["nodes"]) == 1
    assert "more than 12 deep" in _refused(over, "query_too_deep")


def test_nesting_past_the_parser_stack_is_refused_as_too_deep(
    live_store: LiveStore, seeded: SeededProject
) -> None:
    """900 nested selections (under the token limit) overflow the parser's recursion: a 400
    like any document too deep, not a parse failure."""
    query = "{" + " metrics {" * 900 + " key" + " }" * 901
    with client(live_store, seeded.secret) as http:
        response = _post(http, query)
    _refused(response, "query_too_deep")


def test_aliases_over_the_limit_are_refused_before_anything_runs(
    live_store: LiveStore, seeded: SeededProject
) -> None:
    """31 aliased createMetric mutations: refused as a whole, no metric is created."""
    fields = " ".join(
        f'm{i}: createMetric(project: "{seeded.key}", input: {{name: "alias {i}", kind: BOOL}})'
        " { key }"
        for i in range(31)
    )
    with client(live_store, seeded.secret) as http:
        response = _post(http, f"mutation {{ {fields} }}")
        message = _refused(response, "too_many_aliases")
        assert "31 aliases" in message and "at most 30" in message
        thirty = " ".join(f"m{i}: metrics {{ key }}" for i in range(30))
        accepted = _post(http, f"{{ {thirty} }}")
    assert accepted.status_code == 200 and "errors" not in accepted.json(), accepted.text
    keys = {m.key for m in list_metrics(live_store.engine, project_id=seeded.id)}
    assert not any(key.startswith("alias") for key in keys), keys


def test_aliases_in_a_fragment_count_once_per_spread_and_are_counted_quickly(
    live_store: LiveStore, seeded: SeededProject
) -> None:
    """30 fragments each spreading the next twice: 2^30 - 1 aliases once expanded. Each fragment is
    measured once (walking the expansion, as strawberry's MaxAliasesLimiter does, would not end
    in years)."""
    fragments = "\n".join(
        f"fragment F{i} on Query {{ a{i}: __typename ...F{i + 1} ...F{i + 1} }}" for i in range(30)
    )
    query = "{ ...F0 }\n" + fragments + "\nfragment F30 on Query { __typename }"
    started = time.monotonic()
    with client(live_store, seeded.secret) as http:
        response = _post(http, query)
    assert time.monotonic() - started < 20
    assert f"{2**30 - 1} aliases" in _refused(response, "too_many_aliases")


def test_cost_over_the_limit_is_refused_also_through_variables(
    live_store: LiveStore, seeded: SeededProject
) -> None:
    page = "completions(filter: {project: $p}, page: $page) { totalCount }"
    twenty = " ".join(f"c{i}: {page}" for i in range(20))
    query = f"query($p: IdOrKey!, $page: CursorPageInput!) {{ {twenty} }}"
    with client(live_store, seeded.secret) as http:
        at_limit = _post(http, query, {"p": seeded.key, "page": {"first": 500}})  # 10,000
        over = _post(http, query, {"p": seeded.key, "page": {"first": 501}})  # 10,020
        grouped = _post(
            http,
            """query($p: IdOrKey!) {
              completionsGrouped(groupBy: MODEL, filter: {project: $p}, page: {first: 100}) {
                nodes { a: completions(page: {first: 500}) { totalCount }
                        b: completions(page: {first: 500}) { totalCount } }
              }
            }""",
            {"p": seeded.key},
        )  # 100 + 10 groups x 1,000
    assert at_limit.status_code == 200 and "errors" not in at_limit.json(), at_limit.text
    assert at_limit.json()["data"]["c0"]["totalCount"] == 1
    assert "10020 completions" in _refused(over, "query_too_costly")
    assert "10100 completions" in _refused(grouped, "query_too_costly")


def test_a_document_over_the_token_limit_is_refused(
    live_store: LiveStore, seeded: SeededProject
) -> None:
    """The issue's document: 1,000 aliased pages of 100 completions (25,000 tokens)."""
    fields = " ".join(
        f'c{i}: completions(filter: {{project: "{seeded.key}"}}, page: {{first: 100}}) '
        "{ nodes { id completion } }"
        for i in range(1000)
    )
    started = time.monotonic()
    with client(live_store, seeded.secret) as http:
        response = _post(http, f"{{ {fields} }}")
    assert time.monotonic() - started < 20
    assert "more than 3000 tokens" in _refused(response, "query_too_long")


def test_a_document_over_50_characters_per_token_is_refused(
    live_store: LiveStore, seeded: SeededProject
) -> None:
    """Few tokens, many characters: whitespace or one long string is lexed character by
    character. 150,000 characters (3,000 tokens x 50) pass, one more does not."""
    head = '{ metric(projectIdOrKey: "' + seeded.key + '", metricIdOrKey: "'
    tail = '") { key } }'
    with client(live_store, seeded.secret) as http:
        fits = _post(http, head + "x" * (150_000 - len(head) - len(tail)) + tail)
        over = _post(http, "{ metrics { key } }" + " " * 149_982)
    assert fits.status_code == 200 and fits.json()["data"] == {"metric": None}, fits.text
    assert "150000 characters" in _refused(over, "query_too_long")


@pytest.fixture(scope="module")
def tight(
    _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, SeededProject]]:
    """A gateway of its own with the four limits lowered through their settings."""
    from store.db import create_store_engine
    from store.keys import create_api_key
    from tests.interaction_seeds import seed_project

    workdir = tmp_path_factory.mktemp("graphql-limits")
    shutil.copyfile(_sqlite_template, workdir / "interlog.db")
    database_url = f"sqlite:///{workdir / 'interlog.db'}"
    engine = create_store_engine(database_url)
    try:
        project = seed_project(engine, "tight", models=("m1",))
        secret = create_api_key(engine, project_key="tight").secret
        log_interaction(engine, project)
    finally:
        engine.dispose()
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(workdir / "journal"),
        "INTERLOG_ADMIN_KEY": ADMIN_KEY,
        "INTERLOG_LOG_LEVEL": "warning",
        "INTERLOG_GRAPHQL_MAX_DEPTH": "3",
        "INTERLOG_GRAPHQL_MAX_ALIASES": "2",
        "INTERLOG_GRAPHQL_MAX_COST": "50",
        "INTERLOG_GRAPHQL_MAX_TOKENS": "100000",
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    with interlog_process(args, env=env, cwd=REPO_ROOT, log=workdir / "server.log") as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120, process=process)
        yield f"http://127.0.0.1:{port}", SeededProject(project, "tight", secret)


def test_the_limits_follow_their_settings(tight: tuple[str, SeededProject]) -> None:
    base_url, seeded = tight
    page = 'completions(filter: {project: "tight"}, page: {first: 25}) { totalCount }'
    headers = {"Authorization": f"Bearer {seeded.secret}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        ok = _post(http, f"{{ a: {page} b: {page} }}")  # 2 aliases, cost 50
        assert ok.status_code == 200 and ok.json()["data"]["b"]["totalCount"] == 1, ok.text
        _refused(_post(http, f"{{ a: {page} b: {page} c: metrics {{ key }} }}"), "too_many_aliases")
        _refused(_post(http, f"{{ a: {page} {page.replace('25', '26')} }}"), "query_too_costly")
        deep = '{ completions(filter: {project: "tight"}, page: {}) { nodes { model { key } } } }'
        _refused(_post(http, deep), "query_too_deep")
        # The 1,000 aliases of 100 completions, past the (raised) token limit: refused
        # at once, and the gateway stays responsive.
        fields = " ".join(f"c{i}: {page}" for i in range(1000))
        started = time.monotonic()
        _refused(_post(http, f"{{ {fields} }}"), "too_many_aliases")
        assert time.monotonic() - started < 20
        assert http.get("/healthz").status_code == 200
