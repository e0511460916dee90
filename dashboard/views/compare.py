"""Compare: two completions side by side, and a recorded preference between them."""

from __future__ import annotations

import streamlit as st

from dashboard import queries
from dashboard.context import page_context
from dashboard.conversation_view import render_completion
from dashboard.scoring import render_preference_form

ctx = page_context()
st.title("Compare two completions")
st.caption(
    "Paste two completion ids of the same project (the Interactions page shows them); the "
    "preference is stored like one sent to POST /api/v1/comparison."
)
opened = st.session_state.get("open_completion") or ""
inputs = st.columns(2)
first_id = inputs[0].text_input("Completion A", value=str(opened), key="compare_a").strip()
second_id = inputs[1].text_input("Completion B", key="compare_b").strip()
if not first_id or not second_id:
    st.info("Enter two completion ids to compare them.")
    st.stop()
views = [queries.find_conversation(ctx, cid) for cid in (first_id, second_id)]
missing = [cid for cid, view in zip((first_id, second_id), views, strict=True) if view is None]
if missing:
    st.warning(f"Not visible to you (or unknown): {', '.join(missing)}")
    st.stop()
first, second = views
assert first is not None and second is not None
if first.project_id != second.project_id:
    st.error("Both completions must belong to the same project.")
    st.stop()
if first.completion_id == second.completion_id:
    st.error("Pick two different completions.")
    st.stop()
panels = st.columns(2)
for panel, name, view in ((panels[0], "A", first), (panels[1], "B", second)):
    with panel:
        st.markdown(f"**{name}** · {view.model_key or '-'} · {view.created_at:%Y-%m-%d %H:%M}")
        render_completion(view)
render_preference_form(
    ctx, project_id=first.project_id, first=first.completion_id, second=second.completion_id
)
