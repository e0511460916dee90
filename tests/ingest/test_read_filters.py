"""One filter grammar on every surface, over HTTP on loopback (the app under uvicorn) and the
CLI, on SQLite and PostgreSQL: REST read-back, export query parameters, GraphQL and `interlog
export` select the same rows; the caps, unknown metrics and statuses are 400 in each surface's
error shape; absent label keys give warnings; reads stop at the read timeout and are cancelled
in PostgreSQL when the client goes away."""

from __future__ import annotations

import io
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pandas as pd
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from ingest.app import create_app
from ingest.cli import app as cli_app
from store.db import create_store_engine
from store.feedback import add_metric_value
from store.interactions import write_interactions
from store.keys import create_api_key
from store.settings import Settings
from tests.conftest import BACKENDS, create_postgres_database, drop_postgres_database
from tests.ingest.chat_double import serve_in_thread
from tests.interaction_seeds import log_interaction, minutes_ago, seed_project

ADMIN_KEY = "il_admin_filtertests"


class Served(NamedTuple):
    base_url: str
    database_url: str
    workdir: Path
    key: str  # project g's key
    ids: dict[str, str]

    def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.get(f"{self.base_url}{path}", params=params, headers=headers, timeout=60)

    def graphql(self, query: str, key: str | None = None, **variables: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        body = {"query": query, "variables": variables}
        return httpx.post(f"{self.base_url}/api/graphql", json=body, headers=headers, timeout=60)


@contextmanager
def _database(request: pytest.FixtureRequest, backend: str, workdir: Path) -> Iterator[str]:
    """A migrated store of its own: a copy of the SQLite template, or a PostgreSQL database."""
    if backend == "sqlite":
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), workdir / "interlog.db")
        yield f"sqlite:///{workdir / 'interlog.db'}"
        return
    url = create_postgres_database(template=request.getfixturevalue("_postgres_template"))
    try:
        yield url
    finally:
        drop_postgres_database(url)


def _settings(database_url: str, workdir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"analytics_path": str(workdir / "analytics"), "analytics_sync": False}
    values = {k: v for k, v in values.items() if k in Settings.model_fields}
    return Settings(
        database_url=database_url,
        journal_dir=workdir / "journal",
        admin_key=ADMIN_KEY,
        **values,
        **overrides,
    )


def _seed(engine: Engine) -> dict[str, str]:
    """Project g: a (env dev, quality 0.9), b (env prod, quality 0.5 and 0.9: mean 0.7),
    c (no env, error), d (no labels). Project h: one interaction labelled `secret`."""
    project = seed_project(engine, "g")
    other = seed_project(engine, "h")
    ids = {
        "a": log_interaction(
            engine, project, labels={"env": "dev", "team": "a"}, created_at=minutes_ago(4)
        ),
        "b": log_interaction(
            engine, project, labels={"env": "prod", "team": "b"}, created_at=minutes_ago(3)
        ),
        "c": log_interaction(
            engine, project, labels={"team": "c"}, created_at=minutes_ago(2), status="error"
        ),
        "d": log_interaction(engine, project, created_at=minutes_ago(1)),
    }
    log_interaction(engine, other, labels={"secret": "s"})
    assert project.id is not None
    for name, value in (("a", 0.9), ("b", 0.5), ("b", 0.9)):
        add_metric_value(
            engine, project_id=project.id, completion_id=ids[name], metric="quality", value=value
        )
    return {name: str(cid) for name, cid in ids.items()}


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp(f"filters-{request.param}")
    with _database(request, request.param, workdir) as database_url:
        engine = create_store_engine(database_url)
        try:
            ids = _seed(engine)
            key = create_api_key(engine, project_key="g").secret
        finally:
            engine.dispose()
        app = create_app(_settings(database_url, workdir))
        with serve_in_thread(app) as base_url:
            yield Served(base_url, database_url, workdir, key, ids)


def _names(served: Served, completion_ids: Any) -> set[str]:
    by_id = {cid: name for name, cid in served.ids.items()}
    return {by_id[str(cid)] for cid in completion_ids}


# The same rows on every surface ---------------------------------------------------------------


class Case(NamedTuple):
    labels: list[str]
    metrics: list[str]
    status: str | None
    graphql: dict[str, Any] | None  # the same filter in GraphQL's input, when it has one
    expected: set[str]


