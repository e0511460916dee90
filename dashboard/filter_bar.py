"""The filter bar shared by Overview, Interactions and Export: widgets in, a store Filters out.

Pickers are filled from the data (label keys and values, models, metrics of the visible projects).
Relative time ranges are anchored to the current minute so that the same choice gives the same
Filters (and so the same cache entry) across reruns within that minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from dashboard import queries
from dashboard.context import PageContext
from store.errors import InvalidInputError
from store.filters import Filters, LabelFilter, MetricFilter

ALL = "(all)"
ANY_VALUE = "(any value)"
TIME_RANGES: dict[str, timedelta | None] = {
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All time": None,
    "Custom": None,
}
STATUSES = ["ok", "error", "cancelled"]
FILTERS_KEY = "interlog_filters"


@dataclass(frozen=True)
class FilterSelection:
    """The filters of this run and a stable text form for cache keys and captions."""

    filters: Filters
    key: str
    description: str


def _minute_now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _time_range(choice: str) -> tuple[datetime | None, datetime | None]:
    if choice == "Custom":
        today = datetime.now(UTC).date()
        picked = st.date_input(
            "From / to (UTC)", value=(today - timedelta(days=7), today), key="f_dates"
        )
        if isinstance(picked, tuple) and len(picked) == 2:
            start, end = picked
            return (
                datetime.combine(start, time.min, UTC),
                datetime.combine(end, time.min, UTC) + timedelta(days=1),
            )
        if isinstance(picked, date):
            return datetime.combine(picked, time.min, UTC), None
        return None, None
    delta = TIME_RANGES.get(choice)
    return (_minute_now() - delta if delta else None), None


def _label_filters(ctx: PageContext, project: str | None) -> list[LabelFilter]:
    keys = queries.label_keys(ctx, project=project)
    chosen = st.multiselect("Labels", keys, key="f_label_keys", placeholder="Filter by label")
    filters: list[LabelFilter] = []
    for label_key in chosen:
        values = queries.label_values(ctx, key=label_key, project=project)
        picked = st.multiselect(
            f"{label_key} =", values, key=f"f_label_{label_key}", placeholder=ANY_VALUE
        )
        if not picked:
            filters.append(LabelFilter(label_key, "exists"))
        elif len(picked) == 1:
            filters.append(LabelFilter(label_key, "=", (picked[0],)))
        else:
            filters.append(LabelFilter(label_key, "in", tuple(picked)))
    return filters


def _metric_filters(ctx: PageContext, project: str | None) -> list[MetricFilter]:
    metrics = queries.metric_keys(ctx, project=project)
    chosen = st.multiselect("Metric ranges", metrics, key="f_metric_keys", placeholder="Metric")
    filters: list[MetricFilter] = []
    for metric_key in chosen:
        low, high = st.columns(2)
        minimum = low.number_input(f"{metric_key} ≥", value=None, key=f"f_min_{metric_key}")
        maximum = high.number_input(f"{metric_key} ≤", value=None, key=f"f_max_{metric_key}")
        if minimum is not None:
            filters.append(MetricFilter(metric_key, ">=", float(minimum)))
        if maximum is not None:
            filters.append(MetricFilter(metric_key, "<=", float(maximum)))
    return filters


def render_filter_bar(ctx: PageContext) -> FilterSelection:
    """Draw the filters in the sidebar and return what they select."""
    with st.sidebar:
        st.header("Filters")
        project: str | None
        if ctx.principal.is_admin:
            choice = st.selectbox("Project", [ALL, *[p.key for p in ctx.projects]], key="f_project")
            project = None if choice == ALL else choice
        else:
            project = ctx.projects[0].key if ctx.projects else None
            st.caption(f"Project: **{project}**")
        labels = _label_filters(ctx, project)
        model_choice = st.selectbox(
            "Model", [ALL, *queries.model_keys(ctx, project=project)], key="f_model"
        )
        range_choice = st.selectbox("Time range", list(TIME_RANGES), index=4, key="f_time")
        since, until = _time_range(range_choice)
        status_choice = st.selectbox("Status", [ALL, *STATUSES], key="f_status")
        session = st.text_input("Session id", key="f_session").strip() or None
        search = st.text_input("Text contains", key="f_search").strip() or None
        metrics = _metric_filters(ctx, project)
    session_error = None
    try:
        filters = Filters(
            labels=tuple(labels),
            project=project,
            model=None if model_choice == ALL else model_choice,
            since=since,
            until=until,
            session=session,
            status=None if status_choice == ALL else status_choice,
            metrics=tuple(metrics),
            search=search,
        )
    except ValueError as exc:  # a malformed session id
        session_error = str(exc)
        filters = Filters(labels=tuple(labels), project=project, search=search)
    if session_error:
        st.sidebar.error(session_error)
    try:
        for warning in queries.filter_warnings(ctx, filters):
            st.sidebar.warning(warning)
    except InvalidInputError as exc:  # a metric that no project in scope has
        st.sidebar.error(str(exc))
        filters = Filters(labels=tuple(labels), project=project, search=search)
    selection = FilterSelection(filters=filters, key=repr(filters), description=describe(filters))
    st.session_state[FILTERS_KEY] = selection
    return selection


def describe(filters: Filters) -> str:
    """A one-line human summary of the active filters."""
    parts: list[str] = []
    if filters.project:
        parts.append(f"project {filters.project}")
    for label in filters.label_filters:
        if label.op == "exists":
            parts.append(f"has {label.key}")
        else:
            parts.append(f"{label.key} {label.op} {', '.join(label.values)}")
    if filters.model:
        parts.append(f"model {filters.model}")
    if isinstance(filters.since, datetime):
        parts.append(f"since {filters.since:%Y-%m-%d %H:%M} UTC")
    if isinstance(filters.until, datetime):
        parts.append(f"until {filters.until:%Y-%m-%d %H:%M} UTC")
    if filters.status:
        parts.append(f"status {filters.status}")
    if filters.session:
        parts.append(f"session {filters.session}")
    for metric in filters.metric_filters:
        parts.append(f"{metric.key} {metric.op} {metric.value:g}")
    if filters.search:
        parts.append(f"text “{filters.search}”")
    return "; ".join(parts) if parts else "all interactions"


def current_filters() -> FilterSelection:
    """The filters the entry point drew for this run (no filters if none were drawn)."""
    selection = st.session_state.get(FILTERS_KEY)
    if isinstance(selection, FilterSelection):
        return selection
    return FilterSelection(filters=Filters(), key=repr(Filters()), description="all interactions")
