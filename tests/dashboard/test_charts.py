"""The pages' Vega-Lite specs (dashboard/charts.py): the columns they draw, escaped field names."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from dashboard import charts


def test_a_line_per_model_carries_only_the_columns_it_draws() -> None:
    frame = pd.DataFrame(
        {
            "time": [datetime(2026, 1, 1, tzinfo=UTC)] * 2,
            "model": ["a", "b"],
            "count": [3, 4],
            "other": [0, 0],
        }
    )
    chart = charts.line_over_time(frame, time="time", value="count", title="Interactions")
    assert list(chart.data.columns) == ["time", "model", "count"]
    assert chart.spec["mark"] == {"type": "line", "point": True}
    assert chart.spec["encoding"]["y"] == {"field": "count", "type": "quantitative", "title": None}


def test_a_metric_key_with_a_dot_is_not_taken_for_a_nested_field() -> None:
    frame = pd.DataFrame(
        {"model": ["a"], "q.v1_mean": [0.5], "q.v1_ci_low": [0.4], "q.v1_ci_high": [0.6]}
    )
    chart = charts.means_with_intervals(
        frame, group="model", mean="q.v1_mean", low="q.v1_ci_low", high="q.v1_ci_high", title="q"
    )
    rule, point = chart.spec["layer"]
    assert rule["encoding"]["x"]["field"] == "q\\.v1_ci_low"
    assert rule["encoding"]["x2"] == {"field": "q\\.v1_ci_high"}
    assert point["encoding"]["x"]["field"] == "q\\.v1_mean"
    assert chart.spec["height"] == 80
