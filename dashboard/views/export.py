"""Export: download every row matching the current filters as CSV, Parquet or fine-tuning JSONL."""

from __future__ import annotations

import streamlit as st

from dashboard import exporting, queries
from dashboard.context import page_context
from dashboard.filter_bar import current_filters

EMPTY = "No interactions match these filters."

ctx = page_context()
selection = current_filters()
st.title("Export")
total = queries.count_interactions(ctx, selection.filters)
if total == 0:
    st.info(EMPTY)
    st.stop()
st.caption(f"{total:,} interactions match: {selection.description}.")
fmt = st.radio(
    "Format",
    list(exporting.FORMATS),
    format_func=lambda name: exporting.FORMATS[name].label,
    horizontal=True,
    key="export_format",
)
spec = exporting.FORMATS[fmt]
st.caption(spec.help)
if total > exporting.MAX_DASHBOARD_EXPORT_ROWS:
    st.warning(
        f"{total:,} rows is more than the dashboard prepares in memory "
        f"({exporting.MAX_DASHBOARD_EXPORT_ROWS:,}); narrow the filters or use "
        f"`interlog export --format {fmt}` for the full set."
    )
    st.stop()
if st.button(f"Prepare {spec.label} file", key="export_prepare"):
    with st.spinner("Preparing the file…"):
        data = exporting.export_bytes(ctx, selection.filters, fmt)
    st.session_state["export_ready"] = (fmt, selection.key, data)
ready = st.session_state.get("export_ready")
if ready and ready[0] == fmt and ready[1] == selection.key:
    st.download_button(
        f"Download {spec.label} ({len(ready[2]):,} bytes)",
        data=ready[2],
        file_name=f"interlog-interactions.{spec.extension}",
        mime=spec.mime,
        key="export_download",
    )