CASES = {
    "differs or absent": Case(
        ["env!=dev"], [], None,
        {"advancedFilter": {"label": {"key": "env", "value": {"neq": "dev"}}}}, {"b", "c", "d"},
    ),
    "equals": Case(["env=dev"], [], None, {"labels": [{"key": "env", "value": ["dev"]}]}, {"a"}),
    "one of": Case(
        ["team=a|b"], [], None, {"labels": [{"key": "team", "value": ["a", "b"]}]}, {"a", "b"}
    ),
    "has the key": Case(["team"], [], None, {"labels": [{"key": "team"}]}, {"a", "b", "c"}),
    "both": Case(
        ["env!=dev", "team"], [], None,
        {"labels": [{"key": "team"}],
         "advancedFilter": {"not": {"label": {"key": "env", "value": {"eq": "dev"}}}}},
        {"b", "c"},
    ),
    "mean at least": Case(
        [], ["quality>=0.7"], None, {"scores": [{"metric": "quality", "gte": 0.7}]}, {"a", "b"}
    ),
    "mean above": Case([], ["quality>0.7"], None, {"scores": [{"metric": "quality", "gt": 0.7}]},
                       {"a"}),
    "mean differs": Case(
        [], ["quality!=0.7"], None,
        {"advancedFilter": {"scores": {"metric": "quality", "value": {"neq": 0.7}}}}, {"a"},
    ),
    "status": Case([], [], "error", None, {"c"}),
    "label and metric": Case(
        ["team=a|b|c"], ["quality<0.8"], "ok",
        {"labels": [{"key": "team", "value": ["a", "b", "c"]}],
         "scores": [{"metric": "quality", "lt": 0.8}]},
        {"b"},
    ),
}  # fmt: skip

COMPLETIONS = """query($filter: ListCompletionsFilterInput!) {
  completions(filter: $filter, page: {first: 100}) { totalCount nodes { id } }
}"""


@pytest.mark.parametrize("name", CASES)
def test_rest_read_back_follows_the_grammar(served: Served, name: str) -> None:
    case = CASES[name]
    params: dict[str, Any] = {"label": case.labels, "metric": case.metrics, "limit": 500}
    if case.status:
        params["status"] = case.status
    response = served.get("/api/v1/interactions", **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert _names(served, [item["completion_id"] for item in body["data"]]) == case.expected
    assert body["total_count"] == len(case.expected) and body["warnings"] == []
    where = served.get("/api/v1/interactions", label=case.labels, where=case.metrics,
                       status=case.status or [], project="g", key=ADMIN_KEY)  # fmt: skip
    assert where.json()["data"] == body["data"]


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.graphql])
def test_graphql_follows_the_grammar(served: Served, name: str) -> None:
    case = CASES[name]
    assert case.graphql is not None
    response = served.graphql(COMPLETIONS, filter={"project": "g", **case.graphql})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    completions = body["data"]["completions"]
    assert _names(served, [node["id"] for node in completions["nodes"]]) == case.expected
    assert completions["totalCount"] == len(case.expected)
    assert "extensions" not in body


@pytest.mark.parametrize("name", CASES)
def test_export_query_parameters_follow_the_grammar(served: Served, name: str) -> None:
    case = CASES[name]
    params: dict[str, Any] = {"format": "csv", "label": case.labels, "where": case.metrics}
    if case.status:
        params["status"] = case.status
    response = served.get("/api/v1/interactions/export", **params)
    assert response.status_code == 200, response.text
    exported = pd.read_csv(io.StringIO(response.text)) if response.text.strip() else None
    got = set() if exported is None else _names(served, exported["completion_id"])
    assert got == case.expected


@pytest.mark.parametrize("name", ["differs or absent", "both", "mean at least", "status"])
def test_cli_export_follows_the_grammar(served: Served, name: str, tmp_path: Path) -> None:
    case = CASES[name]
    out = tmp_path / "out.csv"
    args = ["export", "--format", "csv", "-o", str(out), "--project", "g"]
    args += [arg for label in case.labels for arg in ("--label", label)]
    args += [arg for metric in case.metrics for arg in ("--where", metric)]
    args += ["--status", case.status] if case.status else []
    result = CliRunner().invoke(cli_app, args, env=_cli_env(served))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    exported = pd.read_csv(out) if out.read_text().strip() else None
    got = set() if exported is None else _names(served, exported["completion_id"])
    assert got == case.expected


def _cli_env(served: Served) -> dict[str, str]:
    return {
        "INTERLOG_DATABASE_URL": served.database_url,
        "INTERLOG_ANALYTICS_PATH": str(served.workdir / "analytics-cli"),
    }


