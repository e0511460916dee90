"""Metrics: the metric definitions of the visible projects, and a form to define one."""

from __future__ import annotations

import streamlit as st

from dashboard import queries
from dashboard.context import page_context
from store.errors import StoreError
from store.metrics import create_metric

ctx = page_context()
st.title("Metrics")
names = {project.id: project.key for project in ctx.projects}
metrics = queries.visible_metrics(ctx)
if not metrics:
    st.info("No metrics defined yet. Define one below, or with `interlog metrics create`.")
else:
    st.dataframe(
        [
            {
                "project": names.get(metric.project_id, metric.project_id),
                "key": metric.key,
                "name": metric.name,
                "kind": metric.kind,
                "scoring": metric.scoring.replace("_", " "),
                "description": metric.description or "",
            }
            for metric in metrics
        ],
        hide_index=True,
        width="stretch",
    )

st.subheader("Define a metric")
if not ctx.projects:
    st.info("No projects yet: create one with `interlog projects create KEY`.")
    st.stop()
with st.form("define_metric", clear_on_submit=True):
    project_key = st.selectbox("Project", [p.key for p in ctx.projects], key="metric_project")
    key = st.text_input("Key", key="metric_key", help="Letters, digits, '_', '.', ':' or '-'.")
    name = st.text_input("Name (optional)", key="metric_name")
    kind = st.radio("Kind", ["scalar", "bool"], horizontal=True, key="metric_kind")
    scoring = st.radio(
        "Better is",
        ["higher_is_better", "lower_is_better"],
        horizontal=True,
        format_func=lambda s: s.replace("_", " "),
        key="metric_scoring",
    )
    description = st.text_area("Description (optional)", key="metric_description")
    submitted = st.form_submit_button("Define metric")
if submitted:
    try:
        created = create_metric(
            ctx.engine,
            project_key=str(project_key),
            key=key.strip(),
            kind=str(kind),
            scoring=str(scoring),
            name=name.strip() or None,
            description=description.strip() or None,
        )
    except StoreError as exc:
        st.error(str(exc))
    else:
        queries.forget_cached_reads()
        st.success(f"Defined metric {created.key} ({created.kind}) in {project_key}.")
        st.rerun()
