"""The `interlog` commands as a Typer app (ingest/cli.py runs it): database, gateway,
dashboard, and everything in one (`up`); the command modules ingest/cli_*.py add the rest.

Every command imports what it uses when it runs: `interlog --help` loads Typer and the command
modules (Typer only at their top), not SQLAlchemy, the settings, the migrations or the gateway.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ingest import (
    cli,
    cli_admin,
    cli_analytics,
    cli_demo,
    cli_export,
    cli_import,
    cli_manage,
    cli_metrics,
)

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


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the store to a revision (default: the newest)."""
    import migrations
    from store.settings import get_settings

    url = get_settings().database_url
    migrations.upgrade(url, revision)
    typer.echo(f"database at {revision}: {_safe_url(url)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' empties it).")],
) -> None:
    """Downgrade the store to a revision; `base` drops every table."""
    import migrations
    from store.settings import get_settings

    url = get_settings().database_url
    migrations.downgrade(url, revision)
    typer.echo(f"database at {revision}: {_safe_url(url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the store's current revision."""
    import migrations
    from store.settings import get_settings

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

    import migrations
    from ingest.http_protocol import CoalescingHttpToolsProtocol
    from ingest.telemetry import share_metrics_between_workers
    from store.settings import get_settings

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
    import tempfile

    if path.exists() and not path.is_dir():
        return "is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".interlog-check-"):
            pass
    except OSError as exc:
        return f"cannot hold the journal: {exc.strerror or exc}"
    return None


@app.command()
def dashboard(
    host: Annotated[
        str | None, typer.Option(help="Listen address [INTERLOG_DASHBOARD_HOST].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [INTERLOG_DASHBOARD_PORT].")] = None,
) -> None:
    """Run the Streamlit dashboard."""
    raise typer.Exit(cli.run_dashboard(cli.dashboard_command(host, port)))


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
    import migrations
    from store.settings import get_settings

    settings = get_settings()
    migrations.upgrade(settings.database_url)
    children = (
        cli_demo.serve_demo(settings.database_url, interactions=demo_interactions) if demo else []
    )
    try:
        children.append(subprocess.Popen([sys.executable, "-m", "ingest", "serve", "--no-migrate"]))
        children.append(
            subprocess.Popen(
                cli.dashboard_command(settings.dashboard_host, settings.dashboard_port)
            )
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
