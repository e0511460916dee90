"""A gateway serving chat, logging, feedback and admin never loads the analytics libraries.

pandas, pyarrow, DuckDB and scipy cost the gateway ~180 MB of RSS (`python -m bench memory`), so
the modules that use them import them on first use. The check runs in a fresh interpreter (the
test process has them loaded already): a driver script (DRIVER below) serves the app the way
`interlog serve` does (uvicorn, the app factory, its lifespan) on a real SQLite store, in front of
`interlog demo-model`, calls it over loopback HTTP, stops it, and prints `sys.modules`' heavy
packages. A second server in the same process then answers an analytics request. With the
analytics reader child (the default) the gateway still loads none of them; without it
(INTERLOG_ANALYTICS_READER=false) the request loads them, which the same check must see, so the
check can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers import REPO_ROOT, copy_sqlite_template, demo_upstream, seed_project
from tests.support import free_port, interlog_env

__all__ = ["demo_upstream"]

HEAVY = ("numpy", "pandas", "pyarrow", "duckdb", "scipy", "streamlit", "altair")
ADMIN_KEY = "il_admin_leanimports"

DRIVER = r"""
import json, sys, threading, time, urllib.error, urllib.request

import uvicorn

HEAVY = set(sys.argv[1].split(","))
PORT = int(sys.argv[2])
API_KEY, ADMIN_KEY = sys.argv[3], sys.argv[4]
BASE = f"http://127.0.0.1:{PORT}"


def loaded():
    return sorted({name.split(".")[0] for name in sys.modules} & HEAVY)


def call(method, path, key=None, body=None):
    request = urllib.request.Request(BASE + path, method=method)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def serve():
    config = uvicorn.Config(
        "ingest.app:create_app_from_env", factory=True, host="127.0.0.1", port=PORT,
        log_level="warning", access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the gateway did not start")
        time.sleep(0.05)
    return server, thread


def stop(server, thread):
    server.should_exit = True  # runs the lifespan's shutdown (writer drain, drop_lake)
    thread.join(30)


report = {}
server, thread = serve()
steps = report["lean_steps"] = {}
steps["healthz"] = call("GET", "/healthz")[0]
steps["readyz"] = call("GET", "/readyz")[0]
status, chat = call(
    "POST", "/api/v1/chat/completions", API_KEY,
    {"model": "proj/m1", "messages": [{"role": "user", "content": "hello"}]},
)
steps["chat"] = status
steps["metric"] = call("POST", "/api/v1/metrics", API_KEY, {"key": "quality"})[0]
completion_id = chat["choices"][0]["completion_id"] if status == 200 else ""
steps["feedback"] = call(
    "POST", "/api/v1/feedback", API_KEY,
    {"completion_id": completion_id, "metric": "quality", "value": 0.9},
)[0]
steps["admin"] = call("GET", "/api/v1/admin/projects", ADMIN_KEY)[0]
time.sleep(1.0)  # the A/B monitor (every 0.2 s here) checks the active tests a few times
report["after_requests"] = loaded()
stop(server, thread)
report["after_shutdown"] = loaded()

server, thread = serve()
report["analytics_status"] = call("GET", "/api/v1/analytics/summary?by=model", API_KEY)[0]
report["after_analytics"] = loaded()
stop(server, thread)
print(json.dumps(report))
"""


def _drive(database_url: str, workdir: Path, api_key: str, *, reader: bool) -> dict[str, Any]:
    env = interlog_env(
        {
            "INTERLOG_ANALYTICS_READER": str(reader).lower(),
            "INTERLOG_DATABASE_URL": database_url,
            "INTERLOG_JOURNAL_DIR": str(workdir / "journal"),
            "INTERLOG_ADMIN_KEY": ADMIN_KEY,
            "INTERLOG_AB_CHECK_SECONDS": "0.2",
            "INTERLOG_LOG_LEVEL": "warning",
        }
    )
    args = [",".join(HEAVY), str(free_port()), api_key, ADMIN_KEY]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("reader", [True, False], ids=["reader-child", "in-process"])
def test_gateway_loads_analytics_libraries_only_for_analytics(
    _sqlite_template: Path, demo_upstream: str, tmp_path: Path, reader: bool
) -> None:
    database_url = copy_sqlite_template(_sqlite_template, tmp_path)
    api_key, _, _ = seed_project(database_url, upstream_urls=[demo_upstream])

    report = _drive(database_url, tmp_path, api_key, reader=reader)

    assert report["lean_steps"] == {
        "healthz": 200,
        "readyz": 200,
        "chat": 200,
        "metric": 201,
        "feedback": 201,
        "admin": 200,
    }
    assert report["after_requests"] == []
    assert report["after_shutdown"] == []
    assert report["analytics_status"] == 200
    if reader:  # answered by the reader child: nothing heavy in the gateway
        assert report["after_analytics"] == []
    else:  # the request loads what it needs, and the check above would have seen it
        assert {"pandas", "pyarrow", "duckdb"} <= set(report["after_analytics"])
