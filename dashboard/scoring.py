"""Scoring forms: a metric value on one completion, a preference between two completions.

Both write through the store functions the REST API uses (store.feedback), so kinds and the
range of values are checked the same way, and a refusal is shown under the form. A per-form
feedback id makes a resubmitted form (a double click, a rerun) store one row, not two.
"""

from __future__ import annotations

import uuid

import streamlit as st

from dashboard.context import PageContext
from dashboard.queries import forget_cached_reads, project_metrics
from store.errors import StoreError
from store.feedback import METRIC_VALUE_LIMIT, add_comparison, add_metric_value
from store.models import MetricKind

PREFERENCES = {
    "A is better": ("a", None),
    "B is better": ("b", None),
    "Both good": ("a", "good"),
    "Both bad": ("a", "bad"),
}


def scorer_id(ctx: PageContext) -> str:
    """Who scored, as stored in user_id: the API key's id, or `admin`."""
    key_id = ctx.principal.key_id
    return f"dashboard:key-{key_id}" if key_id is not None else "dashboard:admin"


def _form_token(name: str) -> str:
    token = st.session_state.get(name)
    if not isinstance(token, str):
        token = str(uuid.uuid4())
        st.session_state[name] = token
    return token


def render_score_form(ctx: PageContext, *, project_id: int, completion_id: uuid.UUID) -> bool:
    """A form that attaches one metric value; True when a value was just stored."""
    metrics = project_metrics(ctx, project_id=project_id)
    if not metrics:
        st.info("This project has no metrics yet: define one on the Metrics page.")
        return False
    by_key = {metric.key: metric for metric in metrics}
    metric_key = st.selectbox("Metric", list(by_key), key="score_metric")
    metric = by_key[metric_key]
    token_name = f"score_token_{completion_id}"
    with st.form("score_form", clear_on_submit=True):
        value: float | bool
        if metric.kind == MetricKind.BOOL.value:
            value = st.toggle(f"{metric.key} is true", key="score_bool")
        else:
            # No min_value/max_value: Streamlit would silently replace a value beyond them
            # with the default; the store refuses it with a message instead (shown below).
            value = st.number_input(
                f"{metric.key} value",
                value=1.0,
                step=0.1,
                format="%.3f",
                help=f"A finite number from {-METRIC_VALUE_LIMIT:g} to {METRIC_VALUE_LIMIT:g}.",
                key="score_number",
            )
        details = st.text_area("Details (optional)", key="score_details")
        submitted = st.form_submit_button("Save score")
    if not submitted:
        return False
    try:
        add_metric_value(
            ctx.engine,
            project_id=project_id,
            completion_id=completion_id,
            metric=metric.key,
            value=value,
            details=details.strip() or None,
            user_id=scorer_id(ctx),
            feedback_id=_form_token(token_name),
        )
    except StoreError as exc:
        st.error(str(exc))
        return False
    st.session_state.pop(token_name, None)
    forget_cached_reads()
    st.toast(f"Saved {metric.key} = {float(value):g}")
    return True


def render_preference_form(
    ctx: PageContext, *, project_id: int, first: uuid.UUID, second: uuid.UUID
) -> bool:
    """A form that records which of two completions is better; True when stored."""
    metrics = project_metrics(ctx, project_id=project_id)
    if not metrics:
        st.info("This project has no metrics yet: define one on the Metrics page.")
        return False
    with st.form("preference_form"):
        metric_key = st.selectbox("Metric", [m.key for m in metrics], key="pref_metric")
        choice = st.radio("Which is better?", list(PREFERENCES), horizontal=True, key="pref")
        submitted = st.form_submit_button("Save preference")
    if not submitted:
        return False
    winner, tie = PREFERENCES[choice]
    preferred, other = (first, second) if winner == "a" else (second, first)
    try:
        add_comparison(
            ctx.engine,
            project_id=project_id,
            metric=metric_key,
            preferred_completion_id=preferred,
            other_completion_id=other,
            tie=tie,
            user_id=scorer_id(ctx),
        )
    except StoreError as exc:
        st.error(str(exc))
        return False
    forget_cached_reads()
    st.success(f"Saved preference: {choice} ({metric_key}).")
    return True