# Caps, names and warnings ---------------------------------------------------------------------

TOO_MANY_LABELS = [f"team!=x{i}" for i in range(51)]
TOO_MANY_METRICS = [f"quality>{i / 100}" for i in range(21)]
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "51 labels": ({"label": TOO_MANY_LABELS}, "too many label conditions: 51; at most 50"),
    "21 metrics": ({"where": TOO_MANY_METRICS}, "too many metric conditions: 21; at most 20"),
    "unknown metric": (
        {"where": ["qualty>0.5"]}, "unknown metric 'qualty'; valid metrics: quality, thumbs"
    ),
    "unknown status": ({"status": "failed"}, "unknown status 'failed': use ok, error, cancelled"),
    "bad label": ({"label": "bad key=x"}, "bad label filter"),
}  # fmt: skip


@pytest.mark.parametrize("path", ["/api/v1/interactions", "/api/v1/interactions/export",
                                  "/api/v1/analytics/labels"])  # fmt: skip
@pytest.mark.parametrize("name", REFUSED)
def test_refused_filters_are_400_in_the_rest_shape(served: Served, path: str, name: str) -> None:
    params, message = REFUSED[name]
    response = served.get(path, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"]
    assert error["code"] == "bad_request"


@pytest.mark.parametrize(
    ("graphql", "message"),
    [
        ({"labels": [{"key": "team", "value": [f"x{i}"]} for i in range(26)],
          "advancedFilter": {"or": [{"label": {"key": "env"}}] * 25}},
         "InvalidInput: too many label conditions: 51; at most 50 per query"),
        ({"scores": [{"metric": "quality", "gt": 0.1, "lt": 0.9}] * 10,
          "advancedFilter": {"scores": {"metric": "quality"}}},
         "InvalidInput: too many metric conditions: 21; at most 20 per query"),
        ({"advancedFilter": {"not": {"scores": {"metric": "qualty", "value": {"gt": 1}}}}},
         "InvalidInput: unknown metric 'qualty'; valid metrics: quality, thumbs"),
    ],
)  # fmt: skip
def test_refused_filters_are_graphql_errors(
    served: Served, graphql: dict[str, Any], message: str
) -> None:
    response = served.graphql(COMPLETIONS, filter={"project": "g", **graphql})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == message


@pytest.mark.parametrize("name", ["51 labels", "unknown metric", "unknown status"])
def test_refused_filters_fail_the_cli_export(served: Served, name: str, tmp_path: Path) -> None:
    params, message = REFUSED[name]
    args = ["export", "--format", "csv", "-o", str(tmp_path / "out.csv")]
    for option, values in params.items():
        for value in [values] if isinstance(values, str) else values:
            args += [f"--{option}", value]
    result = CliRunner().invoke(cli_app, args, env=_cli_env(served))
    assert result.exit_code == 2, result.output
    assert message in result.stderr


PROJECT_WARNING = "no interaction has label key 'project'; to filter by project use project=..."


def test_absent_label_keys_are_warnings_on_rest_read_back(served: Served) -> None:
    body = served.get("/api/v1/interactions", label=["project=g", "secret", "team"]).json()
    assert (body["data"], body["total_count"]) == ([], 0)
    assert body["warnings"] == [PROJECT_WARNING, "no interaction has label key 'secret'"]
    everywhere = served.get("/api/v1/interactions", ADMIN_KEY, label=["secret", "team"]).json()
    assert everywhere["warnings"] == [] and everywhere["total_count"] == 0
    unfiltered = served.get("/api/v1/interactions", label="tier!=gold").json()
    assert unfiltered["total_count"] == 4
    assert unfiltered["warnings"] == ["no interaction has label key 'tier'"]


def test_absent_label_keys_are_warnings_in_graphql_extensions(served: Served) -> None:
    filter = {"project": "g", "labels": [{"key": "project", "value": ["g"]}],
              "advancedFilter": {"not": {"label": {"key": "secret"}}}}  # fmt: skip
    body = served.graphql(COMPLETIONS, filter=filter).json()
    assert body["data"]["completions"] == {"totalCount": 0, "nodes": []}
    assert body["extensions"] == {
        "warnings": [PROJECT_WARNING, "no interaction has label key 'secret'"]
    }


def test_absent_label_keys_are_warnings_on_the_cli_stderr(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    args = ["export", "--format", "csv", "-o", str(out), "--label", "project=g"]
    result = CliRunner().invoke(cli_app, args, env=_cli_env(served))
    assert result.exit_code == 0, result.output
    assert f"warning: {PROJECT_WARNING}" in result.stderr.splitlines()
    assert "0 interactions" in result.stdout


# The read timeout -----------------------------------------------------------------------------


def _many_interactions(engine: Engine, count: int) -> None:
    """COUNT interactions of a new project, each with three labels."""
    project = seed_project(engine, "big")
    records = [
        {
            "completion_id": str(uuid.uuid4()),
            "project_id": project.id,
            "session_id": str(uuid.uuid4()),
            "created_at": minutes_ago(i / 100).isoformat(),
            "labels": {"team": f"t{i % 7}", "env": f"e{i % 3}", "tier": f"x{i % 11}"},
            "messages": [{"role": "user", "content": "q"}],
            "completion": "a",
        }
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        write_interactions(engine, records[start : start + 1000])


@pytest.fixture
def slow_reads(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[Served]:
    """A gateway whose read timeout (1 ms) no query of 50 label conditions on 4,000
    interactions can meet."""
    engine = create_store_engine(database_url)
    try:
        _many_interactions(engine, 4000)
    finally:
        engine.dispose()
    app = create_app(_settings(database_url, tmp_path, read_timeout_seconds=0.001))
    with serve_in_thread(app) as base_url:
        yield Served(base_url, database_url, tmp_path, ADMIN_KEY, {})


HEAVY = [f"team!=z{i}" for i in range(50)]


def test_a_read_past_the_timeout_is_a_clear_503(slow_reads: Served) -> None:
    response = slow_reads.get("/api/v1/interactions", label=HEAVY)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "query_timeout" and error["type"] == "server_error"
    assert "INTERLOG_READ_TIMEOUT_SECONDS" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_a_graphql_read_past_the_timeout_is_a_query_timeout_error(slow_reads: Served) -> None:
    tree = {"and": [{"label": {"key": "team", "value": {"neq": f"z{i}"}}} for i in range(50)]}
    response = slow_reads.graphql(COMPLETIONS, filter={"project": "big", "advancedFilter": tree})
    [error] = response.json()["errors"]
    assert error["message"].startswith("QueryTimeout: the query ran longer than the read timeout")
    assert error["extensions"] == {"code": "query_timeout", "type": "server_error"}


# Cancellation when the client goes away -------------------------------------------------------


def _conninfo(database_url: str) -> str:
    url = make_url(database_url)
    return f"host={url.host} port={url.port or 5432} user={url.username} dbname={url.database}"


def _read_back_backends(monitor: psycopg.Connection[Any], database: str) -> list[int]:
    """Backends of DATABASE running the read-back page query now."""
    rows = monitor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
        "AND query LIKE %s AND pid <> pg_backend_pid()",
        (database, "%ORDER BY interaction.created_at DESC%"),
    ).fetchall()
    return [row[0] for row in rows]


def _wait_for(condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


def test_postgres_query_is_cancelled_when_the_client_goes_away(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = create_store_engine(postgres_url)
    try:
        project = seed_project(engine, "g")
        log_interaction(engine, project, labels={"team": "a"})
    finally:
        engine.dispose()
    database = str(make_url(postgres_url).database)
    app = create_app(_settings(postgres_url, tmp_path, read_timeout_seconds=60))
    with (
        serve_in_thread(app) as base_url,
        psycopg.connect(_conninfo(postgres_url), autocommit=True) as monitor,
        psycopg.connect(_conninfo(postgres_url)) as holder,
    ):
        # The read-back query waits behind this lock: a query that runs until cancelled.
        holder.execute("LOCK TABLE interaction IN ACCESS EXCLUSIVE MODE")
        port = int(base_url.rsplit(":", 1)[1])
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(
            b"GET /api/v1/interactions?label=team=a HTTP/1.1\r\nHost: test\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n\r\n"
        )
        running = _wait_for(lambda: _read_back_backends(monitor, database), 10)
        assert running, "the read-back query never reached PostgreSQL"
        client.close()
        left = _wait_for(lambda: not _read_back_backends(monitor, database), 5)
        assert left, f"still running 5 s after the client left: {running}"
        holder.rollback()
        after = httpx.get(f"{base_url}/api/v1/interactions", params={"label": "team=a"},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)  # fmt: skip
        assert after.status_code == 200 and after.json()["total_count"] == 1
