"""`interlog metrics create` and `interlog metrics list` on a real store, through the CLI app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from ingest.cli import app
from store.catalog import create_project
from store.metrics import find_project, get_metric
from store.settings import get_settings

runner = CliRunner()


@pytest.fixture
def store_env(database_url: str, engine: Engine) -> Iterator[dict[str, str]]:
    get_settings.cache_clear()
    create_project(engine, key="shop")
    yield {"INTERLOG_DATABASE_URL": database_url}
    get_settings.cache_clear()


def test_metrics_create_and_list(store_env: dict[str, str], engine: Engine) -> None:
    args = ["metrics", "create", "shop", "latency", "--kind", "scalar", "--lower-is-better"]
    result = runner.invoke(app, [*args, "--description", "seconds"], env=store_env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["metrics", "create", "shop", "thumbs", "--kind", "bool"], env=store_env
    )
    assert result.exit_code == 0, result.output
    shop = find_project(engine, id_or_key="shop")
    assert shop.id is not None
    metric = get_metric(engine, project_id=shop.id, id_or_key="latency")
    assert (metric.kind, metric.scoring, metric.description) == (
        "scalar", "lower_is_better", "seconds",
    )  # fmt: skip
    listed = runner.invoke(app, ["metrics", "list", "shop"], env=store_env)
    assert listed.exit_code == 0
    lines = listed.stdout.strip().splitlines()
    assert lines == [
        "shop\tlatency\tscalar\tlower_is_better\tseconds",
        "shop\tthumbs\tbool\thigher_is_better",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "create", "shop", "x", "--kind", "float"], "Invalid value"),
        (["metrics", "create", "nope", "x"], "project nope not found"),
        (["metrics", "list", "nope"], "project nope not found"),
    ],
)
def test_metrics_commands_refuse_bad_input(
    store_env: dict[str, str], args: list[str], message: str
) -> None:
    result = runner.invoke(app, args, env=store_env)
    assert result.exit_code != 0
    assert message in result.output


def test_duplicate_metric_is_refused(store_env: dict[str, str]) -> None:
    assert runner.invoke(app, ["metrics", "create", "shop", "q"], env=store_env).exit_code == 0
    again = runner.invoke(app, ["metrics", "create", "shop", "q"], env=store_env)
    assert again.exit_code == 1 and "already exists" in again.output


def test_the_kind_option_offers_the_store_s_metric_kinds() -> None:
    """`--kind` has its own enum (the command line does not import the store's models)."""
    from ingest.cli_metrics import Kind
    from store.models import MetricKind

    assert [kind.value for kind in Kind] == [kind.value for kind in MetricKind]
