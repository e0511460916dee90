"""Alembic migrations of the store; `upgrade` and `downgrade` run them programmatically."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from store.db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent


#: Columns of migration 0004 that store.models leaves out on purpose (see that migration).
UNDECLARED_COLUMNS = frozenset({"change_txid"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's filter for model/migration comparisons: skip migration 0004's change-tracking
    column of PostgreSQL and its index, which the models do not declare."""
    if type_ == "column":
        return name not in UNDECLARED_COLUMNS
    if type_ == "index":
        return not any(column.name in UNDECLARED_COLUMNS for column in obj.columns)
    return True


def alembic_config(database_url: str | URL) -> Config:
    """An Alembic config pointing at this package and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = normalize_url(database_url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(database_url: str | URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | URL, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str | URL) -> None:
    command.current(alembic_config(database_url), verbose=False)


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head_revision() -> str:
    """The newest revision this code knows."""
    head = _script().get_current_head()
    assert head is not None
    return head


def schema_problem(connection: Connection) -> str | None:
    """Why the store behind CONNECTION is older than this code (no Interlog tables, or an older
    revision), with what to do; None when it is at head, or at a newer revision this code does
    not know (written by a newer Interlog during a rolling upgrade)."""
    revision = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if revision == head:
        return None
    if revision is None:
        return f"no Interlog tables (revision {head} needed): run `interlog db upgrade`"
    known = {script.revision for script in _script().walk_revisions()}
    if revision not in known:
        return None
    return f"schema at revision {revision}, {head} needed: run `interlog db upgrade`"
