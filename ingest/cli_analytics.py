"""`interlog analytics`: build, follow and inspect the shared analytics store."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer

analytics_app = typer.Typer(
    help="The analytics store (DuckLake) that dashboards, notebooks and REST analytics read.",
    no_args_is_help=True,
)


@analytics_app.command("sync")
def sync(
    follow: Annotated[
        bool, typer.Option(help="Keep syncing (owning the sync whenever nobody else does).")
    ] = False,
) -> None:
    """Bring the analytics store up to date with the store (the first run builds it)."""
    from store.analytics.lake import SYNC_MEMORY_LIMIT, Lake
    from store.analytics.owner import follow as follow_store
    from store.analytics.sync import sync_now
    from store.db import create_store_engine
    from store.settings import get_settings

    settings = get_settings()
    if follow:
        stop = threading.Event()
        typer.echo("following the store; Ctrl-C stops", err=True)
        try:
            follow_store(settings, stop)
        except KeyboardInterrupt:
            stop.set()
        return
    engine = create_store_engine(settings.database_url)
    lake = Lake(engine, settings, memory_limit=SYNC_MEMORY_LIMIT)
    counts: dict[str, int] = {}
    started = time.perf_counter()

    def progress(table: str, rows: int) -> None:
        counts[table] = counts.get(table, 0) + rows
        typer.echo(f"\r{table}: {counts[table]:,} rows", nl=False, err=True)

    try:
        applied = sync_now(lake, on_rows=progress, isolated=True)
    finally:
        lake.close()
        engine.dispose()
    if applied is None:
        typer.echo("another process owns the analytics sync (a running gateway): nothing to do")
        return
    seconds = time.perf_counter() - started
    typer.echo(f"\nanalytics store up to date: {applied:,} changes applied in {seconds:.1f} s")


@analytics_app.command("status")
def status() -> None:
    """Where the analytics store is, what it holds and how fresh it is."""
    from store.analytics.lake import LAKE, lake_for
    from store.analytics.sync import read_state
    from store.db import create_store_engine
    from store.settings import get_settings

    settings = get_settings()
    engine = create_store_engine(settings.database_url)
    lake = lake_for(engine, settings)
    try:
        typer.echo(f"catalog: {lake.location.catalog.split(' password=')[0]}")
        typer.echo(f"data: {lake.location.data_path}")
        con = lake.open()
        if con is None:
            typer.echo("not built yet: `interlog analytics sync` builds it")
            return
        cursor = con.cursor()
        state, _ = read_state(cursor)
        for table in ("interactions", "metric_values", "comparisons"):
            (count,) = cursor.execute(f"SELECT count(*) FROM {LAKE}.{table}").fetchone() or (0,)
            typer.echo(f"{table}: {count:,} rows")
        files = cursor.execute(
            f"SELECT count(*) FROM ducklake_list_files('{LAKE}', 'interactions')"
        ).fetchone()
        typer.echo(f"interaction files: {files[0] if files else 0}")
        typer.echo(f"synced at: {state.synced_at.isoformat() if state.synced_at else 'never'}")
        typer.echo(f"initial build complete: {'yes' if state.complete else 'no'}")
    finally:
        lake.close()
        engine.dispose()
