"""`interlog export`: every matching interaction from the store to a CSV, Parquet or JSONL file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from store.errors import StoreError


def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="csv, parquet or jsonl (fine-tuning chat format).")
    ] = "parquet",
    label: Annotated[
        list[str] | None,
        typer.Option(help="k=v, k!=v, k=a|b or k (exists); repeat for AND."),
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="Metric condition, e.g. quality>=0.8; repeatable.")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Project key.")] = None,
    model: Annotated[str | None, typer.Option(help="Model key.")] = None,
    ab_test: Annotated[str | None, typer.Option(help="A/B test key.")] = None,
    variant: Annotated[str | None, typer.Option(help="A/B test variant.")] = None,
    since: Annotated[str | None, typer.Option(help="7d, 24h, 30m or an ISO datetime.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO datetime (exclusive).")] = None,
    session: Annotated[str | None, typer.Option(help="Session id.")] = None,
    user: Annotated[str | None, typer.Option(help="User id.")] = None,
    status: Annotated[str | None, typer.Option(help="ok, error or cancelled.")] = None,
    search: Annotated[str | None, typer.Option(help="Text in the prompt or completion.")] = None,
) -> None:
    """Export every interaction matching the filters from the store [INTERLOG_DATABASE_URL]."""
    from tqdm import tqdm

    from store.analytics import check_filters, count_interactions
    from store.analytics.lake import drop_lake
    from store.db import create_store_engine
    from store.exports import check_format, export_interactions
    from store.filters import Filters
    from store.keys import Principal
    from store.settings import get_settings

    try:
        kind = check_format(format)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    engine = create_store_engine(get_settings().database_url)
    scope = Principal(is_admin=True)
    try:
        filters = Filters(
            labels=list(label or []), metrics=list(where or []), project=project, model=model,
            ab_test=ab_test, variant=variant, since=since, until=until, session=session,
            user=user, status=status, search=search,
        )  # fmt: skip
        for warning in check_filters(engine, filters, scope):  # names, in every project
            typer.echo(f"warning: {warning}", err=True)
        total = count_interactions(engine, filters, scope=scope)
        with tqdm(total=total, unit="rows", desc=f"export {kind}") as bar:

            def advance(n: int) -> None:
                bar.update(n)

            rows = export_interactions(
                engine, output, filters, scope=scope, format=kind, on_rows=advance
            )
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        drop_lake(engine)
        engine.dispose()
    typer.echo(f"{rows} interactions -> {output}")
