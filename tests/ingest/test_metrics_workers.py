"""/metrics of `interlog serve --workers N`: the totals of all the worker processes.

Each worker counts in a file of its own in a directory private to that serve, and a scrape,
whichever worker answers it, sums them (ingest/telemetry.py). Before, a scrape read the
numbers of the one worker that happened to accept the connection (18 or 22 after 40 requests).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from ingest.telemetry import METRICS_DIR_ENV, Telemetry, render_prometheus
from tests.servers import REPO_ROOT, demo_model, seed_project
from tests.support import free_port, interlog_process, wait_for_http


def _fake_writer(written: int = 0, depth: int = 0, age: float = 0.0) -> Any:
    stats = SimpleNamespace(written=written, retried=0, failed=0)
    return SimpleNamespace(stats=stats, journal=SimpleNamespace(depth=depth, oldest_age=age))


def _value(metrics: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    assert match is not None, f"{name} not in\n{metrics}"
    return float(match.group(1))


def test_processes_sharing_a_directory_report_their_totals(tmp_path: Path) -> None:
    """Counters and histograms summed over every process, the exited ones included; gauges
    over the live ones (depth summed, lag the oldest)."""
    one, two, gone = Telemetry(tmp_path), Telemetry(tmp_path), Telemetry(tmp_path)
    for telemetry, requests in ((one, 3), (two, 4), (gone, 5)):
        for _ in range(requests):
            telemetry.observe_chat("ok", 0.02, 10.0)
    two.observe_chat("error", 2.0, None)
    gone.not_stored += 2
    one.capture_errors += 1
    two.publish(_fake_writer(written=4, depth=7, age=30.0))
    gone.publish(_fake_writer(written=5, depth=100, age=99.0))
    asyncio.run(gone.stop(_fake_writer(written=5, depth=100, age=99.0)))  # it exited

    metrics = render_prometheus(one, _fake_writer(written=3, depth=1, age=2.0))
    assert 'interlog_chat_requests_total{status="ok"} 12' in metrics
    assert 'interlog_chat_requests_total{status="error"} 1' in metrics
    assert 'interlog_chat_latency_seconds_bucket{le="0.025"} 12' in metrics
    assert 'interlog_chat_latency_seconds_bucket{le="2.5"} 13' in metrics
    assert _value(metrics, "interlog_chat_latency_seconds_count") == 13
    assert _value(metrics, "interlog_chat_latency_seconds_sum") == 12 * 0.02 + 2.0
    assert _value(metrics, "interlog_chat_ttft_seconds_count") == 12
    assert _value(metrics, "interlog_interactions_not_stored_total") == 2
    assert _value(metrics, "interlog_capture_errors_total") == 1
    assert _value(metrics, "interlog_interactions_written_total") == 12  # 3 + 4 + 5
    assert _value(metrics, "interlog_journal_depth") == 8  # 1 + 7: not the exited one's
    assert 29.9 <= _value(metrics, "interlog_journal_lag_seconds") <= 40  # two's, not gone's
    # /api/v1/status stays per process.
    assert one.chat_requests == {"ok": 3} and two.chat_requests == {"ok": 4, "error": 1}


def test_a_process_of_its_own_reports_only_itself(tmp_path: Path) -> None:
    alone, other = Telemetry(), Telemetry()
    alone.observe_chat("cancelled", 0.5, None)
    other.observe_chat("ok", 0.5, None)
    metrics = render_prometheus(alone, None)
    assert 'interlog_chat_requests_total{status="cancelled"} 1' in metrics
    assert 'interlog_chat_requests_total{status="ok"} 0' in metrics
    assert "interlog_journal_depth" not in metrics  # no writer: no writer section
    assert list(tmp_path.iterdir()) == []


# -- a real `interlog serve --workers 2` ------------------------------------------------------

REQUESTS = 40


def _chat(url: str, key: str, number: int) -> None:
    body = {"model": "proj", "messages": [{"role": "user", "content": f"hello {number}"}]}
    answer = httpx.post(  # a new connection each time: the workers take turns accepting
        url + "/api/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


def _requests_by_worker(url: str, key: str) -> dict[str, int]:
    """Chat requests each worker answered, by its journal directory (`host-pid-random`), from
    /api/v1/status (per process), asked on new connections until both workers answered."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while len(seen) < 2 and time.monotonic() < deadline:
        status = httpx.get(
            url + "/api/v1/status", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).json()
        seen[status["journal"]["directory"]] = sum(status["chat_requests"].values())
    return seen


def _scrape(url: str) -> str:
    response = httpx.get(url + "/metrics", timeout=30)
    assert response.status_code == 200
    return response.text


