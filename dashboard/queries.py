"""Cached reads for the pages: thin wrappers over store functions, keyed by store, scope, filters.

Every wrapper takes the PageContext (its engine and principal are passed to the store unhashed,
as `_engine` / `_scope`) plus hashable keys: the database URL, the scope key and the filters'
text form, so two principals or two filter settings never share an entry. TTLs are short: the
store is live. Pages get one page of rows or aggregates, never every row.
"""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from dashboard.context import PageContext
from store import analytics
from store.ab_catalog import AbTestInfo, list_ab_tests
from store.ab_report import AbTestReport
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

TTL_SECONDS = 10
PICKER_TTL_SECONDS = 30
SESSION_TURNS_LIMIT = 200


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without `attrs` (Streamlit cannot serialise the sync timestamp kept there)."""
    frame.attrs = {}
    return frame


def _scope_project_id(principal: Principal) -> int | None:
    return None if principal.is_admin else principal.project_id


@st.cache_data(ttl=PICKER_TTL_SECONDS, show_spinner=False)
def _label_keys(
    _engine: Engine, url: str, scope_key: str, project: str | None, _scope: Any
) -> list[str]:
    return analytics.label_keys(_engine, Filters(project=project), scope=_scope)


def label_keys(ctx: PageContext, *, project: str | None) -> list[str]:
    """Label keys used in the visible projects (or one project)."""
    return _label_keys(ctx.engine, ctx.settings.database_url, ctx.scope_key, project, ctx.principal)


@st.cache_data(ttl=PICKER_TTL_SECONDS, show_spinner=False)
def _label_values(
    _engine: Engine, url: str, scope_key: str, key: str, project: str | None, _scope: Any
) -> list[str]:
    frame = analytics.label_values(_engine, key, Filters(project=project), scope=_scope, limit=500)
    return [str(value) for value in frame["value"].tolist()]


def label_values(ctx: PageContext, *, key: str, project: str | None) -> list[str]:
    """Values of one label key, most used first."""
    return _label_values(
        ctx.engine, ctx.settings.database_url, ctx.scope_key, key, project, ctx.principal
    )


@st.cache_data(ttl=PICKER_TTL_SECONDS, show_spinner=False)
def _model_keys(_engine: Engine, url: str, scope_key: str, projects: tuple[str, ...]) -> list[str]:
    if not projects:
        return [model.key for model in list_models(_engine)]
    keys: set[str] = set()
    for project_key in projects:
        keys.update(model.key for model in project_models(_engine, project_key=project_key))
    return sorted(keys)


def model_keys(ctx: PageContext, *, project: str | None) -> list[str]:
    """Models attached to the chosen project (or to any visible project)."""
    if project is not None:
        projects: tuple[str, ...] = (project,)
    elif ctx.principal.is_admin:
        projects = ()
    else:
        projects = tuple(p.key for p in ctx.projects)
    return _model_keys(ctx.engine, ctx.settings.database_url, ctx.scope_key, projects)


@st.cache_data(ttl=PICKER_TTL_SECONDS, show_spinner=False)
def _metrics(_engine: Engine, url: str, project_id: int | None) -> list[Metric]:
    return list_metrics(_engine, project_id=project_id)


def project_metrics(ctx: PageContext, *, project_id: int) -> list[Metric]:
    """Metric definitions of one project (the caller checked it may see the project)."""
    return _metrics(ctx.engine, ctx.settings.database_url, project_id)


def visible_metrics(ctx: PageContext) -> list[Metric]:
    """Metric definitions of every visible project."""
    project_id = _scope_project_id(ctx.principal)
    if project_id is None and not ctx.principal.is_admin:
        return []
    return _metrics(ctx.engine, ctx.settings.database_url, project_id)


def metric_keys(ctx: PageContext, *, project: str | None) -> list[str]:
    """Metric keys for the metric-range pickers."""
    chosen = ctx.project_by_key(project) if project else None
    metrics = project_metrics(ctx, project_id=chosen.id) if chosen else visible_metrics(ctx)
    return sorted({metric.key for metric in metrics})


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _count(
    _engine: Engine, url: str, scope_key: str, filters_key: str, _f: Filters, _s: Any
) -> int:
    return analytics.count_interactions(_engine, _f, scope=_s)


def count_interactions(ctx: PageContext, filters: Filters) -> int:
    """How many interactions match the filters."""
    return _count(
        ctx.engine, ctx.settings.database_url, ctx.scope_key, repr(filters), filters, ctx.principal
    )


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _page(
    _engine: Engine,
    url: str,
    scope_key: str,
    filters_key: str,
    limit: int,
    offset: int,
    _f: Filters,
    _s: Any,
) -> pd.DataFrame:
    return _plain(analytics.interactions(_engine, _f, scope=_s, limit=limit, offset=offset))


def interactions_page(
    ctx: PageContext, filters: Filters, *, limit: int, offset: int
) -> pd.DataFrame:
    """One page of matching interactions, newest first, with metric columns."""
    return _page(
        ctx.engine,
        ctx.settings.database_url,
        ctx.scope_key,
        repr(filters),
        limit,
        offset,
        filters,
        ctx.principal,
    )


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _summary(
    _engine: Engine,
    url: str,
    scope_key: str,
    filters_key: str,
    by: str | None,
    _f: Filters,
    _s: Any,
) -> pd.DataFrame:
    return _plain(analytics.summary(_engine, _f, scope=_s, by=by))


def summary(ctx: PageContext, filters: Filters, *, by: str | None) -> pd.DataFrame:
    """Aggregates of the matching interactions per group (see store.analytics.summary)."""
    return _summary(
        ctx.engine,
        ctx.settings.database_url,
        ctx.scope_key,
        repr(filters),
        by,
        filters,
        ctx.principal,
    )


def find_conversation(ctx: PageContext, completion_id: str | uuid.UUID) -> InteractionView | None:
    """One interaction with its scores, read fresh from the store (scores show at once)."""
    return find_interaction(
        ctx.engine, completion_id=completion_id, project_id=_scope_project_id(ctx.principal)
    )


def session_turns(ctx: PageContext, session_id: uuid.UUID) -> list[InteractionView]:
    """The turns of a session, oldest first (at most SESSION_TURNS_LIMIT)."""
    page = list_interactions(
        ctx.engine,
        project_id=_scope_project_id(ctx.principal),
        conditions=[session_condition(session_id)],
        limit=SESSION_TURNS_LIMIT,
        ascending=True,
    )
    return page.items


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _ab_tests(
    _engine: Engine, url: str, scope_key: str, project_ids: tuple[int, ...] | None
) -> list[AbTestInfo]:
    return list_ab_tests(_engine, project_ids=project_ids)


def ab_tests(ctx: PageContext) -> list[AbTestInfo]:
    """A/B tests of the visible projects, newest first."""
    ids = ctx.project_ids
    return _ab_tests(
        ctx.engine,
        ctx.settings.database_url,
        ctx.scope_key,
        tuple(ids) if ids is not None else None,
    )


def variant_traffic(ctx: PageContext, project: str, test_key: str) -> dict[str, int]:
    """Interactions routed to each variant of an A/B test."""
    frame = summary(ctx, Filters(project=project, ab_test=test_key), by="variant")
    return {str(row["variant"]): int(row["count"]) for _, row in frame.iterrows() if row["variant"]}


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _ab_report(
    _engine: Engine, url: str, scope_key: str, project: str, key: str, _s: Any
) -> AbTestReport:
    return analytics.ab_test_report(_engine, key, scope=_s, project=project)


def ab_report(ctx: PageContext, project: str, key: str) -> AbTestReport:
    """The statistics of one A/B test (see store.ab_report)."""
    return _ab_report(
        ctx.engine, ctx.settings.database_url, ctx.scope_key, project, key, ctx.principal
    )


def forget_cached_reads() -> None:
    """Drop cached reads after the dashboard wrote something (a score, a metric)."""
    st.cache_data.clear()
