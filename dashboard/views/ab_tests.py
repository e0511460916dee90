"""A/B tests: each test with its variants, traffic, per-variant metric with intervals, result."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, queries
from dashboard.context import page_context
from store.ab_report import AbTestReport
from store.errors import StoreError

ctx = page_context()
st.title("A/B tests")
tests = queries.ab_tests(ctx)
if not tests:
    st.info("No A/B tests yet. Start one with the A/B test API or `interlog abtests create`.")
    st.stop()

for test in tests:
    title = f"{test.key} · {test.project_key} · {test.status}"
    with st.expander(title, expanded=test.status == "active"):
        facts = st.columns(4)
        facts[0].metric("Status", test.status)
        facts[1].metric("Mode", test.mode)
        facts[2].metric("Metric", test.metric_key or "-")
        facts[3].metric("Winner", test.winner or "-")
        report: AbTestReport | None = None
        try:
            report = queries.ab_report(ctx, test.project_key, test.key)
        except StoreError as exc:
            problem = exc
        if report is not None:  # the report counts each variant's interactions already
            traffic = {variant.variant: variant.n for variant in report.variants}
        else:
            traffic = queries.variant_traffic(ctx, test.project_key, test.key)
        shares = test.traffic_shares()
        total = sum(traffic.values())
        st.dataframe(
            pd.DataFrame(
                {
                    "variant": list(shares),
                    "configured share": [shares[name] for name in shares],
                    "interactions": [traffic.get(name, 0) for name in shares],
                    "observed share": [
                        (traffic.get(name, 0) / total) if total else 0.0 for name in shares
                    ],
                }
            ),
            hide_index=True,
            width="stretch",
            column_config={
                "configured share": st.column_config.NumberColumn(format="percent"),
                "observed share": st.column_config.NumberColumn(format="percent"),
            },
        )
        if report is None:
            st.warning(f"No report: {problem}")
            continue
        frame = report.to_frame()
        if frame.empty or frame["estimate"].isna().all():
            st.info("No scored completions in this test yet.")
            continue
        what = {"metric": "mean", "preference": "win rate vs control"}.get(report.mode, "estimate")
        if report.metric_kind == "bool":
            what = "true-rate"
        scored = frame[frame["estimate"].notna()]
        charts.draw(
            st,
            charts.means_with_intervals(
                scored,
                group="variant",
                mean="estimate",
                low="ci_low",
                high="ci_high",
                title=f"{report.metric or 'preference'}: {what} with 95% interval",
            ),
        )
        shown = ["variant", "is_control", "n", "observations", "estimate", "ci_low", "ci_high"]
        shown += ["difference", "p_value", "significant"]
        if report.mode == "preference":
            shown += ["wins", "losses", "ties"]
        st.dataframe(frame[[c for c in shown if c in frame]], hide_index=True, width="stretch")
        significant = frame[frame["significant"] & ~frame["is_control"]]
        if significant.empty:
            st.caption("No variant differs significantly from the control (5% level).")
        else:
            names = ", ".join(significant["variant"])
            st.success(f"Significant difference from the control ({report.control}): {names}.")
