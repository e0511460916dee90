"""REST export and analytics endpoints, the notebook over HTTP, and `interlog export`, on a live
gateway over loopback (a SQLite store seeded with the known data): once with the analytics
reader child answering (the default) and once with the gateway answering itself."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ingest.cli import app as cli_app
from store import analytics, connect
from store.analytics.lake import drop_lake
from store.db import create_store_engine
from store.filters import Filters
from store.keys import create_api_key
from tests.store.analytics_data import KnownData, write_known_data
from tests.support import free_port, interlog_env, interlog_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
ADMIN_KEY = "il_admin_exporttests"


class Live(NamedTuple):
    reader: bool  # analytics answered by the gateway's reader child
    pid: int  # the gateway process
    base_url: str
    database_url: str
    data: KnownData
    bot_key: str
    other_key: str


@pytest.fixture(scope="module", params=["reader-child", "in-process"])
def live(
    request: pytest.FixtureRequest,
    _sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    reader = request.param == "reader-child"
    workdir = tmp_path_factory.mktemp("export-server")
    shutil.copyfile(_sqlite_template, workdir / "interlog.db")
    database_url = f"sqlite:///{workdir / 'interlog.db'}"
    engine = create_store_engine(database_url)
    data = write_known_data(engine)
    bot_key = create_api_key(engine, project_key="bot").secret
    other_key = create_api_key(engine, project_key="other").secret
    engine.dispose()
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(workdir / "journal"),
        "INTERLOG_ADMIN_KEY": ADMIN_KEY,
        "INTERLOG_LOG_LEVEL": "warning",
        "INTERLOG_ANALYTICS_READER": str(reader).lower(),
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    with interlog_process(args, env=env, cwd=REPO_ROOT, log=workdir / "server.log") as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        base_url = f"http://127.0.0.1:{port}"
        yield Live(reader, process.pid, base_url, database_url, data, bot_key, other_key)


def _get(live: Live, key: str, path: str, **params: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{live.base_url}{path}", params=params, headers=headers, timeout=60)  # type: ignore[arg-type]


def test_export_streams_every_matching_row_in_each_format(live: Live) -> None:
    data = live.data
    params = {"label": ["team=a|b"], "where": "quality>=0.3"}
    expected = {
        r["completion_id"]
        for r in data.bot()
        if r["labels"]["team"] in "ab" and data.quality.get(r["completion_id"], -1) >= 0.3
    }
    parquet = _get(live, live.bot_key, "/api/v1/interactions/export", format="parquet", **params)
    assert parquet.status_code == 200, parquet.text
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert "attachment" in parquet.headers["content-disposition"]
    assert set(pq.read_table(io.BytesIO(parquet.content)).column("completion_id").to_pylist()) == (
        expected
    )
    csv = _get(live, live.bot_key, "/api/v1/interactions/export", format="csv", **params)
    assert set(pd.read_csv(io.StringIO(csv.text))["completion_id"]) == expected
    jsonl = _get(live, live.bot_key, "/api/v1/interactions/export", format="jsonl", **params)
    answers = [json.loads(line)["messages"][-1]["content"] for line in jsonl.text.splitlines()]
    by_id = {r["completion_id"]: r["completion"] for r in data.bot()}
    assert sorted(answers) == sorted(by_id[cid] for cid in expected)


def test_export_is_not_shadowed_by_the_read_back_route(live: Live) -> None:
    one = live.data.bot()[0]["completion_id"]
    detail = _get(live, live.bot_key, f"/api/v1/interactions/{one}")
    assert detail.status_code == 200
    export = _get(live, live.bot_key, "/api/v1/interactions/export", format="csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert len(pd.read_csv(io.StringIO(export.text))) == len(live.data.bot())


def test_project_key_exports_only_its_project(live: Live) -> None:
    own = _get(live, live.other_key, "/api/v1/interactions/export", format="parquet")
    table = pq.read_table(io.BytesIO(own.content))
    assert table.num_rows == 5 and set(table.column("project").to_pylist()) == {"other"}
    refused = _get(live, live.other_key, "/api/v1/interactions/export", project="bot")
    assert refused.status_code == 404
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
    everyone = _get(live, ADMIN_KEY, "/api/v1/interactions/export", format="csv")
    assert len(pd.read_csv(io.StringIO(everyone.text))) == len(live.data.records)


@pytest.mark.parametrize(
    "params",
    [{"format": "xlsx"}, {"where": "quality >> 1"}, {"since": "yesterday-ish"}, {"session": "x"}],
)
def test_bad_export_parameters_are_400(live: Live, params: dict[str, str]) -> None:
    response = _get(live, live.bot_key, "/api/v1/interactions/export", **params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]
    assert _get(live, "il_nope_nope", "/api/v1/interactions/export").status_code == 401


def test_notebook_over_http_matches_the_database_notebook(live: Live) -> None:
    remote = connect(live.base_url, live.bot_key)
    local = connect(live.database_url)
    try:
        filters = {"labels": {"team": "a"}, "metrics": ["quality>=0.2"], "since": "30d"}
        got = remote.interactions(**filters)
        want = local.interactions(**filters, project="bot")
        assert sorted(got["completion_id"]) == sorted(want["completion_id"]) != []
        summary = remote.summary(by="model", labels=["env"])
        local_summary = local.summary(by="model", labels=["env"], project="bot")
        assert summary["count"].tolist() == local_summary["count"].tolist()
        assert summary["latency_p95"].tolist() == pytest.approx(
            local_summary["latency_p95"].tolist()
        )
        assert remote.label_keys() == ["env", "team", "tier"]
        values = remote.label_values("team")
        assert dict(zip(values["value"], values["count"], strict=True)) == {
            "a": 20,
            "b": 20,
            "c": 20,
        }
        other = connect(live.base_url, live.other_key)
        assert len(other.interactions()) == 5
        assert local.sql("SELECT count(*) AS n FROM interactions")["n"].tolist() == [65]
    finally:
        local.close()


def test_cli_export_writes_parquet_with_a_progress_bar(live: Live, tmp_path: Path) -> None:
    out = tmp_path / "good.parquet"
    command = [
        sys.executable, "-m", "ingest", "export", "--format", "parquet",
        "--label", "team=a", "--label", "env", "--where", "quality>=0.1", "-o", str(out),
    ]  # fmt: skip
    env = interlog_env({"INTERLOG_DATABASE_URL": live.database_url})
    done = subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "rows" in done.stderr  # tqdm's bar
    engine = create_store_engine(live.database_url)
    try:
        filters = Filters(labels=["team=a", "env"], metrics=["quality>=0.1"])
        want = analytics.interactions(engine, filters, scope=live.data.project_id, limit=None)
    finally:
        drop_lake(engine)
        engine.dispose()
    table = pq.read_table(out)
    assert sorted(table.column("completion_id").to_pylist()) == sorted(want["completion_id"])
    bad = CliRunner().invoke(cli_app, ["export", "--format", "xml", "-o", str(out)])
    assert bad.exit_code == 2 and "unknown export format" in bad.output


def test_ab_report_of_unknown_test_is_404(live: Live) -> None:
    response = _get(live, live.bot_key, "/api/v1/analytics/ab-tests/nosuch/report")
    assert response.status_code == 404
    assert "nosuch" in response.json()["error"]["message"]


def test_with_the_reader_child_the_gateway_never_loads_duckdb(live: Live) -> None:
    """What analytics cost stays in the reader child: the gateway process maps no DuckDB
    library after summaries and exports (and does without the reader, so this can fail)."""
    for path, params in [
        ("/api/v1/analytics/summary", {"by": "model"}),
        ("/api/v1/analytics/labels/team/values", {}),
        ("/api/v1/interactions/export", {"format": "parquet", "label": "team=a"}),
    ]:
        assert _get(live, live.bot_key, path, **params).status_code == 200
    maps = Path(f"/proc/{live.pid}/maps").read_text()
    assert ("duckdb" in maps) is not live.reader
    children = psutil.Process(live.pid).children()
    readers = [c for c in children if "store.analytics.reader" in " ".join(c.cmdline())]
    assert len(readers) == (1 if live.reader else 0)
