"""adaptive-sdk's `client.ab_tests` (create, list, get, cancel) against a live server."""

from __future__ import annotations

import pytest
from adaptive_sdk import Adaptive
from adaptive_sdk.error_handling import AdaptiveEntityNotFoundError

from store.ab_lifecycle import get_ab_test
from store.feedback import add_metric_value
from tests.ingest.feedback_harness import ADMIN_KEY, LiveStore, live_store, new_project
from tests.interaction_seeds import log_interaction

__all__ = ["live_store"]


def _sdk(live: LiveStore, secret: str, project: str | None = None) -> Adaptive:
    sdk = Adaptive(base_url=live.base_url, api_key=secret)
    if project:
        sdk.set_default_project(project)
    return sdk


def test_sdk_creates_lists_gets_and_cancels_an_ab_test(live_store: LiveStore) -> None:
    seeded = new_project(live_store, models=("m1", "m2"))
    sdk = _sdk(live_store, seeded.secret, seeded.key)
    created = sdk.ab_tests.create(
        ab_test_key="sdk-ab", feedback_key="quality", models=["m1", "m2"], auto_deploy=True
    )
    assert (created.key, created.status.value) == ("sdk-ab", "IN_PROGRESS")
    assert created.begin_date > 0
    stored = get_ab_test(live_store.engine, key="sdk-ab", project_key=seeded.key)
    assert stored.auto_deploy and [v["model"] for v in stored.variants] == ["m1", "m2"]
    completion = log_interaction(
        live_store.engine, seeded.project, ab_test_id=stored.id, ab_variant="m2"
    )
    add_metric_value(
        live_store.engine, project_id=seeded.id, completion_id=completion, metric="quality",
        value=0.8,
    )  # fmt: skip
    [listed] = sdk.ab_tests.list(active=True)
    assert listed.key == "sdk-ab" and listed.metric is not None and listed.metric.key == "quality"
    assert [m.key for m in listed.models] == ["m1", "m2"]
    assert listed.project is not None and listed.project.key == seeded.key
    assert (listed.scores, listed.has_enough_scores, listed.score_type.value) == (
        1,
        False,
        "DIRECT",
    )
    described = sdk.ab_tests.get("sdk-ab")
    assert described is not None
    report = {v.variant.key: v for v in described.report.variants}
    assert (report["m1"].scores, report["m2"].scores) == (0, 1)
    assert described.report.p_value is None  # no comparison before both variants are scored
    assert sdk.ab_tests.cancel("sdk-ab") == "sdk-ab"
    assert sdk.ab_tests.list(active=True) == []
    [done] = sdk.ab_tests.list(status="cancelled")
    assert done.end_date is not None and done.status.value == "CANCELLED"


def test_a_preference_campaign_reports_wins_and_losses(live_store: LiveStore) -> None:
    seeded = new_project(live_store, models=("m1", "m2"))
    sdk = _sdk(live_store, seeded.secret, seeded.key)
    sdk.ab_tests.create(
        ab_test_key="pref", feedback_key="quality", models=["m1", "m2"], feedback_type="preference"
    )
    from store.feedback import add_comparison

    test = get_ab_test(live_store.engine, key="pref", project_key=seeded.key)
    for preferred_variant in ("m2", "m2", "m1"):
        a = log_interaction(live_store.engine, seeded.project, ab_test_id=test.id, ab_variant="m1")
        b = log_interaction(live_store.engine, seeded.project, ab_test_id=test.id, ab_variant="m2")
        add_comparison(
            live_store.engine, project_id=seeded.id, metric="quality",
            preferred_completion_id=b if preferred_variant == "m2" else a,
            other_completion_id=a if preferred_variant == "m2" else b,
        )  # fmt: skip
    described = sdk.ab_tests.get("pref")
    assert described is not None and described.score_type.value == "COMPARISON"
    [challenger] = [v for v in described.report.variants if v.variant.key == "m2"]
    assert challenger.comparisons is not None
    [versus] = challenger.comparisons
    assert (versus.wins, versus.losses, versus.variant.key) == (2, 1, "m1")


def test_another_projects_campaign_is_not_found_and_admin_sees_all(live_store: LiveStore) -> None:
    owner = new_project(live_store, models=("m1", "m2"))
    intruder = new_project(live_store, models=("m1", "m2"))
    _sdk(live_store, owner.secret, owner.key).ab_tests.create(
        ab_test_key="private", feedback_key="quality", models=["m1", "m2"]
    )
    other = _sdk(live_store, intruder.secret, intruder.key)
    with pytest.raises(AdaptiveEntityNotFoundError):
        other.ab_tests.cancel("private")
    with pytest.raises(AdaptiveEntityNotFoundError):
        other.ab_tests.get("private")
    with pytest.raises(AdaptiveEntityNotFoundError):
        other.ab_tests.list(project=owner.key)
    with pytest.raises(AdaptiveEntityNotFoundError):
        other.ab_tests.create(
            ab_test_key="x", feedback_key="quality", models=["m1", "m2"], project=owner.key
        )
    admin = _sdk(live_store, ADMIN_KEY)
    assert [t.key for t in admin.ab_tests.list(project=owner.key)] == ["private"]
    assert get_ab_test(live_store.engine, key="private").status == "active"