def test_every_scrape_reports_the_requests_of_all_workers(sqlite_url: str, tmp_path: Path) -> None:
    journal_dir, scratch = tmp_path / "journal", tmp_path / "tmp"
    scratch.mkdir()
    with demo_model(tmp_path) as upstream:
        key, _, _ = seed_project(sqlite_url, upstream_urls=[upstream])
        port = free_port()
        settings = {
            "INTERLOG_DATABASE_URL": sqlite_url,
            "INTERLOG_JOURNAL_DIR": str(journal_dir),
            "INTERLOG_LOG_LEVEL": "warning",
            "TMPDIR": str(scratch),  # where serve makes its workers' metrics directory
        }
        args = ["serve", "--port", str(port), "--no-migrate", "--workers", "2"]
        log = tmp_path / "gateway-workers.log"
        with interlog_process(args, env=settings, cwd=REPO_ROOT, log=log) as process:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(url + "/healthz", process=process, timeout=90)
            deadline = time.monotonic() + 90
            while len([p for p in journal_dir.iterdir() if not p.name.startswith(".")]) < 2:
                assert time.monotonic() < deadline, "both workers should have started"
                time.sleep(0.1)
            [metrics_dir] = scratch.glob("interlog-metrics-*")

            sent = 0
            with ThreadPoolExecutor(8) as pool:  # concurrent: both workers get some
                while True:
                    batch = REQUESTS if sent == 0 else 8
                    list(pool.map(lambda n: _chat(url, key, n), range(sent, sent + batch)))
                    sent += batch
                    by_worker = _requests_by_worker(url, key)
                    if (len(by_worker) == 2 and all(by_worker.values())) or sent >= 200:
                        break
            assert len(by_worker) == 2 and all(by_worker.values()), by_worker
            assert sum(by_worker.values()) == sent, by_worker  # each worker counts its own

            for _ in range(10):  # whichever worker answers: the totals of both
                metrics = _scrape(url)
                assert f'interlog_chat_requests_total{{status="ok"}} {sent}' in metrics, metrics
                assert _value(metrics, "interlog_chat_latency_seconds_count") == sent
                assert f'interlog_chat_latency_seconds_bucket{{le="+Inf"}} {sent}' in metrics
            # The writers' counters come from both too (each publishes them every second).
            deadline = time.monotonic() + 60
            while _value(_scrape(url), "interlog_interactions_written_total") < sent:
                assert time.monotonic() < deadline, _scrape(url)
                time.sleep(0.2)
            assert _value(_scrape(url), "interlog_interactions_written_total") == sent

            # A worker that dies: what it counted stays in the totals.
            dead = sorted(by_worker)[0]
            os.kill(int(dead.rsplit("-", 2)[1]), signal.SIGKILL)
            time.sleep(1)
            for _ in range(10):
                metrics = _scrape(url)
                assert f'interlog_chat_requests_total{{status="ok"}} {sent}' in metrics, metrics
                assert _value(metrics, "interlog_chat_latency_seconds_count") == sent
                assert _value(metrics, "interlog_journal_depth") == 0
        assert process.returncode is not None
    if process.returncode in (0, -signal.SIGTERM):  # stopped cleanly: its directory is gone
        assert not metrics_dir.exists()


def _share(tmp_path: Path, then: str = "") -> subprocess.Popen[str]:
    code = (
        "import os, signal, sys, ingest.telemetry as t; t.share_metrics_between_workers(); "
        f"print(os.environ[{METRICS_DIR_ENV!r}], flush=True); {then}"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_serve_gives_its_workers_a_fresh_metrics_directory(tmp_path: Path) -> None:
    """Two serves never share counters: each makes its own directory, removed when it exits;
    one left by a serve that was killed is removed by the next serve, a running one's is not."""
    running = _share(tmp_path, then="sys.stdin.read()")
    assert running.stdout is not None
    live = Path(running.stdout.readline().strip())
    killed = _share(tmp_path, then="os.kill(os.getpid(), signal.SIGKILL)")
    stale = Path(killed.communicate(timeout=60)[0].strip())
    assert killed.returncode == -signal.SIGKILL and stale.is_dir()  # no atexit
    fresh = _share(tmp_path)
    made = Path(fresh.communicate(timeout=60)[0].strip())
    assert fresh.returncode == 0
    assert len({live, stale, made}) == 3 and all(p.parent == tmp_path for p in (live, made))
    assert not made.exists() and not stale.exists()  # its own at exit; the stale one at start
    assert live.is_dir()  # still locked by its serve
    running.communicate("", timeout=60)
    assert list(tmp_path.iterdir()) == []
