"""Vega-Lite charts the pages share: lines over time by model, bars per group, intervals.

Each chart is a Vega-Lite spec written out as a dict plus the frame of only the columns it draws,
drawn with `st.vega_lite_chart` (`draw`). Not Altair: importing it and validating every chart
against its schema took about a second of the first page in a new process (measured with
py-spy on 1M interactions), for specs this small.

Charts drawn one above the other in a page column are one Vega-Lite chart (`stack`, a
vconcat): the browser sets up one view per `st.vega_lite_chart`, and nine of them took ~1.4 s
of its CPU on the Overview, two stacks of the same charts about half that (headless Chromium,
bench/dashboard_browser.py). Streamlit stretches each chart of a stack to the column's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

POINTS_UP_TO = 40  # buckets per line drawn with a point mark each (so a lone bucket shows)
HEIGHT = 220
#: A chart drawn alone is fitted into its height, title and axes included; a chart of a stack is
#: not (Vega-Lite fits single views only): its plot is this much lower, for the same size.
FRAME_HEIGHT = 70


@dataclass(frozen=True)
class Chart:
    """A Vega-Lite spec and the frame it draws (sent to the browser as Arrow)."""

    data: pd.DataFrame
    spec: dict[str, Any]


def draw(where: Any, chart: Chart) -> None:
    """Draw CHART in WHERE (`st` or a column), as wide as it is."""
    where.vega_lite_chart(chart.data, chart.spec, width="stretch")


def stack(charts: Sequence[Chart]) -> Chart:
    """CHARTS one above the other as one chart (a vconcat), each as high as drawn alone; they
    draw columns of the same frame (the same rows), whose union is the stack's data. Their
    colour scales are shared: one legend."""
    if len(charts) == 1:
        return charts[0]
    specs = [
        {**chart.spec, "height": max(40, chart.spec["height"] - FRAME_HEIGHT)}
        if isinstance(chart.spec.get("height"), int)
        else chart.spec
        for chart in charts
    ]
    first = charts[0].data
    if any(not chart.data.index.equals(first.index) for chart in charts):
        raise ValueError("stacked charts draw columns of one frame")
    columns = list(dict.fromkeys(column for chart in charts for column in chart.data.columns))
    data = pd.concat([chart.data for chart in charts], axis=1)
    data = data.loc[:, ~data.columns.duplicated()][columns]
    return Chart(data, {"vconcat": specs})


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
    frame: pd.DataFrame,
    *,
    group: str,
    mean: str,
    low: str,
    high: str,
    title: str,
    scored: str | None = None,
) -> Chart:
    """A point per group at its mean with a 95% interval bar; only the groups whose SCORED
    column (a count) is positive, when given (the frame keeps every row, for `stack`)."""
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
    shown = len(frame) if scored is None else int((frame[scored] > 0).sum())
    spec: dict[str, Any] = {
        "title": title,
        "height": max(80, 40 * shown),
        "encoding": {"y": _channel(group, "nominal", title=None)},
        "layer": [rule, point],
    }
    columns = [group, mean, low, high]
    if scored is not None:
        spec["transform"] = [{"filter": {"field": _field(scored), "gt": 0}}]
        columns.append(scored)
    return Chart(frame[columns], spec)
