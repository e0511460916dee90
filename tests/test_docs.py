"""The README documents every setting and every CLI command (datasette's test_docs habit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from ingest.cli import app
from store.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"`INTERLOG_{field.upper()}`" in README


def test_every_setting_has_a_description() -> None:
    missing = [name for name, info in Settings.model_fields.items() if not info.description]
    assert missing == []


def _commands(group: Any, prefix: str = "interlog") -> list[str]:
    names = []
    for name, command in sorted(group.commands.items()):
        if getattr(command, "commands", None) is not None:  # a group (typer vendors click)
            names.extend(_commands(command, f"{prefix} {name}"))
        else:
            names.append(f"{prefix} {name}")
    return names


CLI_COMMANDS = _commands(typer.main.get_group(app))


def test_the_cli_has_commands() -> None:
    assert "interlog db upgrade" in CLI_COMMANDS


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"`{command}" in README


def test_readme_has_exactly_two_setup_commands() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    block = setup.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == [
        "bash scripts/run.sh",
        "bash scripts/test.sh",
    ]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
