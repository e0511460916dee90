"""Cached reads for the pages: thin wrappers over store functions, keyed by store, data version,
scope and arguments.

Every wrapper goes through `_cached`, whose key is the call's name, the database URL, the data
version (dashboard.context: it changes only when the analytics store took new rows), the scope
key and the arguments' text form, so two principals or two filter settings never share an entry
and nothing is read again until the data changed. The engine, the principal and the filters pass
unhashed. Store reads do not check freshness themselves (`max_staleness=SYNCED_BY_VERSION`):
the version lookup did, once for the run. Pages get one page of rows or aggregates, never every row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from dashboard import timing, warmup
from dashboard.context import PageContext, sync_on_next_run
from store import analytics
from store.ab_catalog import AbTestInfo, list_ab_tests
from store.ab_report import AbTestReport
from store.analytics.overview import Overview
from store.analytics.overview import overview as store_overview
from store.catalog import list_models, project_models
from store.filters import Filters
from store.keys import Principal
from store.metrics import list_metrics
from store.models import Metric
from store.readback import (
    InteractionView,
    find_interaction,
    list_interactions,
    session_condition,
)

CACHE_TTL_SECONDS = 3600
CACHE_ENTRIES = 512
SESSION_TURNS_LIMIT = 200
SYNCED_BY_VERSION = float("inf")
T = TypeVar("T")


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without `attrs` (Streamlit cannot serialise the sync timestamp kept there)."""
    frame.attrs = {}
    return frame


def _scope_project_id(principal: Principal) -> int | None:
    return None if principal.is_admin else principal.project_id


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=CACHE_ENTRIES, show_spinner=False)
def _cached_call(
    name: str, url: str, version: str, scope_key: str, key: str, _read: Callable[[], Any]
) -> Any:
    return _read()


def _cached(ctx: PageContext, name: str, key: Any, read: Callable[[], T]) -> T:
    """read() once per (name, store, data version, scope, key); in a new process, the warm-up
    may have read it already (dashboard/warmup.py)."""
    args = (name, ctx.settings.database_url, ctx.version, ctx.scope_key, repr(key))
    if warmup.active():
        return warmup.compute(("read", *args), read)
    with timing.timed(f"read: {name}"):
        result: T = _cached_call(*args, lambda: warmup.take(("read", *args), read))
    return result


def filter_warnings(ctx: PageContext, filters: Filters) -> list[str]:
    """Warnings about the filters (label keys that no interaction in scope has); an unknown
    metric name raises InvalidInputError naming the valid ones."""
    return _cached(
        ctx,
        "filter_warnings",
        filters,
        lambda: analytics.check_filters(ctx.engine, filters, ctx.principal),
    )


def label_keys(ctx: PageContext, *, project: str | None) -> list[str]:
    """Label keys used in the visible projects (or one project)."""
    return _cached(
        ctx,
        "label_keys",
        project,
        lambda: analytics.label_keys(
            ctx.engine,
            Filters(project=project),
            scope=ctx.principal,
            max_staleness=SYNCED_BY_VERSION,
        ),
    )


def label_values(ctx: PageContext, *, key: str, project: str | None) -> list[str]:
    """Values of one label key, most used first."""

    def read() -> list[str]:
        frame = analytics.label_values(
            ctx.engine,
            key,
            Filters(project=project),
            scope=ctx.principal,
            limit=500,
            max_staleness=SYNCED_BY_VERSION,
        )
        return [str(value) for value in frame["value"].tolist()]

    return _cached(ctx, "label_values", (key, project), read)


def model_keys(ctx: PageContext, *, project: str | None) -> list[str]:
    """Models attached to the chosen project (or to any visible project)."""
    if project is not None:
        projects: tuple[str, ...] = (project,)
    elif ctx.principal.is_admin:
        projects = ()
    else:
        projects = tuple(p.key for p in ctx.projects)

    def read() -> list[str]:
        if not projects:
            return [model.key for model in list_models(ctx.engine)]
        keys: set[str] = set()
        for project_key in projects:
            keys.update(m.key for m in project_models(ctx.engine, project_key=project_key))
        return sorted(keys)

    return _cached(ctx, "model_keys", projects, read)


def _metrics(ctx: PageContext, project_id: int | None) -> list[Metric]:
    return _cached(
        ctx, "metrics", project_id, lambda: list_metrics(ctx.engine, project_id=project_id)
    )


