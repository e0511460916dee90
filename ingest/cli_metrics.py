"""`interlog metrics`: register a project's metrics and list them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from store.errors import StoreError


class Kind(StrEnum):
    """store.models.MetricKind's values, without importing the models (and SQLModel) for every
    command line (tests/ingest/test_cli_metrics.py checks that they agree)."""

    SCALAR = "scalar"
    BOOL = "bool"


metrics_app = typer.Typer(help="Register feedback metrics and list them.", no_args_is_help=True)


@metrics_app.command("create")
def metrics_create(
    project: Annotated[str, typer.Argument(help="Project key.")],
    key: Annotated[str, typer.Argument(help="Metric key clients log values against.")],
    kind: Annotated[
        Kind, typer.Option(help="scalar (any number) or bool (true/false/0/1).")
    ] = Kind.SCALAR,
    lower_is_better: Annotated[
        bool, typer.Option("--lower-is-better", help="Lower values are better (e.g. latency).")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
    description: Annotated[str | None, typer.Option(help="What the metric means.")] = None,
) -> None:
    """Register a metric in a project; values can be logged against it from then on."""
    from store.db import create_store_engine
    from store.metrics import create_metric
    from store.models import ScoringType
    from store.settings import get_settings

    scoring = ScoringType.LOWER_IS_BETTER if lower_is_better else ScoringType.HIGHER_IS_BETTER
    engine = create_store_engine(get_settings().database_url)
    try:
        metric = create_metric(
            engine,
            project_key=project,
            key=key,
            kind=kind.value,
            scoring=scoring.value,
            name=name,
            description=description,
        )
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo(f"metric {metric.key} ({metric.kind}, {metric.scoring}) created in {project}")


@metrics_app.command("list")
def metrics_list(
    project: Annotated[
        str | None, typer.Argument(help="Project key (default: every project).")
    ] = None,
) -> None:
    """List metrics: key, kind, scoring and description, one per line."""
    from store.catalog import list_projects
    from store.db import create_store_engine
    from store.metrics import find_project, list_metrics
    from store.settings import get_settings

    engine = create_store_engine(get_settings().database_url)
    try:
        project_id = find_project(engine, id_or_key=project).id if project else None
        metrics = list_metrics(engine, project_id=project_id)
        keys = {p.id: p.key for p in list_projects(engine)}
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for metric in metrics:
        line = f"{keys.get(metric.project_id)}\t{metric.key}\t{metric.kind}\t{metric.scoring}"
        typer.echo(line + (f"\t{metric.description}" if metric.description else ""))
    if not metrics:
        typer.echo("no metrics" + (f" in {project}" if project else ""), err=True)
