"""The A/B test report against scipy: Welch's t, two-proportion (chi-square), binomial."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import Engine, insert, select

from store import analytics
from store.analytics.lake import drop_lake
from store.catalog import attach_model, create_model, create_project
from store.errors import NotFoundError
from store.ids import uuid7
from store.interactions import INTERACTION_TABLE, write_interactions
from store.keys import Principal
from store.types import utcnow
from tests.store.analytics_data import AB_TABLE, COMPARISON_TABLE, METRIC_TABLE, VALUE_TABLE


def _interactions(project_id: int, test_id: int, model_ids: dict[str, int], n: int) -> list[Any]:
    now = utcnow()
    return [
        {
            "completion_id": str(uuid7()),
            "project_id": project_id,
            "model_id": model_ids[variant],
            "ab_test_id": test_id,
            "ab_variant": variant,
            "session_id": str(uuid.uuid4()),
            "created_at": now.isoformat(),
            "completion": "x",
        }
        for variant in ("m1", "m2")
        for _ in range(n)
    ]


@pytest.fixture
def ab(engine: Engine) -> Iterator[dict[str, Any]]:
    """Three tests in project `bot`: scalar metric, bool metric, preference."""
    rng = np.random.default_rng(11)
    project = create_project(engine, key="bot")
    models = {
        key: create_model(engine, key=key, upstream_urls=["http://127.0.0.1:9"])
        for key in ("m1", "m2")
    }
    for key in models:
        attach_model(engine, project_key="bot", model_key=key)
    model_ids = {key: int(model.id or 0) for key, model in models.items()}
    expected: dict[str, Any] = {}
    with engine.begin() as connection:
        metric_ids = {}
        for key, kind in (("quality", "scalar"), ("resolved", "bool"), ("pref", "scalar")):
            metric_ids[key] = connection.execute(
                insert(METRIC_TABLE).values(
                    project_id=project.id, key=key, name=key, kind=kind,
                    scoring="higher_is_better", created_at=utcnow(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]  # fmt: skip
        test_ids = {}
        for key, metric, mode in (
            ("scalar", "quality", "metric"),
            ("flag", "resolved", "metric"),
            ("pref", "pref", "preference"),
        ):
            test_ids[key] = connection.execute(
                insert(AB_TABLE).values(
                    project_id=project.id, key=key, metric_id=metric_ids[metric], mode=mode,
                    variants=[{"model": "m1", "weight": 1.0}, {"model": "m2", "weight": 1.0}],
                    status="active", auto_deploy=False, created_at=utcnow(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]  # fmt: skip
    records = {
        key: _interactions(int(project.id or 0), tid, model_ids, 60)
        for key, tid in test_ids.items()
    }
    write_interactions(engine, [r for rows in records.values() for r in rows])
    values = []
    scores: dict[str, list[float]] = {"m1": [], "m2": []}
    for record in records["scalar"][:50] + records["scalar"][60:110]:
        centre = 0.6 if record["ab_variant"] == "m1" else 0.68
        score = float(rng.normal(centre, 0.1))
        scores[record["ab_variant"]].append(score)
        values.append((metric_ids["quality"], record["completion_id"], score))
    flags: dict[str, list[float]] = {"m1": [], "m2": []}
    for index, record in enumerate(records["flag"]):
        variant = record["ab_variant"]
        flag = float(index % 60 < (27 if variant == "m1" else 42))
        flags[variant].append(flag)
        values.append((metric_ids["resolved"], record["completion_id"], flag))
    with engine.begin() as connection:
        connection.execute(
            insert(VALUE_TABLE),
            [
                {
                    "id": uuid7(),
                    "completion_id": uuid.UUID(c),
                    "metric_id": m,
                    "value": v,
                    "created_at": utcnow(),
                }
                for m, c, v in values
            ],
        )
        pref = records["pref"]
        comparisons = []
        for index in range(50):
            a, b = pref[index]["completion_id"], pref[60 + index]["completion_id"]  # m1, m2
            tie = "good" if index < 5 else None
            m2_wins = index % 3 != 0
            preferred, other = (b, a) if m2_wins else (a, b)
            comparisons.append(
                {
                    "id": uuid7(), "project_id": project.id, "metric_id": metric_ids["pref"],
                    "preferred_completion_id": uuid.UUID(preferred),
                    "other_completion_id": uuid.UUID(other), "tie": tie, "created_at": utcnow(),
                }
            )  # fmt: skip
        connection.execute(insert(COMPARISON_TABLE), comparisons)
    wins = sum(1 for i in range(5, 50) if i % 3 != 0)
    expected.update(scores=scores, flags=flags, wins=wins, losses=45 - wins, ties=5)
    expected["project_id"] = project.id
    yield expected
    drop_lake(engine)


def test_scalar_metric_test_uses_welch_t(engine: Engine, ab: dict[str, Any]) -> None:
    report = analytics.ab_test_report(engine, "scalar", scope=ab["project_id"])
    assert report.control == "m1" and report.mode == "metric" and report.metric == "quality"
    control, variant = report.variants
    m1, m2 = np.array(ab["scores"]["m1"]), np.array(ab["scores"]["m2"])
    assert (control.n, control.observations) == (60, 50)
    assert control.estimate == pytest.approx(m1.mean())
    low, high = stats.t.interval(0.95, len(m2) - 1, loc=m2.mean(), scale=stats.sem(m2))
    assert (variant.ci_low, variant.ci_high) == pytest.approx((low, high))
    assert variant.difference == pytest.approx(m2.mean() - m1.mean())
    expected = stats.ttest_ind(m2, m1, equal_var=False).pvalue
    assert variant.p_value == pytest.approx(expected)
    assert variant.significant == (expected < 0.05)
    assert variant.better is (True if expected < 0.05 else None)


def test_bool_metric_test_uses_two_proportions(engine: Engine, ab: dict[str, Any]) -> None:
    report = analytics.ab_test_report(engine, "flag", scope=ab["project_id"])
    control, variant = report.variants
    m1, m2 = ab["flags"]["m1"], ab["flags"]["m2"]
    assert control.estimate == pytest.approx(np.mean(m1))
    assert variant.estimate == pytest.approx(np.mean(m2))
    table = [[sum(m2), len(m2) - sum(m2)], [sum(m1), len(m1) - sum(m1)]]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert variant.p_value == pytest.approx(chi2.pvalue)
    assert variant.significant
    ci = stats.binomtest(int(sum(m2)), len(m2)).proportion_ci(method="wilson")
    assert (variant.ci_low, variant.ci_high) == pytest.approx((ci.low, ci.high))


def test_preference_test_uses_win_rate_and_binomial(engine: Engine, ab: dict[str, Any]) -> None:
    report = analytics.ab_test_report(engine, "pref", scope=ab["project_id"])
    control, variant = report.variants
    assert control.is_control and control.estimate is None
    assert (variant.wins, variant.losses, variant.ties) == (ab["wins"], ab["losses"], ab["ties"])
    assert variant.estimate == pytest.approx(ab["wins"] / (ab["wins"] + ab["losses"]))
    expected = stats.binomtest(ab["wins"], ab["wins"] + ab["losses"], 0.5).pvalue
    assert variant.p_value == pytest.approx(expected)
    assert variant.significant == (expected < 0.05)
    frame = report.to_frame()
    assert frame["variant"].tolist() == ["m1", "m2"]


def test_values_stored_out_of_range_leave_their_variant_without_estimate(
    engine: Engine, ab: dict[str, Any]
) -> None:
    """1e308 and -1e308, stored before values were range-checked, make no sum overflow."""
    with engine.connect() as connection:
        test_id = connection.execute(
            select(AB_TABLE.c.id).where(AB_TABLE.c.key == "scalar")
        ).scalar_one()
        metric_id = connection.execute(
            select(METRIC_TABLE.c.id).where(METRIC_TABLE.c.key == "quality")
        ).scalar_one()
        interaction = INTERACTION_TABLE.c
        scored_m2 = connection.execute(
            select(VALUE_TABLE.c.completion_id)
            .join(INTERACTION_TABLE, interaction.completion_id == VALUE_TABLE.c.completion_id)
            .where(interaction.ab_test_id == test_id, interaction.ab_variant == "m2")
        ).scalars().all()  # fmt: skip
    with engine.begin() as connection:  # straight into the table, as nothing checks now
        connection.execute(
            insert(VALUE_TABLE),
            [
                {"id": uuid7(), "completion_id": completion_id, "metric_id": metric_id,
                 "value": value, "created_at": utcnow()}
                for completion_id, value in zip(scored_m2[:2], (1e308, -1e308), strict=True)
            ],
        )  # fmt: skip
    report = analytics.ab_test_report(engine, "scalar", scope=ab["project_id"], max_staleness=0)
    control, variant = report.variants
    assert control.estimate == pytest.approx(np.mean(ab["scores"]["m1"]))
    assert control.ci_low is not None and control.out_of_range == 0
    assert (variant.observations, variant.out_of_range) == (50, 2)
    assert (variant.estimate, variant.ci_low, variant.ci_high) == (None, None, None)
    assert (variant.difference, variant.p_value, variant.significant) == (None, None, False)
    json.dumps(report.to_dict(), allow_nan=False)  # every number is finite


def test_report_of_another_projects_test_is_not_found(engine: Engine, ab: dict[str, Any]) -> None:
    create_project(engine, key="other")
    key = Principal(is_admin=False, project_id=ab["project_id"] + 1, project_key="other")
    with pytest.raises(NotFoundError):
        analytics.ab_test_report(engine, "scalar", scope=key)
    with pytest.raises(NotFoundError):
        analytics.ab_test_report(engine, "nosuchtest", scope=ab["project_id"])
