"""Overview: volume, errors, latency, tokens and metric means over time, by model."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, queries, timing
from dashboard.context import page_context
from dashboard.filter_bar import current_filters

timing.mark("overview: imported")
EMPTY = "No interactions match these filters."


def _ms(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.0f} ms"


ctx = page_context()
selection = current_filters()
filters = selection.filters
st.title("Overview")
st.caption(f"Showing {selection.description}.")

data = queries.overview(ctx, filters)
total = data.total
if total.empty or int(total["count"].sum()) == 0:
    st.info(EMPTY)
    st.stop()

row = total.iloc[0]
kpis = st.columns(5)
kpis[0].metric("Interactions", f"{int(row['count']):,}")
kpis[1].metric("Error rate", f"{float(row['error_rate'] or 0):.1%}")
kpis[2].metric("Latency p50", _ms(row["latency_p50"]))
kpis[3].metric("Latency p95", _ms(row["latency_p95"]))
tokens = int((row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0))
kpis[4].metric("Tokens", f"{tokens:,}")

metric_keys = sorted({metric.key for metric in queries.visible_metrics(ctx)})
by_model = data.by_group
by_model = by_model[by_model["model"].notna()]

st.subheader("Over time, by model")
over_time = data.over_time
if not over_time.empty:
    shown = over_time["model"].nunique()
    more = f" (the {shown} busiest models)" if shown < len(by_model) else ""
    st.caption(f"One point per {data.bucket}{more}.")
    left, right = st.columns(2)
    lines = [
        ("count", "Interactions"),
        ("error_rate", "Error rate"),
        ("latency_p50", "Latency p50 (ms)"),
        ("latency_p95", "Latency p95 (ms)"),
        ("tokens", "Tokens"),
    ]
    lines += [
        (f"{key}_mean", f"{key} (mean)")
        for key in metric_keys
        if f"{key}_mean" in over_time and over_time[f"{key}_mean"].notna().any()
    ]
    for where, part in ((left, lines[0::2]), (right, lines[1::2])):
        if part:  # one stack per column (dashboard/charts.py)
            drawn = [
                charts.line_over_time(over_time, time="time", value=column, title=title)
                for column, title in part
            ]
            charts.draw(where, charts.stack(drawn))
else:
    st.info("No interactions with a model match these filters.")

timing.mark("overview: charts drawn")
st.subheader("By model")
if by_model.empty:
    st.info("No interactions with a model match these filters.")
else:
    columns = ["model", "count", "error_rate", "latency_p50", "latency_p95", "ttft_p50"]
    columns += ["prompt_tokens", "completion_tokens"]
    for key in metric_keys:
        columns += [c for c in (f"{key}_mean", f"{key}_n") if c in by_model]
    st.dataframe(
        by_model[columns],
        hide_index=True,
        width="stretch",
        column_config={"error_rate": st.column_config.NumberColumn(format="percent")},
    )
    means = [key for key in metric_keys if by_model.get(f"{key}_n", pd.Series([0])).sum() > 0]
    chart_columns = st.columns(2)
    for where, keys in zip(chart_columns, (means[0::2], means[1::2]), strict=True):
        if keys:
            drawn = [
                charts.means_with_intervals(
                    by_model,
                    group="model",
                    mean=f"{key}_mean",
                    low=f"{key}_ci_low",
                    high=f"{key}_ci_high",
                    title=f"{key}: mean and 95% interval",
                    scored=f"{key}_n",
                )
                for key in keys
            ]
            charts.draw(where, charts.stack(drawn))
