"""Every management command of the CLI, on a real migrated SQLite store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from ingest.cli import app
from store.ab_lifecycle import get_ab_test
from store.catalog import get_project
from store.catalog_admin import describe_project
from store.db import create_store_engine
from store.feedback import METRIC_VALUE_TABLE
from store.ids import uuid7
from store.key_admin import list_api_keys
from store.keys import authenticate_key, create_api_key
from store.metrics import get_metric
from store.settings import get_settings
from store.types import utcnow
from tests.interaction_seeds import log_interaction, seed_project

runner = CliRunner()


@pytest.fixture
def store(_sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[dict[str, str], Engine]]:
    get_settings.cache_clear()  # each test's store is named by its own environment
    shutil.copyfile(_sqlite_template, tmp_path / "cli.db")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_store_engine(url)
    seed_project(engine, "shop", models=("m1", "m2"))
    yield {"INTERLOG_DATABASE_URL": url}, engine
    engine.dispose()
    get_settings.cache_clear()


def _run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_projects_list_get_update_and_delete(store: tuple[dict[str, str], Engine]) -> None:
    env, engine = store
    assert "shop\tdefault=-\tmodels=m1,m2" in _run(env, "projects", "list")
    _run(env, "projects", "update", "shop", "--name", "The shop", "--default-model", "m2")
    shown = _run(env, "projects", "get", "shop")
    assert "The shop" in shown and "default model m2" in shown
    _run(env, "projects", "update", "shop", "--no-default")
    assert describe_project(engine, key="shop").default_model is None
    _run(env, "projects", "update", "shop", "--default-model", "m1", "--no-default", code=2)
    log_interaction(engine, get_project(engine, key="shop"))
    refused = runner.invoke(app, ["projects", "delete", "shop"], env=env)
    assert refused.exit_code == 1 and "1 interactions" in refused.output
    _run(env, "projects", "create", "empty")
    assert "project empty deleted" in _run(env, "projects", "delete", "empty")
    assert "not found" in _run(env, "projects", "get", "empty", code=1)


def test_models_list_get_update_and_detach(store: tuple[dict[str, str], Engine]) -> None:
    env, _engine = store
    assert "m1\tm1\thttp://127.0.0.1:9" in _run(env, "models", "list")
    _run(
        env, "models", "update", "m1", "--upstream", "http://a:1/v1", "--upstream", "http://b:2/v1",
        "--multimodal", "--timeout", "7", "--api-key-env", "INTERLOG_UPSTREAM_M1_KEY",
    )  # fmt: skip
    shown = _run(env, "models", "get", "m1")
    assert "http://a:1/v1 http://b:2/v1" in shown and "multimodal      yes" in shown
    assert (
        "INTERLOG_UPSTREAM_M1_KEY" in shown
        and "timeout         7.0" in shown
        and "projects        shop" in shown
    )
    _run(env, "models", "update", "m1", "--upstream", "ftp://nope", code=1)
    assert "detached" in _run(env, "models", "detach", "shop", "m1")
    assert "projects        -" in _run(env, "models", "get", "m1")
    _run(env, "models", "detach", "shop", "m1", code=1)


def test_keys_list_and_revoke_by_prefix(store: tuple[dict[str, str], Engine]) -> None:
    env, engine = store
    created = create_api_key(engine, project_key="shop", name="ci")
    listed = _run(env, "keys", "list", "--project", "shop")
    assert f"{created.id}\t{created.prefix}\tproject:shop\tci" in listed
    assert created.secret not in listed
    assert "revoked at" in _run(env, "keys", "revoke", created.prefix)
    assert authenticate_key(engine, created.secret) is None
    assert list_api_keys(engine)[0].revoked
    _run(env, "keys", "revoke", "il_unknown", code=1)


def test_abtests_create_list_get_and_cancel(store: tuple[dict[str, str], Engine]) -> None:
    env, _engine = store
    created = _run(
        env, "abtests", "create", "shop", "spring", "--variant", "m1:3", "--variant", "m2",
        "--metric", "quality", "--auto-deploy",
    )  # fmt: skip
    assert "m1 (3), m2 (1) (control: m1)" in created and "auto-deploy yes" in created
    assert "shop\tspring\tactive\tm1,m2" in _run(env, "abtests", "list", "--status", "active")
    shown = _run(env, "abtests", "get", "shop", "spring")
    assert "scores      m1 0, m2 0 (not enough yet)" in shown
    _run(env, "abtests", "create", "shop", "x", "--variant", "m1", "--variant", "m9", code=1)
    assert "cancelled" in _run(env, "abtests", "cancel", "shop", "spring")
    assert "status      cancelled" in _run(env, "abtests", "get", "shop", "spring")
    _run(env, "abtests", "cancel", "shop", "spring", code=1)
    assert _run(env, "abtests", "list", "--status", "active") == ""


def test_abtests_get_says_when_a_stored_value_out_of_range_blocks_the_test(
    store: tuple[dict[str, str], Engine],
) -> None:
    env, engine = store
    _run(
        env, "abtests", "create", "shop", "spring", "--variant", "m1", "--variant", "m2",
        "--metric", "quality",
    )  # fmt: skip
    project = get_project(engine, key="shop")
    test = get_ab_test(engine, key="spring", project_key="shop")
    completion_id = log_interaction(engine, project, ab_test_id=test.id, ab_variant="m2")
    assert project.id is not None
    metric = get_metric(engine, project_id=project.id, id_or_key="quality")
    with engine.begin() as connection:  # as stored before values were range-checked
        connection.execute(
            insert(METRIC_VALUE_TABLE).values(
                id=uuid7(), completion_id=completion_id, metric_id=metric.id, value=1e308,
                created_at=utcnow(),
            )
        )  # fmt: skip
    shown = _run(env, "abtests", "get", "shop", "spring")
    assert "scores      m1 0, m2 1 (not enough yet)" in shown
    assert "note        1 scored completion(s) have a metric value out of range" in shown
