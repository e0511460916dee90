"""Altair charts the pages share: lines over time by model, bars per group, intervals.

Each chart embeds only the columns it draws (Vega-Lite specs carry their data inline).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

POINTS_UP_TO = 40  # buckets per line drawn with a point mark each (so a lone bucket shows)


def line_over_time(frame: pd.DataFrame, *, time: str, value: str, title: str) -> alt.Chart:
    """One line per model of `value` over `time` buckets; short lines get a point per bucket
    (one bucket still shows), long ones none (fewer marks for the browser to draw)."""
    points = int(frame.groupby("model").size().max()) <= POINTS_UP_TO if len(frame) else True
    return (
        alt.Chart(frame[[time, "model", value]], title=title)
        .mark_line(point=points)
        .encode(
            x=alt.X(f"{time}:T", title=None),
            y=alt.Y(f"{value}:Q", title=None),
            color=alt.Color("model:N", title="model"),
            tooltip=["model", alt.Tooltip(f"{time}:T"), alt.Tooltip(f"{value}:Q", format=",.3~f")],
        )
        .properties(height=220)
    )


def bars(frame: pd.DataFrame, *, group: str, value: str, title: str) -> alt.Chart:
    """One bar per group."""
    return (
        alt.Chart(frame[[group, value]], title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{group}:N", title=None, sort="-y"),
            y=alt.Y(f"{value}:Q", title=None),
            color=alt.Color(f"{group}:N", legend=None),
            tooltip=[group, alt.Tooltip(f"{value}:Q", format=",.3~f")],
        )
        .properties(height=220)
    )


def means_with_intervals(
    frame: pd.DataFrame, *, group: str, mean: str, low: str, high: str, title: str
) -> alt.LayerChart:
    """A point per group at its mean with a 95% interval bar."""
    base = alt.Chart(frame[[group, mean, low, high]], title=title).encode(
        y=alt.Y(f"{group}:N", title=None)
    )
    rule = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(f"{low}:Q", title=None, scale=alt.Scale(zero=False)), x2=f"{high}:Q"
    )
    point = base.mark_point(filled=True, size=80).encode(
        x=f"{mean}:Q",
        color=alt.Color(f"{group}:N", legend=None),
        tooltip=[
            group,
            alt.Tooltip(f"{mean}:Q", format=".3f"),
            alt.Tooltip(f"{low}:Q", format=".3f"),
            alt.Tooltip(f"{high}:Q", format=".3f"),
        ],
    )
    return (rule + point).properties(height=max(80, 40 * len(frame)))
