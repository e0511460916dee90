"""Management commands: list/get/update/delete projects, list/get/update/detach models, list and
revoke keys, and the `interlog abtests` group. They extend the groups of ingest/cli_admin.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ingest.cli_admin import keys_app, models_app, projects_app
from store.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from store import catalog_admin
    from store.ab_lifecycle import AbTestDetails

abtests_app = typer.Typer(
    help="A/B tests: share a project's traffic between models.", no_args_is_help=True
)


@contextmanager
def _store() -> Iterator[Engine]:
    """The store's engine; a store error ends the command with its message and exit code 1."""
    from store.db import create_store_engine
    from store.settings import get_settings

    engine = create_store_engine(get_settings().database_url)
    try:
        yield engine
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _echo_project(details: catalog_admin.ProjectDetails) -> None:
    typer.echo(f"project       {details.key}")
    typer.echo(f"name          {details.name}")
    typer.echo(f"description   {details.description or '-'}")
    typer.echo(f"default model {details.default_model or '-'}")
    typer.echo(f"models        {', '.join(details.models) or '-'}")
    typer.echo(f"created       {_when(details.created_at)}")


@projects_app.command("list")
def projects_list() -> None:
    """List projects with their default model and models."""
    from store import catalog_admin

    with _store() as engine:
        projects = catalog_admin.describe_projects(engine)
    for p in projects:
        typer.echo(f"{p.key}\tdefault={p.default_model or '-'}\tmodels={','.join(p.models) or '-'}")


@projects_app.command("get")
def projects_get(key: Annotated[str, typer.Argument(help="Project key.")]) -> None:
    """Show one project."""
    from store import catalog_admin

    with _store() as engine:
        _echo_project(catalog_admin.describe_project(engine, key=key))


@projects_app.command("update")
def projects_update(
    key: Annotated[str, typer.Argument(help="Project key.")],
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    default_model: Annotated[
        str | None, typer.Option(help="Make this model the default (attaching it).")
    ] = None,
    no_default: Annotated[bool, typer.Option(help="Clear the default model.")] = False,
) -> None:
    """Rename a project, change its description or its default model."""
    from store import catalog_admin

    changes: dict[str, Any] = {"name": name}
    if description is not None:
        changes["description"] = description
    if default_model is not None and no_default:
        typer.echo("error: give --default-model or --no-default, not both", err=True)
        raise typer.Exit(2)
    if default_model is not None or no_default:
        changes["default_model"] = default_model
    with _store() as engine:
        _echo_project(catalog_admin.update_project(engine, key=key, **changes))


@projects_app.command("delete")
def projects_delete(key: Annotated[str, typer.Argument(help="Project key.")]) -> None:
    """Delete an empty project (refused, saying what it holds, otherwise)."""
    from store import catalog_admin

    with _store() as engine:
        catalog_admin.delete_project(engine, key=key)
    typer.echo(f"project {key} deleted")


@models_app.command("list")
def models_list() -> None:
    """List models with their upstream replicas."""
    from store import catalog

    with _store() as engine:
        models = catalog.list_models(engine)
    for m in models:
        flags = " multimodal" if m.multimodal else ""
        typer.echo(f"{m.key}\t{m.upstream_model or m.key}\t{' '.join(m.upstream_urls)}{flags}")


@models_app.command("get")
def models_get(key: Annotated[str, typer.Argument(help="Model key.")]) -> None:
    """Show one model and the projects using it."""
    from store import catalog, catalog_admin

    with _store() as engine:
        m = catalog.get_model(engine, key=key)
        projects = catalog_admin.model_projects(engine, key=key)
    typer.echo(f"model           {m.key}")
    typer.echo(f"upstreams       {' '.join(m.upstream_urls)}")
    typer.echo(f"upstream model  {m.upstream_model or m.key}")
    typer.echo(f"api key env     {m.api_key_env or '-'}")
    typer.echo(f"multimodal      {'yes' if m.multimodal else 'no'}")
    typer.echo(f"connect timeout {m.connect_timeout or 'default'}")
    typer.echo(f"timeout         {m.timeout or 'default'}")
    typer.echo(f"projects        {', '.join(projects) or '-'}")


@models_app.command("update")
def models_update(
    key: Annotated[str, typer.Argument(help="Model key.")],
    upstream: Annotated[
        list[str] | None, typer.Option(help="Replace the upstream replicas (repeatable).")
    ] = None,
    upstream_model: Annotated[str | None, typer.Option(help="Name the upstream expects.")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable NAME holding the upstream's key.")
    ] = None,
    multimodal: Annotated[
        bool | None, typer.Option("--multimodal/--text-only", help="Whether it accepts images.")
    ] = None,
    connect_timeout: Annotated[float | None, typer.Option(help="Seconds to connect.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds for a whole answer.")] = None,
) -> None:
    """Change a model's upstreams or options (only those given)."""
    from store import catalog_admin

    changes: dict[str, Any] = {"upstream_urls": upstream or None, "multimodal": multimodal}
    optional = {
        "upstream_model": upstream_model,
        "api_key_env": api_key_env,
        "connect_timeout": connect_timeout,
        "timeout": timeout,
    }
    changes.update({name: value for name, value in optional.items() if value is not None})
    with _store() as engine:
        model = catalog_admin.update_model(engine, key=key, **changes)
    typer.echo(f"model {model.key} updated ({len(model.upstream_urls)} upstream replica(s))")


@models_app.command("detach")
def models_detach(
    project: Annotated[str, typer.Argument(help="Project key.")],
    model: Annotated[str, typer.Argument(help="Model key.")],
) -> None:
    """Stop a project routing to a model."""
    from store import catalog

    with _store() as engine:
        catalog.detach_model(engine, project_key=project, model_key=model)
    typer.echo(f"model {model} detached from project {project}")