def project_metrics(ctx: PageContext, *, project_id: int) -> list[Metric]:
    """Metric definitions of one project (the caller checked it may see the project)."""
    return _metrics(ctx, project_id)


def visible_metrics(ctx: PageContext) -> list[Metric]:
    """Metric definitions of every visible project."""
    project_id = _scope_project_id(ctx.principal)
    if project_id is None and not ctx.principal.is_admin:
        return []
    return _metrics(ctx, project_id)


def metric_keys(ctx: PageContext, *, project: str | None) -> list[str]:
    """Metric keys for the metric-range pickers."""
    chosen = ctx.project_by_key(project) if project else None
    metrics = project_metrics(ctx, project_id=chosen.id) if chosen else visible_metrics(ctx)
    return sorted({metric.key for metric in metrics})


def count_interactions(ctx: PageContext, filters: Filters) -> int:
    """How many interactions match the filters."""
    return _cached(
        ctx,
        "count",
        filters,
        lambda: analytics.count_interactions(
            ctx.engine, filters, scope=ctx.principal, max_staleness=SYNCED_BY_VERSION
        ),
    )


def interactions_page(
    ctx: PageContext, filters: Filters, *, limit: int, offset: int
) -> pd.DataFrame:
    """One page of matching interactions, newest first, with metric columns."""
    return _cached(
        ctx,
        "page",
        (filters, limit, offset),
        lambda: _plain(
            analytics.interactions(
                ctx.engine,
                filters,
                scope=ctx.principal,
                limit=limit,
                offset=offset,
                max_staleness=SYNCED_BY_VERSION,
            )
        ),
    )


def summary(ctx: PageContext, filters: Filters, *, by: str | None) -> pd.DataFrame:
    """Aggregates of the matching interactions per group (see store.analytics.summary)."""
    return _cached(
        ctx,
        "summary",
        (filters, by),
        lambda: _plain(
            analytics.summary(
                ctx.engine, filters, scope=ctx.principal, by=by, max_staleness=SYNCED_BY_VERSION
            )
        ),
    )


def overview(ctx: PageContext, filters: Filters, *, by: str = "model") -> Overview:
    """Totals, per group and per time bucket and group, in one pass (see store.overview)."""
    return _cached(
        ctx,
        "overview",
        (filters, by),
        lambda: store_overview(
            ctx.engine, filters, scope=ctx.principal, by=by, max_staleness=SYNCED_BY_VERSION
        ),
    )


def find_conversation(ctx: PageContext, completion_id: str | uuid.UUID) -> InteractionView | None:
    """One interaction with its scores, read fresh from the store (scores show at once)."""
    return find_interaction(
        ctx.engine, completion_id=completion_id, project_id=_scope_project_id(ctx.principal)
    )


def session_turns(ctx: PageContext, session_id: uuid.UUID) -> list[InteractionView]:
    """The turns of a session, oldest first (at most SESSION_TURNS_LIMIT), read fresh."""
    page = list_interactions(
        ctx.engine,
        project_id=_scope_project_id(ctx.principal),
        conditions=[session_condition(session_id)],
        limit=SESSION_TURNS_LIMIT,
        ascending=True,
    )
    return page.items


def ab_tests(ctx: PageContext) -> list[AbTestInfo]:
    """A/B tests of the visible projects, newest first."""
    ids = tuple(ctx.project_ids) if ctx.project_ids is not None else None
    return _cached(ctx, "ab_tests", ids, lambda: list_ab_tests(ctx.engine, project_ids=ids))


def variant_traffic(ctx: PageContext, project: str, test_key: str) -> dict[str, int]:
    """Interactions routed to each variant of an A/B test."""
    frame = summary(ctx, Filters(project=project, ab_test=test_key), by="variant")
    return {str(row["variant"]): int(row["count"]) for _, row in frame.iterrows() if row["variant"]}


def ab_report(ctx: PageContext, project: str, key: str) -> AbTestReport:
    """The statistics of one A/B test (see store.ab_report)."""
    return _cached(
        ctx,
        "ab_report",
        (project, key),
        lambda: analytics.ab_test_report(
            ctx.engine, key, scope=ctx.principal, project=project, max_staleness=SYNCED_BY_VERSION
        ),
    )


def forget_cached_reads() -> None:
    """After the dashboard wrote something (a score, a metric): drop cached reads, and bring
    the analytics store up to date on the next run so the write shows at once."""
    st.cache_data.clear()
    sync_on_next_run()
