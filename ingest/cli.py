"""The `interlog` command line: database, gateway, dashboard, and everything in one (`up`).

The commands are a Typer app (ingest/cli_app.py and the command modules ingest/cli_*.py),
loaded for every command line but one: `interlog dashboard [--host HOST] [--port PORT]`
starts the dashboard's server without it. That command is a new dashboard process's first
step towards its first page, which is timed (bench/dashboard.py), and Typer (with the pydantic
it builds its parsers with) took 0.3 s of it; the standard library starts the server in 0.05 s.
Any other form of the command (`--help`, a mistake) goes to Typer, which explains.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

#: The dashboard's server: Streamlit, and a warm-up of the first page (dashboard/warmup.py).
DASHBOARD_SERVER = "dashboard.streamlit_server"
_DASHBOARD_OPTIONS = ("--host", "--port")


def __getattr__(name: str) -> Any:
    """The Typer app (`app`) and its commands, from ingest/cli_app.py, loaded on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    from ingest import cli_app

    try:
        return getattr(cli_app, name)
    except AttributeError:
        raise AttributeError(f"module 'ingest.cli' has no attribute {name!r}") from None


def dashboard_command(host: str | None = None, port: int | None = None) -> list[str]:
    """The dashboard server's command; the server reads the settings for what is not given."""
    command = [sys.executable, "-m", DASHBOARD_SERVER]
    if host:
        command += ["--host", host]
    if port:
        command += ["--port", str(port)]
    return command


def run_dashboard(command: list[str]) -> int:
    """Run the dashboard's server (COMMAND) until it exits or we are stopped; its exit status."""
    from dashboard import timing

    timing.mark("cli: starting the dashboard server")
    return _run_forwarding_signals(command)


def _dashboard_without_typer(args: list[str]) -> list[str] | None:
    """The server's command for ARGS `dashboard [--host HOST] [--port PORT]` (also `--x=v`), as
    Typer would start it; None for any other ARGS (Typer parses those)."""
    if not args or args[0] != "dashboard":
        return None
    given: dict[str, str] = {}
    rest = args[1:]
    while rest:
        name, equals, value = rest[0].partition("=")
        if name not in _DASHBOARD_OPTIONS or name in given:
            return None
        if not equals:
            if len(rest) < 2 or rest[1].startswith("-"):
                return None
            value, rest = rest[1], rest[1:]
        given[name] = value
        rest = rest[1:]
    port = given.get("--port")
    if port is not None and not (port.isascii() and port.isdigit()):
        return None  # Typer says what is wrong with it
    return dashboard_command(given.get("--host"), int(port) if port is not None else None)


#: Seconds a child may take to stop after SIGTERM/SIGINT was passed on, before SIGKILL.
STOP_GRACE_SECONDS = 10.0


def _run_forwarding_signals(command: list[str], grace: float = STOP_GRACE_SECONDS) -> int:
    """Run COMMAND, passing SIGTERM and SIGINT on to it and waiting for it to exit (killed
    after GRACE seconds), so that stopping us never leaves it running; its exit status (0 when
    it stopped because of the signal we passed on; 128+N if killed by signal N)."""
    received: list[tuple[int, float]] = []  # (signal, when), in order of arrival
    started: list[subprocess.Popen[bytes]] = []

    def _forward(signum: int, _frame: object) -> None:
        received.append((signum, time.monotonic()))
        if started and started[0].poll() is None:
            started[0].send_signal(signum)

    # Handlers first: a signal arriving while the child starts is passed on right after.
    previous = {sig: signal.signal(sig, _forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        child = subprocess.Popen(command)
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    started.append(child)
    if received:
        child.send_signal(received[0][0])
    try:
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if received and time.monotonic() - received[0][1] > grace:
                child.kill()
                code = child.wait()
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:  # we are failing ourselves: do not leave it behind
            child.kill()
            child.wait()
    if received and code in (0, -received[0][0]):
        return 0
    return 128 - code if code < 0 else code


def _unusable_store(exc: Exception) -> str | None:
    """What is wrong with the store when EXC says it cannot be used at all, else None. A
    database error comes from SQLAlchemy, so when that is not loaded EXC is none."""
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    from store.db import unusable_store
    from store.settings import get_settings

    return unusable_store(exc, get_settings().database_url)


def main() -> None:
    """Entry point of `interlog` and `python -m ingest`. A store that cannot be used at all (not
    reachable, not migrated) gets one line saying what to do, not a traceback."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    dashboard = _dashboard_without_typer(sys.argv[1:])
    if dashboard is not None:
        raise SystemExit(run_dashboard(dashboard))
    from ingest.cli_app import app

    try:
        app()
    except Exception as exc:
        problem = _unusable_store(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(1) from None
