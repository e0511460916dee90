"""Admin commands: a user wires project, model and key from the shell, then calls the gateway."""

from __future__ import annotations

from typer.testing import CliRunner

from ingest.cli import app
from store.catalog import get_project, project_models
from store.db import create_store_engine
from store.keys import authenticate_key

runner = CliRunner()


def test_admin_commands_wire_a_project_and_print_the_key_last(sqlite_url: str) -> None:
    env = {"INTERLOG_DATABASE_URL": sqlite_url}
    steps = [
        ["projects", "create", "demo", "--name", "Demo"],
        ["models", "add", "echo", "--upstream", "http://127.0.0.1:8001/v1",
         "--upstream", "http://127.0.0.1:8002/v1", "--upstream-model", "llama", "--multimodal",
         "--api-key-env", "INTERLOG_UPSTREAM_ECHO_KEY"],
        ["models", "attach", "demo", "echo", "--default"],
    ]  # fmt: skip
    for args in steps:
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    created = runner.invoke(app, ["keys", "create", "--project", "demo"], env=env)
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    engine = create_store_engine(sqlite_url)
    try:
        principal = authenticate_key(engine, secret)
        assert principal is not None and principal.project_key == "demo"
        [model] = project_models(engine, project_key="demo")
        assert model.upstream_urls == ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
        assert (model.upstream_model, model.multimodal, model.api_key_env) == (
            "llama",
            True,
            "INTERLOG_UPSTREAM_ECHO_KEY",
        )
        assert get_project(engine, key="demo").default_model_id == model.id
    finally:
        engine.dispose()


def test_admin_commands_explain_failures(sqlite_url: str) -> None:
    env = {"INTERLOG_DATABASE_URL": sqlite_url}
    missing = runner.invoke(app, ["models", "attach", "nope", "echo"], env=env)
    assert missing.exit_code == 1
    assert "project nope not found" in missing.output
    both = runner.invoke(app, ["keys", "create", "--project", "p", "--admin"], env=env)
    assert both.exit_code == 2
    bad_url = runner.invoke(app, ["models", "add", "m", "--upstream", "localhost:1"], env=env)
    assert bad_url.exit_code == 1 and "must start with http://" in bad_url.output
