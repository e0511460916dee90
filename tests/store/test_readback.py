"""Interaction read-back in the store: conditions, keyset pages and per-model statistics,
on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, not_, or_

from store.catalog import get_model
from store.errors import InvalidInputError, NotFoundError
from store.feedback import add_metric_value
from store.models import Project
from store.readback import (
    Condition,
    completion_condition,
    get_interaction,
    group_by_model,
    label_condition,
    list_interactions,
    metric_condition,
    model_condition,
    session_condition,
    source_condition,
    status_condition,
    time_condition,
    user_condition,
)
from tests.interaction_seeds import log_interaction, minutes_ago, seed_project

Seeded = tuple[Project, dict[str, uuid.UUID], uuid.UUID]


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    other = seed_project(engine, "p2", models=())
    assert project.id is not None
    m1, m2 = get_model(engine, key="m1").id, get_model(engine, key="m2").id
    session = uuid.uuid4()
    ids = {
        "a": log_interaction(
            engine, project, model_id=m1, labels={"team": "x"}, created_at=minutes_ago(40),
            user_id="u1",
        ),
        "b": log_interaction(
            engine, project, model_id=m2, labels={"team": "y", "env": "prod"},
            created_at=minutes_ago(30), session_id=session,
        ),
        "c": log_interaction(
            engine, project, model_id=m1, created_at=minutes_ago(20), session_id=session,
            status="error", source="OFFLINE",
        ),
    }  # fmt: skip
    log_interaction(engine, other, created_at=minutes_ago(10), labels={"team": "x"})
    for name, metric, value in (
        ("a", "quality", 1.0),
        ("a", "quality", 3.0),
        ("b", "quality", 2.0),
    ):
        add_metric_value(
            engine, project_id=project.id, completion_id=ids[name], metric=metric, value=value
        )
    add_metric_value(
        engine, project_id=project.id, completion_id=ids["c"], metric="thumbs", value=True
    )
    return project, ids, session


def _ids(
    engine: Engine, project: Project, *conditions: Condition, **kwargs: object
) -> list[uuid.UUID]:
    page = list_interactions(engine, project_id=project.id, conditions=conditions, **kwargs)  # type: ignore[arg-type]
    return [view.completion_id for view in page.items]


def test_each_condition_selects_its_interactions(engine: Engine, seeded: Seeded) -> None:
    project, ids, session = seeded
    a, b, c = ids["a"], ids["b"], ids["c"]
    cases: list[tuple[Condition, list[uuid.UUID]]] = [
        (label_condition("team", ["x"]), [a]),
        (label_condition("team", ["x", "y"]), [b, a]),
        (label_condition("env"), [b]),
        (label_condition("team", ["x"], project_id=project.id), [a]),
        (label_condition("team", project_id=project.id), [b, a]),
        (not_(label_condition("env", project_id=project.id)), [c, a]),
        (model_condition(["m1"]), [c, a]),
        (time_condition(minutes_ago(35), minutes_ago(25)), [b]),
        (session_condition(session), [c, b]),
        (user_condition("u1"), [a]),
        (completion_condition([b]), [b]),
        (status_condition(["error"]), [c]),
        (source_condition(["offline"]), [c]),
        (metric_condition("quality", gte=2.5), [a]),
        (metric_condition("quality", lt=2.5), [b, a]),
        (metric_condition("thumbs", eq=1), [c]),
        (or_(label_condition("env"), model_condition(["m1"])), [c, b, a]),
        (not_(label_condition("team")), [c]),
    ]
    for condition, expected in cases:
        assert _ids(engine, project, condition) == expected, condition


def test_pages_are_keyset_ordered_both_ways(engine: Engine, seeded: Seeded) -> None:
    project, ids, _ = seeded
    first = list_interactions(engine, project_id=project.id, limit=2)
    assert [v.completion_id for v in first.items] == [ids["c"], ids["b"]]
    assert first.total_count == 3 and first.next_cursor is not None
    rest = list_interactions(engine, project_id=project.id, limit=2, cursor=first.next_cursor)
    assert [v.completion_id for v in rest.items] == [ids["a"]] and rest.next_cursor is None
    assert _ids(engine, project, ascending=True) == [ids["a"], ids["b"], ids["c"]]
    with pytest.raises(InvalidInputError, match="cursor"):
        list_interactions(engine, project_id=project.id, cursor="garbage")
    with pytest.raises(InvalidInputError, match="limit"):
        list_interactions(engine, project_id=project.id, limit=0)


def test_views_carry_labels_scores_and_model(engine: Engine, seeded: Seeded) -> None:
    project, ids, _ = seeded
    view = get_interaction(engine, completion_id=ids["a"], project_id=project.id)
    assert (view.model_key, view.labels, view.user_id) == ("m1", {"team": "x"}, "u1")
    assert [(s.metric.key, s.value) for s in view.scores] == [("quality", 1.0), ("quality", 3.0)]
    with pytest.raises(NotFoundError, match=str(ids["a"])):
        get_interaction(engine, completion_id=ids["a"], project_id=(project.id or 0) + 1)


def test_group_by_model_counts_and_score_statistics(engine: Engine, seeded: Seeded) -> None:
    project, _, _ = seeded
    groups = {g.key: g for g in group_by_model(engine, project_id=project.id)}
    assert {key: g.count for key, g in groups.items()} == {"m1": 2, "m2": 1}
    m1 = {s.metric.key: s for s in groups["m1"].stats}
    quality = m1["quality"]
    assert (quality.count, quality.average, quality.minimum, quality.maximum, quality.total) == (
        2, 2.0, 1.0, 3.0, 4.0,
    )  # fmt: skip
    assert quality.stddev == pytest.approx(1.0)
    assert (m1["thumbs"].count, m1["thumbs"].average) == (1, 1.0)
    filtered = group_by_model(engine, project_id=project.id, conditions=[label_condition("team")])
    assert {g.key: g.count for g in filtered} == {"m1": 1, "m2": 1}
