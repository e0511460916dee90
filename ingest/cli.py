"""The `interlog` command line: database, gateway, dashboard, and everything in one (`up`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

import migrations
from ingest import (
    cli_admin,
    cli_analytics,
    cli_demo,
    cli_export,
    cli_import,
    cli_manage,
    cli_metrics,
)
from store.db import unusable_store
from store.settings import get_settings

app = typer.Typer(
    help="Interlog: an LLM gateway that logs every interaction, and its analytics.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Migrate the store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(cli_admin.projects_app, name="projects")
app.add_typer(cli_admin.models_app, name="models")
app.add_typer(cli_admin.keys_app, name="keys")
app.add_typer(cli_metrics.metrics_app, name="metrics")
app.add_typer(cli_manage.abtests_app, name="abtests")  # cli_manage also extends the groups above
app.add_typer(cli_analytics.analytics_app, name="analytics")
app.command("demo-model")(cli_admin.demo_model)
app.command("demo")(cli_demo.demo)
app.command("import")(cli_import.import_interactions)
app.command("export")(cli_export.export)

DASHBOARD_SCRIPT = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the store to a revision (default: the newest)."""
    url = get_settings().database_url
    migrations.upgrade(url, revision)
    typer.echo(f"database at {revision}: {_safe_url(url)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' empties it).")],
) -> None:
    """Downgrade the store to a revision; `base` drops every table."""
    url = get_settings().database_url
    migrations.downgrade(url, revision)
    typer.echo(f"database at {revision}: {_safe_url(url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the store's current revision."""
    migrations.current(get_settings().database_url)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [INTERLOG_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [INTERLOG_PORT].")] = None,
    workers: Annotated[int, typer.Option(help="Gateway processes sharing the port.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Upgrade the schema before serving.")] = True,
) -> None:
    """Run the gateway (REST, GraphQL and chat completions)."""
    import uvicorn

    from ingest.http_protocol import CoalescingHttpToolsProtocol
    from ingest.telemetry import share_metrics_between_workers

    settings = get_settings()
    problem = _journal_dir_problem(Path(settings.journal_dir))
    if problem is not None:
        typer.echo(f"error: INTERLOG_JOURNAL_DIR={settings.journal_dir} {problem}", err=True)
        raise typer.Exit(1)
    if migrate:
        migrations.upgrade(settings.database_url)
    share_metrics_between_workers()  # /metrics: the totals of all the workers (ingest/telemetry.py)
    uvicorn.run(
        "ingest.app:create_app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,  # client addresses are not logged; skip X-Forwarded-For parsing
        http=CoalescingHttpToolsProtocol,  # head and body of a sized response in one write
    )


def _journal_dir_problem(path: Path) -> str | None:
    """Why the gateway could not keep its journal under PATH (checked before it starts, so the
    user reads one line, not the traceback of a failed startup); None when it can."""
    if path.exists() and not path.is_dir():
        return "is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".interlog-check-"):
            pass
    except OSError as exc:
        return f"cannot hold the journal: {exc.strerror or exc}"
    return None


def _dashboard_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(DASHBOARD_SCRIPT),
        "--server.address", host, "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


@app.command()
def dashboard(
    host: Annotated[
        str | None, typer.Option(help="Listen address [INTERLOG_DASHBOARD_HOST].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [INTERLOG_DASHBOARD_PORT].")] = None,
) -> None:
    """Run the Streamlit dashboard."""
    settings = get_settings()
    command = _dashboard_command(host or settings.dashboard_host, port or settings.dashboard_port)
    raise typer.Exit(_run_forwarding_signals(command))


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


@app.command()
def up(
    demo: Annotated[
        bool,
        typer.Option(help="Seed the demo dataset into an empty store, and serve its demo models."),
    ] = True,
    demo_interactions: Annotated[
        int, typer.Option(min=1, help="Chat completions the demo seeds an empty store with.")
    ] = 2000,
) -> None:
    """Migrate, then run the gateway and the dashboard together (and the demo models' servers
    while the store has them); Ctrl-C stops them all."""
    settings = get_settings()
    migrations.upgrade(settings.database_url)
    children = (
        cli_demo.serve_demo(settings.database_url, interactions=demo_interactions) if demo else []
    )
    try:
        children.append(subprocess.Popen([sys.executable, "-m", "ingest", "serve", "--no-migrate"]))
        children.append(
            subprocess.Popen(_dashboard_command(settings.dashboard_host, settings.dashboard_port))
        )
    except BaseException:
        for child in children:
            child.terminate()
        raise
    typer.echo(
        f"gateway   http://{settings.host}:{settings.port}\n"
        f"dashboard http://{settings.dashboard_host}:{settings.dashboard_port}\n"
        "Ctrl-C stops them all."
    )
    _supervise(children)


def _supervise(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait until a child exits or we are interrupted, then stop every child."""
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    codes = [child.returncode for child in children]
    if not stopping and any(codes):
        raise typer.Exit(1)


def _safe_url(url: str) -> str:
    from store.db import normalize_url

    return normalize_url(url).render_as_string(hide_password=True)


def main() -> None:
    """Entry point of `interlog` and `python -m ingest`. A store that cannot be used at all (not
    reachable, not migrated) gets one line saying what to do, not a traceback."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        app()
    except DBAPIError as exc:
        problem = unusable_store(exc, get_settings().database_url)
        if problem is None:
            raise
        typer.echo(f"error: {problem}", err=True)
        raise SystemExit(1) from None
