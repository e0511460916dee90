"""`interlog demo`: seed the store with a realistic dataset through a gateway of its own."""

from __future__ import annotations

from typing import Annotated

import typer

from ingest.demo import DemoResult, seed_demo
from store.settings import get_settings


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
    result = seed_demo(
        get_settings().database_url, interactions=interactions, concurrency=concurrency
    )
    print_result(result)


def seed_if_empty(database_url: str) -> None:
    """Seed the demo when the store has no project yet (what `interlog up` does by default)."""
    from store.catalog import list_projects
    from store.db import create_store_engine

    engine = create_store_engine(database_url)
    try:
        empty = not list_projects(engine)
    finally:
        engine.dispose()
    if empty:
        typer.echo("empty store: seeding the demo dataset (skip with --no-demo) ...")
        print_result(seed_demo(database_url))
