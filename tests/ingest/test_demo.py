"""`interlog demo` seeds a store through a real gateway, and leaves a seeded store alone;
`interlog up` keeps the demo models served while it runs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from ingest.demo_servers import demo_models_in_store
from store.ab_catalog import list_ab_tests
from store.ab_lifecycle import cancel_ab_test, get_ab_test
from store.catalog import create_model, list_models, list_projects
from store.db import create_store_engine
from store.models import Comparison, Interaction, InteractionLabel, MetricValue
from tests.support import free_port, interlog_env, interlog_process, wait_for_http

INTERACTIONS = 40


def _demo(database_url: str, cwd: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "ingest", "demo", "--interactions", str(INTERACTIONS)],
        env=interlog_env({"INTERLOG_DATABASE_URL": database_url}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def _count(connection: object, statement: object) -> int:
    return int(connection.execute(statement).scalar_one())  # type: ignore[attr-defined]


def test_demo_seeds_projects_sessions_labels_ab_test_and_scores_through_the_gateway(
    sqlite_url: str, tmp_path: Path
) -> None:
    output = _demo(sqlite_url, tmp_path)
    assert f"sent {INTERACTIONS} chat completions" in output
    assert "dashboard admin key (shown once): il_" in output
    engine = create_store_engine(sqlite_url)
    try:
        assert sorted(p.key for p in list_projects(engine)) == [
            "code-assistant",
            "search",
            "support-bot",
        ]
        with engine.connect() as connection:
            assert _count(connection, select(func.count()).select_from(Interaction)) == (
                INTERACTIONS
            )
            per_session = (
                select(func.count().label("turns"))
                .select_from(Interaction)
                .group_by(col(Interaction.session_id))
                .subquery()
            )
            assert _count(connection, select(func.max(per_session.c.turns))) > 1
            label_keys = set(
                connection.execute(select(col(InteractionLabel.key)).distinct()).scalars()
            )
            assert {"team", "channel"} <= label_keys or {"language", "task"} <= label_keys
            assert _count(connection, select(func.count()).select_from(MetricValue)) > 0
            variants = set(
                connection.execute(
                    select(col(Interaction.ab_variant)).where(
                        col(Interaction.ab_variant).is_not(None)
                    )
                ).scalars()
            )
            comparisons = _count(connection, select(func.count()).select_from(Comparison))

        [test] = list_ab_tests(engine, project_ids=None)
        assert (test.key, test.project_key, test.metric_key) == (
            "small-vs-large",
            "support-bot",
            "quality",
        )
        assert variants <= {"demo-small", "demo-large"} and variants
        assert f"{comparisons} preferences" in output

        again = _demo(sqlite_url, tmp_path)
        assert "the demo projects already exist; nothing done" in again
        with engine.connect() as connection:
            assert _count(connection, select(func.count()).select_from(Interaction)) == (
                INTERACTIONS
            )
    finally:
        engine.dispose()


def _keys(output: str) -> dict[str, str]:
    """Project key -> API key, as the demo prints them."""
    return dict(re.findall(r"^\s+(\S+) key: (il_\S+)$", output, flags=re.MULTILINE))


def _demo_upstreams(database_url: str) -> list[str]:
    engine = create_store_engine(database_url)
    try:
        return [url for model in list_models(engine) for url in model.upstream_urls]
    finally:
        engine.dispose()


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


def test_up_serves_the_demo_models_for_as_long_as_it_runs_also_after_a_restart(
    tmp_path: Path,
) -> None:
    """`interlog up` on an empty store seeds the demo and keeps its model servers running; run
    again on the seeded store, it starts them on new ports and repoints the models. Either way
    a chat completion to every demo project answers 200, and Ctrl-C stops the servers."""
    database_url = f"sqlite:///{tmp_path / 'up.db'}"
    keys: dict[str, str] = {}
    for run in ("seeding", "restart"):
        port, dashboard_port = free_port(), free_port()
        env = {
            "INTERLOG_DATABASE_URL": database_url,
            "INTERLOG_PORT": str(port),
            "INTERLOG_DASHBOARD_PORT": str(dashboard_port),
        }
        log = tmp_path / f"up-{run}.log"
        args = ["up", "--demo-interactions", str(INTERACTIONS)]
        with interlog_process(args, env=env, cwd=tmp_path, log=log) as process:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=240, process=process)
            keys = keys or _keys(log.read_text())
            assert sorted(keys) == ["code-assistant", "search", "support-bot"], log.read_text()
            for project, key in keys.items():
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/api/v1/chat/completions",
                    json={"model": project, "messages": [{"role": "user", "content": "Hi"}]},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                assert answer.status_code == 200, (run, project, answer.text)
            upstreams = _demo_upstreams(database_url)
            assert len(upstreams) == 3 and all(_answers(f"{url}/models") for url in upstreams)
            os.killpg(process.pid, signal.SIGINT)
            assert process.wait(timeout=30) == 0
        assert not any(_answers(f"{url}/models") for url in upstreams), run
        if run == "seeding":
            # The demo's A/B test may end (mSPRT) or be cancelled: support-bot must then still
            # answer, through its default model. The restart checks that, with the test ended.
            _end_demo_ab_test(database_url)


def _end_demo_ab_test(database_url: str) -> None:
    engine = create_store_engine(database_url)
    try:
        if get_ab_test(engine, key="small-vs-large", project_key="support-bot").status == "active":
            cancel_ab_test(engine, key="small-vs-large", project_key="support-bot")
    finally:
        engine.dispose()


def test_only_demo_models_on_loopback_are_repointed(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url)
    try:
        create_model(engine, key="demo-small", upstream_urls=["http://127.0.0.1:9/v1"])
        create_model(engine, key="demo-large", upstream_urls=["https://llm.example.com/v1"])
        create_model(engine, key="mine", upstream_urls=["http://127.0.0.1:9/v1"])
        assert demo_models_in_store(engine) == ["demo-small"]
    finally:
        engine.dispose()


def test_a_demo_model_whose_port_was_taken_starts_on_another(tmp_path: Path) -> None:
    """Between choosing a free port and binding it, another process may take it: the server
    that fails to bind is started again on the next port, and answers there."""
    from ingest.demo_data import DEMO_MODELS
    from ingest.demo_servers import start_demo_models, stop_all

    key = next(iter(DEMO_MODELS))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        spare = free_port()
        servers = start_demo_models([key], log_dir=tmp_path, ports=iter([busy, spare]))
        try:
            (server,) = servers
            assert server.url == f"http://127.0.0.1:{spare}/v1"
            assert httpx.get(f"{server.url}/models").status_code == 200
        finally:
            stop_all(servers)
    log = (tmp_path / f"{DEMO_MODELS[key][0]}.log").read_text()
    assert "address already in use" in log  # the first try's failure, kept in the log
