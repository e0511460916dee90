"""The `interlog` command line: help, migrations, serve, and up."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import migrations
from ingest.cli import app
from store.models import metadata
from tests.support import free_port, interlog_env, interlog_process, wait_for_http

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("db", "serve", "dashboard", "up"):
        assert command in result.output


def test_db_upgrade_then_downgrade_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    env = {"INTERLOG_DATABASE_URL": f"sqlite:///{path}"}
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(path) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert set(metadata.tables) <= tables
    result = runner.invoke(app, ["db", "downgrade", "base"], env=env)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(path) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert tables <= {"alembic_version"}


def test_default_database_is_interlog_db_in_working_directory(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "ingest", "db", "upgrade"],
        cwd=tmp_path, env=interlog_env({}), check=True, capture_output=True,
    )  # fmt: skip
    assert (tmp_path / "interlog.db").is_file()


def test_serve_answers_health_and_readiness(tmp_path: Path) -> None:
    port = free_port()
    env = {"INTERLOG_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "INTERLOG_PORT": str(port)}
    with interlog_process(["serve"], env=env, cwd=tmp_path, log=tmp_path / "serve.log") as proc:
        health = wait_for_http(f"http://127.0.0.1:{port}/healthz", process=proc)
        assert health.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"


def test_readiness_is_503_when_the_database_is_down(tmp_path: Path) -> None:
    port, dead_port = free_port(), free_port()
    env = {
        "INTERLOG_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{dead_port}/x",
        "INTERLOG_PORT": str(port),
    }
    args = ["serve", "--no-migrate"]
    with interlog_process(args, env=env, cwd=tmp_path, log=tmp_path / "serve.log") as proc:
        assert wait_for_http(f"http://127.0.0.1:{port}/healthz", process=proc).status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"


def test_readiness_is_503_until_the_store_is_migrated(tmp_path: Path) -> None:
    """`serve --no-migrate` (operators who migrate separately) on a store never migrated, then
    one revision behind, then upgraded: ready only at the end, and it says what to run (to an
    admin key: the unauthenticated answer names the failing check only)."""
    path = tmp_path / "later.db"
    port = free_port()
    admin = {"Authorization": "Bearer readiness-admin-key"}
    env = {
        "INTERLOG_DATABASE_URL": f"sqlite:///{path}",
        "INTERLOG_PORT": str(port),
        "INTERLOG_ADMIN_KEY": "readiness-admin-key",
    }
    args = ["serve", "--no-migrate"]
    with interlog_process(args, env=env, cwd=tmp_path, log=tmp_path / "serve.log") as proc:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=proc)
        never = httpx.get(f"http://127.0.0.1:{port}/readyz", headers=admin)
        assert never.status_code == 503
        assert never.json()["database"] == "not ok"
        assert never.json()["detail"]["database"].startswith("no Interlog tables")
        migrations.upgrade(f"sqlite:///{path}", "0002")
        behind = httpx.get(f"http://127.0.0.1:{port}/readyz", headers=admin)
        assert behind.status_code == 503
        assert behind.json()["detail"]["database"].startswith("schema at revision 0002,")
        assert "`interlog db upgrade`" in behind.json()["detail"]["database"]
        migrations.upgrade(f"sqlite:///{path}")
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_up_runs_gateway_and_dashboard_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    port, dash_port = free_port(), free_port()
    env = {
        "INTERLOG_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}",
        "INTERLOG_PORT": str(port),
        "INTERLOG_DASHBOARD_PORT": str(dash_port),
    }
    with interlog_process(
        ["up", "--no-demo"], env=env, cwd=tmp_path, log=tmp_path / "up.log"
    ) as proc:
        assert wait_for_http(f"http://127.0.0.1:{port}/healthz", process=proc).status_code == 200
        dash = wait_for_http(
            f"http://127.0.0.1:{dash_port}/_stcore/health", timeout=60, process=proc
        )
        assert dash.status_code == 200
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    for url in (f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{dash_port}/"):
        try:
            httpx.get(url, timeout=1)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"{url} still answers after Ctrl-C")


def _interlog(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    """`python -m ingest ARGS` as a user runs it (the entry point, not CliRunner)."""
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        env=interlog_env({"INTERLOG_DATABASE_URL": database_url}),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgres"], indirect=True)
def test_commands_on_a_store_never_migrated_say_to_run_db_upgrade(
    empty_database_url: str,
) -> None:
    for args in (["projects", "create", "p"], ["keys", "create", "--project", "p"]):
        done = _interlog(args, empty_database_url)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and done.stdout == ""
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: the store at ") and "is missing Interlog tables" in line
        assert "`interlog db upgrade`" in line
    # Once upgraded, the same command works.
    assert _interlog(["db", "upgrade"], empty_database_url).returncode == 0
    assert _interlog(["projects", "create", "p"], empty_database_url).returncode == 0


def test_an_unreachable_store_is_named_without_its_password() -> None:
    url = f"postgresql://interlog:s3cret@127.0.0.1:{free_port()}/nowhere"
    done = _interlog(["projects", "create", "p"], url)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the store at postgresql+psycopg://interlog:***@")
    assert "s3cret" not in done.stderr and "INTERLOG_DATABASE_URL" in line


def test_other_database_errors_keep_their_traceback(sqlite_url: str) -> None:
    """Only an unusable store is summarised; a failure inside a working store (here a write
    through a read-only connection) still shows where it happened."""
    path = sqlite_url.removeprefix("sqlite:///")
    done = _interlog(["projects", "create", "p"], f"sqlite:///file:{path}?mode=ro&uri=true")
    assert done.returncode == 1
    assert "attempt to write a readonly database" in done.stderr
    assert "Traceback" in done.stderr


def test_serve_explains_a_journal_dir_it_cannot_use(sqlite_url: str, tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    cases = ((a_file, "is not a directory"), (a_file / "sub", "Not a directory"))
    for journal_dir, reason in cases:
        done = subprocess.run(
            [sys.executable, "-m", "ingest", "serve", "--no-migrate", "--port", str(free_port())],
            env=interlog_env(
                {"INTERLOG_DATABASE_URL": sqlite_url, "INTERLOG_JOURNAL_DIR": str(journal_dir)}
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"error: INTERLOG_JOURNAL_DIR={journal_dir} ") and reason in line


# -- a lean command line: `interlog dashboard` and `--help` load what they use --------------------

LEAN_DRIVER = r"""
import json, sys
import ingest.cli as cli

