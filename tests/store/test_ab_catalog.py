"""Listing A/B tests for the dashboard: scoped to projects, with variants and traffic shares."""

from __future__ import annotations

from sqlalchemy import Engine

from store.ab_catalog import list_ab_tests
from store.abtests import create_ab_test
from tests.interaction_seeds import seed_project


def test_ab_tests_are_listed_per_project_with_traffic_shares(engine: Engine) -> None:
    first = seed_project(engine, "p1", models=("m1", "m2"))
    second = seed_project(engine, "p2", models=("m1", "m2"))
    create_ab_test(
        engine,
        project_key="p1",
        key="t1",
        variants=[{"model": "m1", "weight": 3}, {"model": "m2", "weight": 1}],
        metric_key="quality",
    )
    create_ab_test(engine, project_key="p2", key="t2", variants=[{"model": "m1"}, {"model": "m2"}])
    assert first.id is not None and second.id is not None
    everything = list_ab_tests(engine, project_ids=None)
    assert sorted(test.key for test in everything) == ["t1", "t2"]
    [only] = list_ab_tests(engine, project_ids=[first.id])
    assert (only.key, only.project_key, only.metric_key, only.status) == (
        "t1",
        "p1",
        "quality",
        "active",
    )
    assert only.traffic_shares() == {"m1": 0.75, "m2": 0.25}
    [other] = list_ab_tests(engine, project_ids=[second.id])
    assert (other.metric_key, other.traffic_shares()) == (None, {"m1": 0.5, "m2": 0.5})
    assert list_ab_tests(engine, project_ids=[]) == []