@keys_app.command("list")
def keys_list(
    project: Annotated[str | None, typer.Option(help="Only this project's keys.")] = None,
) -> None:
    """List keys: id, prefix, scope, name, created, last used, revoked (never the secret)."""
    from store import key_admin

    with _store() as engine:
        keys = key_admin.list_api_keys(engine, project_key=project)
    typer.echo("id\tprefix\tscope\tname\tcreated\tlast used\trevoked")
    for k in keys:
        scope = "admin" if k.scope == "admin" else f"project:{k.project}"
        typer.echo(
            f"{k.id}\t{k.prefix}\t{scope}\t{k.name or '-'}\t{_when(k.created_at)}\t"
            f"{_when(k.last_used_at)}\t{_when(k.revoked_at)}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id or prefix (as `keys list` shows).")],
) -> None:
    """Revoke a key; gateways refuse it within 5 seconds."""
    from store import key_admin

    with _store() as engine:
        info = key_admin.revoke_api_key(
            engine, key_id=key_admin.find_key_id(engine, id_or_prefix=key)
        )
    typer.echo(f"key {info.prefix} revoked at {_when(info.revoked_at)}")


def _parse_variant(text: str) -> dict[str, Any]:
    model, _, weight = text.partition(":")
    try:
        return {"model": model, "weight": float(weight) if weight else 1.0}
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected MODEL or MODEL:WEIGHT") from None


def _echo_test(test: AbTestDetails) -> None:
    variants = ", ".join(f"{v['model']} ({v.get('weight', 1.0):g})" for v in test.variants)
    typer.echo(f"A/B test    {test.key} (project {test.project})")
    typer.echo(f"status      {test.status}" + (f", winner {test.winner}" if test.winner else ""))
    typer.echo(f"mode        {test.mode}, metric {test.metric or '-'}")
    typer.echo(f"variants    {variants} (control: {test.control})")
    typer.echo(f"auto-deploy {'yes' if test.auto_deploy else 'no'}")
    if test.end_reason:
        typer.echo(f"ended       {_when(test.ended_at)}: {test.end_reason}")


@abtests_app.command("create")
def abtests_create(
    project: Annotated[str, typer.Argument(help="Project key.")],
    key: Annotated[str, typer.Argument(help="A/B test key.")],
    variant: Annotated[
        list[str], typer.Option(help="MODEL or MODEL:WEIGHT (repeat; the first is the control).")
    ],
    metric: Annotated[str | None, typer.Option(help="Metric the test is judged on.")] = None,
    mode: Annotated[str, typer.Option(help="metric (mean score) or preference.")] = "metric",
    auto_deploy: Annotated[bool, typer.Option(help="Deploy the winner as default.")] = False,
) -> None:
    """Start an A/B test between models attached to a project."""
    from store.ab_lifecycle import get_ab_test
    from store.abtests import create_ab_test

    variants = [_parse_variant(text) for text in variant]
    with _store() as engine:
        create_ab_test(
            engine, project_key=project, key=key, variants=variants, metric_key=metric,
            mode=mode, auto_deploy=auto_deploy,
        )  # fmt: skip
        _echo_test(get_ab_test(engine, key=key, project_key=project))


@abtests_app.command("list")
def abtests_list(
    project: Annotated[str | None, typer.Option(help="Only this project's tests.")] = None,
    status: Annotated[str | None, typer.Option(help="active, done or cancelled.")] = None,
) -> None:
    """List A/B tests, newest first."""
    from store.ab_lifecycle import list_ab_test_details

    with _store() as engine:
        tests = list_ab_test_details(engine, project_key=project, status=status)
    for t in tests:
        models = ",".join(str(v["model"]) for v in t.variants)
        typer.echo(f"{t.project}\t{t.key}\t{t.status}\t{models}\twinner={t.winner or '-'}")


@abtests_app.command("get")
def abtests_get(
    project: Annotated[str, typer.Argument(help="Project key.")],
    key: Annotated[str, typer.Argument(help="A/B test key.")],
) -> None:
    """Show an A/B test and where it stands under the sequential test (mSPRT)."""
    from store.ab_lifecycle import get_ab_test
    from store.ab_sequential import sequential_verdict

    with _store() as engine:
        test = get_ab_test(engine, key=key, project_key=project)
        verdict = sequential_verdict(engine, test=test)
    _echo_test(test)
    scores = ", ".join(f"{name} {n}" for name, n in verdict.scores.items()) or "-"
    typer.echo(f"scores      {scores}" + ("" if verdict.enough_scores else " (not enough yet)"))
    if verdict.out_of_range:
        typer.echo(
            f"note        {verdict.out_of_range} scored completion(s) have a metric value out of "
            "range (stored before values were checked): the test cannot end by itself"
        )
    for c in verdict.comparisons:
        typer.echo(
            f"  {c.variant} vs {test.control}: difference {c.difference:+.4g}, "
            f"always-valid p {c.p_value:.3g}" + (" (significant)" if c.significant else "")
        )


@abtests_app.command("cancel")
def abtests_cancel(
    project: Annotated[str, typer.Argument(help="Project key.")],
    key: Annotated[str, typer.Argument(help="A/B test key.")],
) -> None:
    """Cancel an active A/B test: traffic goes back to the default model."""
    from store.ab_lifecycle import cancel_ab_test

    with _store() as engine:
        test = cancel_ab_test(engine, key=key, project_key=project)
    typer.echo(f"A/B test {test.key} cancelled")