started = []
cli._run_forwarding_signals = lambda command: started.append(command) or 0
sys.argv = ["interlog", *sys.argv[1:]]
try:
    cli.main()
except SystemExit:
    pass
heavy = {"sqlalchemy", "sqlmodel", "pydantic_settings", "migrations", "alembic", "streamlit",
         "pandas", "pyarrow", "duckdb", "httpx", "uvicorn", "fastapi", "psycopg"}
loaded = sorted({name.split(".")[0] for name in sys.modules} & heavy)
store = sorted(name for name in sys.modules if name.startswith("store.") and name != "store.errors")
print(json.dumps({"started": started, "loaded": loaded, "store": store}))
"""


def _lean(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", LEAN_DRIVER, *args],
        env=interlog_env({}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args", [["--help"], ["dashboard", "--help"], ["dashboard", "--port", "8599"], ["db", "--help"]]
)
def test_help_and_dashboard_load_no_store_database_or_server_library(args: list[str]) -> None:
    """The parent of the dashboard's server only parses its command line and starts the
    server: what a new dashboard process does before Streamlit starts is timed
    (bench/dashboard.py)."""
    report = _lean(args)
    assert report["loaded"] == []
    assert report["store"] == []
    if args[-1] == "8599":
        [command] = report["started"]
        assert command == [sys.executable, "-m", "dashboard.streamlit_server", "--port", "8599"]


def test_the_dashboard_server_reads_what_is_not_given_from_the_settings() -> None:
    from ingest.cli import dashboard_command

    assert dashboard_command()[1:] == ["-m", "dashboard.streamlit_server"]
    assert dashboard_command("0.0.0.0", 9000)[3:] == ["--host", "0.0.0.0", "--port", "9000"]


@pytest.mark.parametrize(
    "args",
    [
        ["dashboard"],
        ["dashboard", "--port", "8600"],
        ["dashboard", "--host", "0.0.0.0", "--port=8600"],
        ["dashboard", "--host=::1"],
        ["dashboard", "--port", "0", "--host", ""],
    ],
)
def test_interlog_dashboard_starts_the_server_typer_would_start(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`interlog dashboard` is parsed without Typer (ingest/cli.py), into the same command."""
    import ingest.cli as cli

    started: list[list[str]] = []

    def run_dashboard(command: list[str]) -> int:
        started.append(command)
        return 0

    monkeypatch.setattr(cli, "run_dashboard", run_dashboard)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert cli._dashboard_without_typer(args) == started[0]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["dashboard", "--help"],
        ["dashboard", "--port", "x"],
        ["dashboard", "--port"],
        ["dashboard", "--port", "--host", "x"],
        ["dashboard", "--hots", "x"],
        ["dashboard", "--port", "1", "--port", "2"],
        ["db", "upgrade"],
    ],
)
def test_anything_else_goes_to_typer(args: list[str]) -> None:
    import ingest.cli as cli

    assert cli._dashboard_without_typer(args) is None
