"""Analytics over one shared, persisted, columnar analytics store (a DuckLake).

    layout.py     its tables, derived from store.models
    lake.py       where it lives; each process's DuckDB connection to it; query guards
    changes.py    what changed in the relational store since a position
    sync.py       the one sync owner's cycles and maintenance; readers' freshness
    owner.py      the sync owner as a process (gateways start one)
    compiler.py   store.filters compiled to DuckDB SQL
    questions.py  the named questions (summary, interactions, label values, A/B reports, ...)
    overview.py   totals, groups and time buckets in one pass (the dashboard's overview)
    version.py    a token of the data, for caches

`from store import analytics; analytics.summary(engine, filters, scope=...)`: the questions are
re-exported here, imported on first use, so that a process that needs only a part (the sync
owner, a build worker, the reader's start) does not import them all (pandas, pyarrow, ...).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.analytics.questions import (
        AbTestReport,
        Answer,
        Filters,
        Freshness,
        LabelFilter,
        MetricFilter,
        Scope,
        ab_test_report,
        check_filters,
        count_interactions,
        get_interaction,
        interaction_batches,
        interactions,
        label_keys,
        label_values,
        label_values_answer,
        metric_definitions,
        parse_time,
        run_sql,
        summary,
        summary_answer,
        synced_at,
    )

__all__ = [
    "AbTestReport",
    "Answer",
    "Filters",
    "Freshness",
    "LabelFilter",
    "MetricFilter",
    "Scope",
    "ab_test_report",
    "check_filters",
    "count_interactions",
    "get_interaction",
    "interaction_batches",
    "interactions",
    "label_keys",
    "label_values",
    "label_values_answer",
    "metric_definitions",
    "parse_time",
    "run_sql",
    "summary",
    "summary_answer",
    "synced_at",
]


def __getattr__(name: str) -> Any:
    """The questions' names, imported from store.analytics.questions on first use."""
    if name in __all__:
        from store.analytics import questions

        return getattr(questions, name)
    raise AttributeError(f"module 'store.analytics' has no attribute {name!r}")
