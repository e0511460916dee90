"""A/B tests end by themselves under the mSPRT, or by cancellation (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from store.ab_lifecycle import cancel_ab_test, end_ab_test, get_ab_test, list_ab_test_details
from store.ab_sequential import (
    MIN_SCORES,
    conclude_ab_tests,
    msprt_p_value,
    sequential_verdict,
)
from store.abtests import create_ab_test
from store.catalog import set_default_model
from store.catalog_admin import describe_project
from store.errors import InvalidInputError, NotFoundError
from store.feedback import add_comparison, add_metric_values
from store.models import Project
from tests.interaction_seeds import log_interaction, seed_project


def _scored(
    engine: Engine, project: Project, test_id: int, variant: str, values: list[float], metric: str
) -> list[str]:
    assert project.id is not None
    ids = [
        str(log_interaction(engine, project, ab_test_id=test_id, ab_variant=variant))
        for _ in values
    ]
    add_metric_values(
        engine,
        project_id=project.id,
        values=[
            {"metric": metric, "value": value, "completion_id": completion_id}
            for completion_id, value in zip(ids, values, strict=True)
        ],
    )
    return ids


def test_msprt_p_value_shrinks_with_evidence_and_is_one_without_difference() -> None:
    assert msprt_p_value(difference=0.0, variance=0.01, tau2=0.25) == 1.0
    weak = msprt_p_value(difference=0.1, variance=0.04, tau2=0.25)
    strong = msprt_p_value(difference=0.5, variance=0.01, tau2=0.25)
    assert strong < 1e-4 < weak <= 1.0


def test_a_clear_winner_ends_the_test_and_becomes_the_default(engine: Engine) -> None:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    set_default_model(engine, project_key="p1", model_key="m1")
    test = create_ab_test(
        engine,
        project_key="p1",
        key="t1",
        variants=[{"model": "m1"}, {"model": "m2"}],
        metric_key="quality",
        auto_deploy=True,
    )
    assert test.id is not None
    n = MIN_SCORES + 10
    _scored(engine, project, test.id, "m1", [0.2, 0.4, 0.3, 0.5] * (n // 4), "quality")
    _scored(engine, project, test.id, "m2", [0.7, 0.9, 0.8, 0.6] * (n // 4), "quality")
    verdict = sequential_verdict(engine, test=get_ab_test(engine, key="t1"))
    assert verdict.enough_scores and verdict.winner == "m2"
    assert verdict.p_value is not None and verdict.p_value < 0.05
    [ended] = conclude_ab_tests(engine)
    assert ended.key == "t1"
    after = get_ab_test(engine, key="t1")
    assert (after.status, after.winner) == ("done", "m2")
    assert after.end_reason and "mSPRT" in after.end_reason and after.ended_at is not None
    assert describe_project(engine, key="p1").default_model == "m2"
    assert conclude_ab_tests(engine) == []  # already ended: nothing more happens


def test_no_difference_does_not_end_the_test(engine: Engine) -> None:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    test = create_ab_test(
        engine,
        project_key="p1",
        key="t1",
        variants=[{"model": "m1"}, {"model": "m2"}],
        metric_key="thumbs",
        auto_deploy=True,
    )
    assert test.id is not None
    values = [1.0, 0.0, 1.0, 1.0, 0.0] * 12
    _scored(engine, project, test.id, "m1", values, "thumbs")
    _scored(engine, project, test.id, "m2", list(reversed(values)), "thumbs")
    verdict = sequential_verdict(engine, test=get_ab_test(engine, key="t1"))
    assert verdict.enough_scores and verdict.winner is None
    assert verdict.p_value == 1.0
    assert conclude_ab_tests(engine) == []
    assert get_ab_test(engine, key="t1").status == "active"
    assert describe_project(engine, key="p1").default_model is None


def test_too_few_scores_never_end_a_test_however_different(engine: Engine) -> None:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    test = create_ab_test(
        engine, project_key="p1", key="t1", variants=[{"model": "m1"}, {"model": "m2"}],
        metric_key="quality",
    )  # fmt: skip
    assert test.id is not None
    _scored(engine, project, test.id, "m1", [0.0, 0.1] * 5, "quality")
    _scored(engine, project, test.id, "m2", [1.0, 0.9] * 5, "quality")
    assert sequential_verdict(engine, test=get_ab_test(engine, key="t1")).enough_scores is False
    assert conclude_ab_tests(engine) == []


def test_a_preference_test_ends_when_one_variant_keeps_winning(engine: Engine) -> None:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    assert project.id is not None
    test = create_ab_test(
        engine, project_key="p1", key="t1", variants=[{"model": "m1"}, {"model": "m2"}],
        metric_key="quality", mode="preference", auto_deploy=False,
    )  # fmt: skip
    assert test.id is not None
    for index in range(MIN_SCORES + 10):
        a = log_interaction(engine, project, ab_test_id=test.id, ab_variant="m1")
        b = log_interaction(engine, project, ab_test_id=test.id, ab_variant="m2")
        preferred, other = (a, b) if index % 8 == 0 else (b, a)
        add_comparison(
            engine, project_id=project.id, metric="quality",
            preferred_completion_id=preferred, other_completion_id=other,
        )  # fmt: skip
    [ended] = conclude_ab_tests(engine)
    after = get_ab_test(engine, key="t1")
    assert (ended.key, after.status, after.winner) == ("t1", "done", "m2")
    assert describe_project(engine, key="p1").default_model is None  # no auto-deploy


def test_cancel_ends_an_active_test_once(engine: Engine) -> None:
    seed_project(engine, "p1", models=("m1", "m2"))
    seed_project(engine, "p2", models=("m1", "m2"))
    create_ab_test(engine, project_key="p1", key="t1", variants=[{"model": "m1"}, {"model": "m2"}])
    create_ab_test(engine, project_key="p2", key="t1", variants=[{"model": "m1"}, {"model": "m2"}])
    with pytest.raises(InvalidInputError):
        get_ab_test(engine, key="t1")  # the key exists in two projects
    cancelled = cancel_ab_test(engine, key="t1", project_key="p1")
    assert (cancelled.status, cancelled.end_reason, cancelled.winner) == (
        "cancelled",
        "cancelled",
        None,
    )
    with pytest.raises(InvalidInputError):
        cancel_ab_test(engine, key="t1", project_key="p1")
    assert not end_ab_test(engine, test_id=cancelled.id, winner="m2", reason="late")
    assert [t.project for t in list_ab_test_details(engine, status="active")] == ["p2"]
    assert [t.key for t in list_ab_test_details(engine, project_key="p1")] == ["t1"]
    with pytest.raises(NotFoundError):
        get_ab_test(engine, key="t9")
