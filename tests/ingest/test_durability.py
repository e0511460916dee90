"""Durability end to end: kill -9 of the gateway mid-load, and a PostgreSQL outage mid-load.

The gateway runs as a subprocess in front of the demo model; clients note every answer they
fully received. Afterwards each of those interactions must be in the store exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.ingest.load_driver import Traffic, drive, stored_ids, wait_until_stored
from tests.servers import REPO_ROOT, demo_model, seed_project
from tests.support import free_port, interlog_process, wait_for_http


@contextmanager
def _gateway(
    database_url: str, workdir: Path, journal_dir: Path, name: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    settings = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(journal_dir),
        "INTERLOG_LOG_LEVEL": "warning",
        **env,
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    log = workdir / f"gateway-{name}.log"
    with interlog_process(args, env=settings, cwd=REPO_ROOT, log=log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/healthz", process=process)
        yield url, process


def _wait_for_answers(traffic: Traffic, count: int, timeout: float = 90.0) -> None:
    """Wait until clients fully received `count` answers (counts, not seconds: load varies)."""
    deadline = time.monotonic() + timeout
    while len(traffic.received) < count:
        assert time.monotonic() < deadline, (
            f"only {len(traffic.received)} answers: {traffic.errors}"
        )
        time.sleep(0.05)


def _assert_exactly_once(database_url: str, traffic: Traffic) -> None:
    ids = wait_until_stored(database_url, traffic.received)
    counts = Counter(ids)
    missing = traffic.received - set(ids)
    assert not missing, f"{len(missing)} of {len(traffic.received)} received answers not stored"
    assert all(counts[i] == 1 for i in traffic.received)


def test_kill_9_mid_load_loses_no_received_interaction(database_url: str, tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    with demo_model(tmp_path) as upstream:
        key, _, _ = seed_project(database_url, upstream_urls=[upstream])
        traffic = Traffic()
        stop = threading.Event()
        # A slow writer, so the journal holds many interactions when the process dies.
        with _gateway(
            database_url, tmp_path, journal_dir, "first", INTERLOG_WRITER_INTERVAL="1.0"
        ) as (url, process):
            threads = drive(url, key, traffic, stop)
            _wait_for_answers(traffic, 30)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            stop.set()
            for thread in threads:
                thread.join(timeout=15)
        received_before_restart = set(traffic.received)
        assert len(received_before_restart) >= 30
        not_yet_stored = received_before_restart - set(stored_ids(database_url))
        assert not_yet_stored, "the crash should leave interactions only in the journal"
        # The restarted gateway claims the dead process's journal and replays it.
        with _gateway(database_url, tmp_path, journal_dir, "second") as (url, _):
            after = Traffic()
            chat_stop = threading.Event()
            threads = drive(url, key, after, chat_stop, clients=1)
            time.sleep(0.5)
            chat_stop.set()
            for thread in threads:
                thread.join(timeout=15)
            traffic.received |= after.received
            _assert_exactly_once(database_url, traffic)
            status = httpx.get(
                url + "/api/v1/status", headers={"Authorization": f"Bearer {key}"}
            ).json()
            assert status["journal"]["replayed"] >= len(not_yet_stored)
        # Only the live process's journal existed; after a clean stop none is left.
        assert [p for p in journal_dir.iterdir() if p.is_dir()] == []


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    pytest.fail(f"{name} not found: the outage test needs PostgreSQL's server binaries")


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def _throwaway_postgres(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """A PostgreSQL cluster of this test's own on a free port; yields (pg_ctl, port, data)."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    base = Path("/tmp") / f"interlog-outage-{os.getpid()}-{free_port()}"
    base.mkdir(mode=0o755)
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    port = free_port()
    subprocess.run(
        _as_postgres(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
        check=True,
        capture_output=True,
    )
    try:
        yield pg_ctl, port, data
    finally:
        subprocess.run(
            _as_postgres(pg_ctl, "-D", str(data), "-m", "immediate", "stop"),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def _pg_start(pg_ctl: str, port: int, data: Path) -> None:
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres(pg_ctl, "-D", str(data), "-o", options, "-w", "-l", f"{data}/log", "start"),
        check=True,
        capture_output=True,
    )


def _pg_stop(pg_ctl: str, data: Path) -> None:
    subprocess.run(
        _as_postgres(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"),
        check=True,
        capture_output=True,
    )


def _assert_store_away_is_503(url: str, headers: dict[str, str], admin: dict[str, str]) -> None:
    """With the store down, what needs it answers 503 with Retry-After (it was a 500)."""
    some_id = "0191d6a4-3b6e-7c2a-9d4e-5f6a7b8c9d0e"
    calls = [
        ("GET", f"/api/v1/interactions/{some_id}", headers, None),  # read-back
        (
            "POST",
            "/api/v1/feedback",
            headers,
            {"completion_id": some_id, "metric": "q", "value": 1},
        ),
        ("POST", "/api/v1/interactions", headers, {"messages": [], "completion": "x"}),  # ingest
        ("GET", "/api/v1/admin/projects", admin, None),
    ]
    for method, path, call_headers, body in calls:
        response = httpx.request(method, url + path, headers=call_headers, json=body, timeout=60)
        assert response.status_code == 503, (path, response.status_code, response.text)
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "store_unavailable"
    graphql = httpx.post(
        url + "/api/graphql", headers=headers, json={"query": "{ metrics { key } }"}, timeout=60
    )
    assert graphql.status_code == 503, graphql.text
    assert graphql.headers["retry-after"] == "5"
    assert graphql.json()["errors"][0]["extensions"]["code"] == "store_unavailable"


def test_gateway_answers_through_a_database_outage_and_catches_up(tmp_path: Path) -> None:
    import migrations

    with _throwaway_postgres(tmp_path) as (pg_ctl, port, data):
        _pg_start(pg_ctl, port, data)
        database_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        migrations.upgrade(database_url)
        with demo_model(tmp_path) as upstream:
            key, _, _ = seed_project(database_url, upstream_urls=[upstream])
            traffic = Traffic()
            stop = threading.Event()
            admin = {"INTERLOG_ADMIN_KEY": "il_admin_outage"}
            with _gateway(database_url, tmp_path, tmp_path / "journal", "outage", **admin) as (
                url,
                _,
            ):
                threads = drive(url, key, traffic, stop, clients=3)
                _wait_for_answers(traffic, 3)
                _pg_stop(pg_ctl, data)
                during_start = len(traffic.received)
                failures_start = traffic.failures
                time.sleep(2.0)  # the store stays down at least this long...
                _wait_for_answers(traffic, during_start + 5)  # ...while answers keep coming
                answered_during = len(traffic.received) - during_start
                headers = {"Authorization": f"Bearer {key}"}
                _assert_store_away_is_503(url, headers, {"Authorization": "Bearer il_admin_outage"})
                _pg_start(pg_ctl, port, data)
                _wait_for_answers(traffic, len(traffic.received) + 2)
                stop.set()
                for thread in threads:
                    thread.join(timeout=15)
                # Keys and routes are cached by the gateway: it kept answering, store down.
                assert answered_during >= 5
                assert traffic.failures == failures_start, traffic.errors
                _assert_exactly_once(database_url, traffic)
                status = httpx.get(url + "/api/v1/status", headers=headers).json()
                assert status["writer"]["retried"] >= 1
                assert status["writer"]["last_error"]
                assert status["writer"]["failed"] == 0
                metrics = httpx.get(url + "/metrics").text
                assert "interlog_writer_retries_total" in metrics


def test_several_worker_processes_each_keep_their_own_journal(
    postgres_url: str, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    with demo_model(tmp_path) as upstream:
        key, _, _ = seed_project(postgres_url, upstream_urls=[upstream])
        traffic = Traffic()
        stop = threading.Event()
        port = free_port()
        settings = {
            "INTERLOG_DATABASE_URL": postgres_url,
            "INTERLOG_JOURNAL_DIR": str(journal_dir),
            "INTERLOG_LOG_LEVEL": "warning",
        }
        args = ["serve", "--port", str(port), "--no-migrate", "--workers", "2"]
        log = tmp_path / "gateway-workers.log"
        with interlog_process(args, env=settings, cwd=REPO_ROOT, log=log) as process:
            url = f"http://127.0.0.1:{port}"
            # Two processes import the app side by side: slower to start than one.
            wait_for_http(url + "/healthz", process=process, timeout=90)
            deadline = time.monotonic() + 60
            while len([p for p in journal_dir.iterdir() if not p.name.startswith(".")]) < 2:
                assert time.monotonic() < deadline, "both workers should have started"
                time.sleep(0.1)
            owners = sorted(p.name for p in journal_dir.iterdir() if p.is_dir())
            threads = drive(url, key, traffic, stop, clients=4)
            _wait_for_answers(traffic, 10)
            stop.set()
            for thread in threads:
                thread.join(timeout=15)
            assert len(owners) == 2 and owners[0] != owners[1]
            assert len(traffic.received) >= 10 and traffic.failures == 0, traffic.errors
            _assert_exactly_once(postgres_url, traffic)


def test_a_gateway_started_during_an_outage_serves_the_keys_it_knew(tmp_path: Path) -> None:
    """A gateway writes the keys and routes it verified to `last-known.json` beside the journal;
    one started while PostgreSQL is down loads it and answers chat for those keys (stored once
    the database is back), while a key it never saw is 503 store_unavailable with Retry-After,
    and the A/B monitor logs the outage once, not a traceback per check."""
    import migrations
    from store.db import create_store_engine
    from store.keys import create_api_key

    with _throwaway_postgres(tmp_path) as (pg_ctl, port, data):
        _pg_start(pg_ctl, port, data)
        database_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        migrations.upgrade(database_url)
        journal = tmp_path / "journal"
        body = {"model": "proj", "messages": [{"role": "user", "content": "hello"}]}
        with demo_model(tmp_path) as upstream:
            key, _, _ = seed_project(database_url, upstream_urls=[upstream])
            engine = create_store_engine(database_url)
            unseen = create_api_key(engine, project_key="proj").secret
            engine.dispose()
            with _gateway(database_url, tmp_path, journal, "before") as (url, _):
                answer = httpx.post(
                    url + "/api/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                assert answer.status_code == 200, answer.text
            assert (journal / "last-known.json").stat().st_mode & 0o777 == 0o600
            _pg_stop(pg_ctl, data)
            fast_checks = {"INTERLOG_AB_CHECK_SECONDS": "0.2"}
            with _gateway(database_url, tmp_path, journal, "during", **fast_checks) as (url, _):
                served = httpx.post(
                    url + "/api/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                assert served.status_code == 200, served.text
                refused = httpx.post(
                    url + "/api/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {unseen}"},
                    timeout=30,
                )
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "5"
                assert refused.json()["error"]["code"] == "store_unavailable"
                time.sleep(2.0)  # about ten A/B checks against the stopped database
                _pg_start(pg_ctl, port, data)
                wanted = uuid.UUID(served.json()["choices"][0]["completion_id"])
                assert wanted in wait_until_stored(database_url, {wanted}, timeout=60)
            log = (tmp_path / "gateway-during.log").read_text()
            assert log.count("A/B checks failing") == 1, log[-3000:]
            assert "Traceback" not in log, log[-3000:]
