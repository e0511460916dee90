"""A/B tests end by themselves under the mSPRT, or by cancellation (both databases)."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import Engine, insert

from store.ab_lifecycle import cancel_ab_test, end_ab_test, get_ab_test, list_ab_test_details
from store.ab_sequential import (
    MIN_SCORES,
    conclude_ab_tests,
    metric_scores,
    msprt_p_value,
    sequential_verdict,
)
from store.abtests import create_ab_test
from store.catalog import set_default_model
from store.catalog_admin import describe_project
from store.errors import InvalidInputError, NotFoundError
from store.feedback import METRIC_VALUE_TABLE, add_comparison, add_metric_values
from store.ids import uuid7
from store.metrics import get_metric
from store.models import AbTest, Project
from store.types import utcnow
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


@pytest.mark.parametrize(
    ("difference", "variance", "tau2"),
    [
        (1e200, 1e-300, 1e300),
        (1e-200, 5e-324, 1e308),
        (math.inf, 1.0, 1.0),
        (math.nan, 1.0, 1.0),
        (1.0, math.inf, 1.0),
        (1.0, 1e308, 1e308),
    ],
)
def test_msprt_p_value_never_raises_and_is_a_probability(
    difference: float, variance: float, tau2: float
) -> None:
    p = msprt_p_value(difference=difference, variance=variance, tau2=tau2)
    assert 0.0 <= p <= 1.0
    if not all(map(math.isfinite, (difference, variance, tau2))):
        assert p == 1.0  # no evidence from numbers that overflowed


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


def _raw_value(engine: Engine, completion_id: str, metric_id: int, value: float) -> None:
    """Store VALUE as it was possible before values were range-checked: straight into the table."""
    row = {"id": uuid7(), "completion_id": uuid.UUID(completion_id), "metric_id": metric_id,
           "value": value, "created_at": utcnow()}  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(METRIC_VALUE_TABLE).values(**row))


def _clear_winner(engine: Engine) -> tuple[Project, AbTest, dict[str, list[str]]]:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    test = create_ab_test(
        engine, project_key="p1", key="t1", variants=[{"model": "m1"}, {"model": "m2"}],
        metric_key="quality", auto_deploy=True,
    )  # fmt: skip
    assert test.id is not None
    n = MIN_SCORES + 10
    ids = {
        "m1": _scored(engine, project, test.id, "m1", [0.2, 0.4, 0.3, 0.5] * (n // 4), "quality"),
        "m2": _scored(engine, project, test.id, "m2", [0.7, 0.9, 0.8, 0.6] * (n // 4), "quality"),
    }
    return project, test, ids


def test_a_huge_stored_value_gives_no_verdict_and_no_error(engine: Engine) -> None:
    project, test, ids = _clear_winner(engine)
    assert project.id is not None and test.id is not None
    metric_id = get_metric(engine, project_id=project.id, id_or_key="quality").id
    assert metric_id is not None
    _raw_value(engine, ids["m1"][0], metric_id, 1e308)  # a second value, on a scored completion
    extra = str(log_interaction(engine, project, ab_test_id=test.id, ab_variant="m2"))
    _raw_value(engine, extra, metric_id, -1e308)
    scores = metric_scores(engine, test_id=test.id, metric_id=metric_id)
    assert {name: (s.n, s.out_of_range, s.usable) for name, s in scores.items()} == {
        "m1": (MIN_SCORES + 10, 1, False),
        "m2": (MIN_SCORES + 11, 1, False),
    }
    verdict = sequential_verdict(engine, test=get_ab_test(engine, key="t1"))
    assert (verdict.enough_scores, verdict.winner, verdict.comparisons) == (False, None, [])
    assert verdict.out_of_range == 2
    assert conclude_ab_tests(engine) == []  # the clear winner is not declared on broken data
    assert get_ab_test(engine, key="t1").status == "active"


def test_values_at_the_limit_give_finite_statistics(engine: Engine) -> None:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    test = create_ab_test(
        engine, project_key="p1", key="t1", variants=[{"model": "m1"}, {"model": "m2"}],
        metric_key="quality",
    )  # fmt: skip
    assert test.id is not None and project.id is not None
    n = MIN_SCORES + 10
    _scored(engine, project, test.id, "m1", [1e12, -1e12] * (n // 2), "quality")
    _scored(engine, project, test.id, "m2", [1e12 - 1, 1e12 - 3] * (n // 2), "quality")
    metric_id = get_metric(engine, project_id=project.id, id_or_key="quality").id
    assert metric_id is not None
    scores = metric_scores(engine, test_id=test.id, metric_id=metric_id)
    assert scores["m1"].mean == pytest.approx(0.0, abs=1e-3)
    assert scores["m1"].variance == pytest.approx(1e24 * n / (n - 1))
    # Around 1e12 the spread of 1 survives: the variance is taken around the mean.
    assert scores["m2"].mean == pytest.approx(1e12 - 2)
    assert scores["m2"].variance == pytest.approx(n / (n - 1), rel=1e-3)
    verdict = sequential_verdict(engine, test=get_ab_test(engine, key="t1"))
    assert verdict.enough_scores and verdict.out_of_range == 0
    [comparison] = verdict.comparisons
    assert math.isfinite(comparison.p_value) and 0.0 <= comparison.p_value <= 1.0
