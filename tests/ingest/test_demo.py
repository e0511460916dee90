"""`interlog demo` seeds a store through a real gateway, and leaves a seeded store alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import col

from store.ab_catalog import list_ab_tests
from store.catalog import list_projects
from store.db import create_store_engine
from store.models import Comparison, Interaction, InteractionLabel, MetricValue
from tests.support import interlog_env

INTERACTIONS = 40


def _demo(database_url: str, cwd: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "ingest", "demo", "--interactions", str(INTERACTIONS)],
        env=interlog_env({"INTERLOG_DATABASE_URL": database_url}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def _count(connection: object, statement: object) -> int:
    return int(connection.execute(statement).scalar_one())  # type: ignore[attr-defined]


def test_demo_seeds_projects_sessions_labels_ab_test_and_scores_through_the_gateway(
    sqlite_url: str, tmp_path: Path
) -> None:
    output = _demo(sqlite_url, tmp_path)
    assert f"sent {INTERACTIONS} chat completions" in output
    assert "dashboard admin key (shown once): il_" in output
    engine = create_store_engine(sqlite_url)
    try:
        assert sorted(p.key for p in list_projects(engine)) == [
            "code-assistant",
            "search",
            "support-bot",
        ]
        with engine.connect() as connection:
            assert _count(connection, select(func.count()).select_from(Interaction)) == (
                INTERACTIONS
            )
            per_session = (
                select(func.count().label("turns"))
                .select_from(Interaction)
                .group_by(col(Interaction.session_id))
                .subquery()
            )
            assert _count(connection, select(func.max(per_session.c.turns))) > 1
            label_keys = set(
                connection.execute(select(col(InteractionLabel.key)).distinct()).scalars()
            )
            assert {"team", "channel"} <= label_keys or {"language", "task"} <= label_keys
            assert _count(connection, select(func.count()).select_from(MetricValue)) > 0
            variants = set(
                connection.execute(
                    select(col(Interaction.ab_variant)).where(
                        col(Interaction.ab_variant).is_not(None)
                    )
                ).scalars()
            )
            comparisons = _count(connection, select(func.count()).select_from(Comparison))

        [test] = list_ab_tests(engine, project_ids=None)
        assert (test.key, test.project_key, test.metric_key) == (
            "small-vs-large",
            "support-bot",
            "quality",
        )
        assert variants <= {"demo-small", "demo-large"} and variants
        assert f"{comparisons} preferences" in output

        again = _demo(sqlite_url, tmp_path)
        assert "the demo projects already exist; nothing done" in again
        with engine.connect() as connection:
            assert _count(connection, select(func.count()).select_from(Interaction)) == (
                INTERACTIONS
            )
    finally:
        engine.dispose()
