"""Admin commands: projects, models, API keys, and the demo model server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from store.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine

projects_app = typer.Typer(help="Create projects (tenants).", no_args_is_help=True)
models_app = typer.Typer(help="Register models and attach them to projects.", no_args_is_help=True)
keys_app = typer.Typer(help="Create API keys.", no_args_is_help=True)


def _engine() -> Engine:
    from store.db import create_store_engine
    from store.settings import get_settings

    return create_store_engine(get_settings().database_url)


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@projects_app.command("create")
def projects_create(
    key: Annotated[str, typer.Argument(help="Project key; clients send it as `model`.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
) -> None:
    """Create a project."""
    from store.catalog import create_project

    engine = _engine()
    try:
        project = create_project(engine, key=key, name=name)
    except StoreError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    typer.echo(f"project {project.key} created")


@models_app.command("add")
def models_add(
    key: Annotated[str, typer.Argument(help="Model key; clients send `project/KEY`.")],
    upstream: Annotated[
        list[str],
        typer.Option(help="OpenAI-compatible base URL, e.g. http://host:8001/v1 (repeatable)."),
    ],
    upstream_model: Annotated[
        str | None, typer.Option(help="Model name the upstream expects (default: the key).")
    ] = None,
    multimodal: Annotated[bool, typer.Option(help="The model accepts images.")] = False,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Name of the environment variable holding the upstream's API key."),
    ] = None,
    connect_timeout: Annotated[
        float | None, typer.Option(help="Seconds to connect [INTERLOG_UPSTREAM_CONNECT_TIMEOUT].")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds for a whole answer [INTERLOG_UPSTREAM_TIMEOUT].")
    ] = None,
) -> None:
    """Register a model served by one or more upstream replicas."""
    from store.catalog import create_model

    engine = _engine()
    try:
        model = create_model(
            engine,
            key=key,
            upstream_urls=upstream,
            upstream_model=upstream_model,
            api_key_env=api_key_env,
            multimodal=multimodal,
            connect_timeout=connect_timeout,
            timeout=timeout,
        )
    except StoreError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    typer.echo(f"model {model.key} added ({len(model.upstream_urls)} upstream replica(s))")


@models_app.command("attach")
def models_attach(
    project: Annotated[str, typer.Argument(help="Project key.")],
    model: Annotated[str, typer.Argument(help="Model key.")],
    default: Annotated[bool, typer.Option(help="Also make it the project's default.")] = False,
) -> None:
    """Let a project route to a model (optionally as its default)."""
    from store.catalog import attach_model

    engine = _engine()
    try:
        attach_model(engine, project_key=project, model_key=model, default=default)
    except StoreError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    typer.echo(f"model {model} attached to project {project}" + (" as default" if default else ""))


@keys_app.command("create")
def keys_create(
    project: Annotated[str | None, typer.Option(help="Scope the key to this project.")] = None,
    admin: Annotated[bool, typer.Option(help="Create an admin key (all projects).")] = False,
    name: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
) -> None:
    """Create an API key; the key is printed once, last, alone on its line."""
    if admin == (project is not None):
        typer.echo("error: give exactly one of --project KEY or --admin", err=True)
        raise typer.Exit(2)
    from store.keys import create_api_key

    engine = _engine()
    try:
        created = create_api_key(engine, project_key=project, admin=admin, name=name)
    except (StoreError, LookupError) as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    scope = "admin" if admin else f"project {project}"
    typer.echo(f"key {created.prefix} created for {scope}; it is shown only once:")
    typer.echo(created.secret)


def demo_model(
    port: Annotated[int, typer.Option(help="Listen port.")] = 8001,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    name: Annotated[str, typer.Option(help="Name it reports (`[whoami]`).")] = "demo",
) -> None:
    """Run the deterministic demo model (OpenAI-compatible, not a language model)."""
    from ingest.demo_model import run_demo_model

    run_demo_model(host=host, port=port, name=name)
