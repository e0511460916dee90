"""Vega-Lite charts the pages share: lines over time by model, bars per group, intervals.

Each chart is a Vega-Lite spec written out as a dict plus the frame of only the columns it draws,
drawn with `st.vega_lite_chart` (`draw`). Not Altair: importing it and validating every chart
against its schema took about a second of the first page in a new process (measured with
py-spy on 1M interactions), for specs this small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

POINTS_UP_TO = 40  # buckets per line drawn with a point mark each (so a lone bucket shows)
HEIGHT = 220


@dataclass(frozen=True)
class Chart:
    """A Vega-Lite spec and the frame it draws (sent to the browser as Arrow)."""

    data: pd.DataFrame
    spec: dict[str, Any]


def draw(where: Any, chart: Chart) -> None:
    """Draw CHART in WHERE (`st` or a column), as wide as it is."""
    where.vega_lite_chart(chart.data, chart.spec, width="stretch")


def _field(name: str) -> str:
    """NAME as a Vega-Lite field: '.', '[' and ']' would otherwise mean nested access."""
    for special in ("\\", ".", "[", "]"):
        name = name.replace(special, "\\" + special)
    return name


def _channel(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"field": _field(name), "type": kind, **extra}


def line_over_time(frame: pd.DataFrame, *, time: str, value: str, title: str) -> Chart:
    """One line per model of `value` over `time` buckets; short lines get a point per bucket
    (one bucket still shows), long ones none (fewer marks for the browser to draw)."""
    points = int(frame.groupby("model").size().max()) <= POINTS_UP_TO if len(frame) else True
    spec = {
        "title": title,
        "height": HEIGHT,
        "mark": {"type": "line", "point": points},
        "encoding": {
            "x": _channel(time, "temporal", title=None),
            "y": _channel(value, "quantitative", title=None),
            "color": _channel("model", "nominal", title="model"),
            "tooltip": [
                _channel("model", "nominal"),
                _channel(time, "temporal"),
                _channel(value, "quantitative", format=",.3~f"),
            ],
        },
    }
    return Chart(frame[[time, "model", value]], spec)


def bars(frame: pd.DataFrame, *, group: str, value: str, title: str) -> Chart:
    """One bar per group."""
    spec = {
        "title": title,
        "height": HEIGHT,
        "mark": {"type": "bar"},
        "encoding": {
            "x": _channel(group, "nominal", title=None, sort="-y"),
            "y": _channel(value, "quantitative", title=None),
            "color": _channel(group, "nominal", legend=None),
            "tooltip": [
                _channel(group, "nominal"),
                _channel(value, "quantitative", format=",.3~f"),
            ],
        },
    }
    return Chart(frame[[group, value]], spec)


def means_with_intervals(
    frame: pd.DataFrame, *, group: str, mean: str, low: str, high: str, title: str
) -> Chart:
    """A point per group at its mean with a 95% interval bar."""
    rule = {
        "mark": {"type": "rule", "strokeWidth": 2},
        "encoding": {
            "x": _channel(low, "quantitative", title=None, scale={"zero": False}),
            "x2": {"field": _field(high)},
        },
    }
    point = {
        "mark": {"type": "point", "filled": True, "size": 80},
        "encoding": {
            "x": _channel(mean, "quantitative"),
            "color": _channel(group, "nominal", legend=None),
            "tooltip": [
                _channel(group, "nominal"),
                *(_channel(c, "quantitative", format=".3f") for c in (mean, low, high)),
            ],
        },
    }
    spec = {
        "title": title,
        "height": max(80, 40 * len(frame)),
        "encoding": {"y": _channel(group, "nominal", title=None)},
        "layer": [rule, point],
    }
    return Chart(frame[[group, mean, low, high]], spec)
