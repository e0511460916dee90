"""`interlog demo`: seed the store with a realistic dataset through a gateway of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import subprocess

    from ingest.demo import DemoResult


def print_result(result: DemoResult) -> None:
    """Say what the demo did, and how to sign in to the dashboard."""
    typer.echo(f"demo: {result.message}")
    if result.admin_key:
        typer.echo(f"dashboard admin key (shown once): {result.admin_key}")
        for project, key in result.project_keys.items():
            typer.echo(f"  {project} key: {key}")


def demo(
    interactions: Annotated[
        int, typer.Option(min=1, help="How many chat completions to send through the gateway.")
    ] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Conversations in flight at once.")] = 24,
) -> None:
    """Seed demo projects, models, keys, an A/B test, interactions, scores and preferences."""
    from ingest.demo import seed_demo
    from store.settings import get_settings

    result = seed_demo(
        get_settings().database_url, interactions=interactions, concurrency=concurrency
    )
    print_result(result)


def serve_demo(database_url: str, *, interactions: int = 2000) -> list[subprocess.Popen[bytes]]:
    """What `interlog up` does for the demo: on an empty store, seed it; then run a server for
    each of the store's demo models (ingest.demo_servers) and point the models at them, so chat
    requests to the demo projects are answered for as long as the service runs. Returns the
    servers' processes: the caller stops them."""
    from ingest.demo import seed_demo
    from ingest.demo_data import DEMO_MODELS
    from ingest.demo_servers import (
        demo_models_in_store,
        point_models_at,
        start_demo_models,
        stop_all,
    )
    from store.catalog import list_projects
    from store.db import create_store_engine

    engine = create_store_engine(database_url)
    try:
        empty = not list_projects(engine)
        keys = list(DEMO_MODELS) if empty else demo_models_in_store(engine)
        if not keys:
            return []
        servers = start_demo_models(keys)
        try:
            if empty:
                typer.echo("empty store: seeding the demo dataset (skip with --no-demo) ...")
                upstreams = {server.model_key: server.url for server in servers}
                print_result(
                    seed_demo(database_url, interactions=interactions, upstreams=upstreams)
                )
            point_models_at(engine, servers)
        except BaseException:
            stop_all(servers)
            raise
    finally:
        engine.dispose()
    return [server.process for server in servers]
