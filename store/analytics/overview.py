"""An overview of the matching interactions in one pass: the totals, one row per group, and one
row per time bucket and group, for dashboards and reports.

One GROUPING SETS query computes all three levels over the analytics store (a second one does
the metric means), instead of one full scan per level, group and bucket. The bucket width is chosen
from the matching rows' time span so that a chart of every charted group draws at most
`max_points` points: at most `max_series` groups (the busiest) get a line over time.
Columns are those of store.analytics.summary: count, errors, error_rate, latency and TTFT
p50/p95/p99, token sums, and per metric `<key>_mean`, `<key>_n`, `<key>_ci_low/high`.

The two queries run at once, each on its own cursor (DuckDB runs them without the GIL), and the
buckets are computed without `time_bucket` (`bucket_start`): on two cores the overview of 1M
interactions over a month went from ~0.8 to ~0.6 s, and one whose buckets are weeks or months
(more than a few months of data) from 8-19 s to under a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine

from store.analytics.compiler import compile_filters, metric_value
from store.analytics.questions import (
    check_filters,
    fresh,
    group_expression,
    metric_keys,
    summary_rows,
)
from store.errors import InvalidInputError
from store.filters import Filters, Scope, scope_project_id
from store.read_guard import ReadGuard

if TYPE_CHECKING:  # pandas loads with the first query (store.analytics does the same)
    import pandas as pd

#: Bucket widths, narrowest first: (name, DuckDB interval literal, approximate length).
BUCKETS: tuple[tuple[str, str, timedelta], ...] = (
    ("minute", "INTERVAL '1 minute'", timedelta(minutes=1)),
    ("5 minutes", "INTERVAL '5 minutes'", timedelta(minutes=5)),
    ("15 minutes", "INTERVAL '15 minutes'", timedelta(minutes=15)),
    ("hour", "INTERVAL '1 hour'", timedelta(hours=1)),
    ("3 hours", "INTERVAL '3 hours'", timedelta(hours=3)),
    ("6 hours", "INTERVAL '6 hours'", timedelta(hours=6)),
    ("12 hours", "INTERVAL '12 hours'", timedelta(hours=12)),
    ("day", "INTERVAL '1 day'", timedelta(days=1)),
    ("week", "INTERVAL '7 days'", timedelta(days=7)),
    ("month", "INTERVAL '1 month'", timedelta(days=30)),
)
#: time_bucket's origin for fixed-width intervals, 2000-01-03 00:00 UTC (the analytics store's
#: connection works in UTC), in microseconds since the epoch.
_ORIGIN_US = 946_857_600 * 10**6
MAX_POINTS = 400
MAX_SERIES = 8
_GROUPINGS = ("model", "variant", "project", "status")
_QUANTILES = "0.5, 0.95, 0.99"
# GROUPING(bucket, grp): 0 = per bucket and group, 2 = per group, 3 = everything.
_PER_BUCKET, _PER_GROUP, _TOTAL = 0, 2, 3


@dataclass(frozen=True)
class Overview:
    """Totals (one row, group 'all'), per group (column named after `by`), and per time bucket
    and group (columns `time` and `by`, oldest first); `bucket` names the bucket width."""

    total: pd.DataFrame
    by_group: pd.DataFrame
    over_time: pd.DataFrame
    bucket: str
    synced_at: datetime
    warnings: tuple[str, ...] = ()  # label keys of the filter that no interaction has


def choose_bucket(
    start: datetime, end: datetime, *, max_points: int = MAX_POINTS
) -> tuple[str, str]:
    """(name, interval literal) of the narrowest bucket giving at most `max_points` buckets
    between start and end (the widest one beyond that). Buckets are aligned (whole hours,
    days, ...), so a span can touch one more bucket than it fills."""
    span = max(end - start, timedelta(0))
    for name, interval, width in BUCKETS:
        if span // width + 2 <= max_points:
            return name, interval
    return BUCKETS[-1][0], BUCKETS[-1][1]


def bucket_start(interval: str, column: str) -> str:
    """SQL of the start of COLUMN's bucket of INTERVAL (a literal of BUCKETS), as
    `time_bucket(INTERVAL, COLUMN)` gives it, without it: on a TIMESTAMPTZ it goes through
    the calendar for every row, 9 s for weeks and 14 s for months over 1M interactions (0.13 s
    for hours). Fixed widths: integer arithmetic on the microseconds (a floor towards minus
    infinity from time_bucket's origin); months: date_trunc (0.27 s)."""
    if interval == "INTERVAL '1 month'":  # time_bucket's months start on the 1st, as here
        return f"date_trunc('month', {column})"
    width = next((w for _, literal, w in BUCKETS if literal == interval), None)
    if width is None:
        return f"time_bucket({interval}, {column})"
    micros = width // timedelta(microseconds=1)
    since = f"(epoch_us({column}) - {_ORIGIN_US})"
    return f"make_timestamptz(epoch_us({column}) - ((({since} % {micros}) + {micros}) % {micros}))"


T = TypeVar("T")


def _at_once(first: Callable[[], T], second: Callable[[], Any]) -> tuple[T, Any]:
    """first() here and second() in a thread, at the same time; both results (or the first
    exception)."""
    results: list[Any] = []
    failures: list[BaseException] = []

    def run_second() -> None:
        try:
            results.append(second())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run_second, name="interlog-overview-metrics", daemon=True)
    thread.start()
    try:
        value = first()
    finally:
        thread.join()
    if failures:
        raise failures[0]
    return value, results[0]


def overview(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    by: str = "model",
    max_points: int = MAX_POINTS,
    max_series: int = MAX_SERIES,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> Overview:
    """The overview of the matching interactions, grouped by model | variant | project |
    status | label:<key> (see the module docstring)."""
    if by not in _GROUPINGS and not by.startswith("label:"):
        raise InvalidInputError(
            f"bad overview grouping {by!r}: use model, variant, project, status or label:<key>"
        )
    if max_points < 1 or max_series < 1:
        raise InvalidInputError("max_points and max_series must be at least 1")
    warnings = check_filters(engine, filters, scope, guard)
    lake, freshness = fresh(engine, max_staleness, guard)
    group, name = group_expression(by, lake)
    synced = freshness.synced_at
    compiled = compile_filters(filters or Filters(), scope=scope, label_columns=lake.label_columns)
    source = (
        "FROM interactions i LEFT JOIN projects p ON p.id = i.project_id "
        f"LEFT JOIN models mo ON mo.id = i.model_id WHERE {compiled.where}"
    )
    with lake.reading(guard) as cursor:
        kinds = dict(metric_keys(cursor, scope_project_id(scope)))
        series = cursor.execute(
            f"SELECT {group} AS grp, count(*) AS n, min(i.created_at), max(i.created_at) "
            f"{source} GROUP BY grp ORDER BY n DESC, grp NULLS LAST",
            compiled.params,
        ).fetchall()
    if not series:
        import pandas as pd

        empty = pd.DataFrame()
        bucket_name = choose_bucket(synced, synced)[0]
        return Overview(empty, empty, empty, bucket_name, synced, tuple(warnings))
    named = [str(row[0]) for row in series if row[0] is not None]
    charted = named[:max_series]
    bucket, interval = choose_bucket(
        min(row[2] for row in series),
        max(row[3] for row in series),
        max_points=max(1, max_points // max(1, len(charted))),
    )
    if len(charted) == len(named):  # every group has a line
        charted_only, params = f"{group} IS NOT NULL", list(compiled.params)
    else:
        charted_only = f"list_contains(?::VARCHAR[], CAST({group} AS VARCHAR))"
        params = [charted, *compiled.params]
    sel = (
        f"SELECT i.completion_id, {group} AS grp, CASE WHEN {charted_only} "
        f"THEN {bucket_start(interval, 'i.created_at')} END AS bucket, i.status, "
        f"i.latency_ms, i.ttft_ms, i.prompt_tokens, i.completion_tokens {source}"
    )

    def read(sql: str) -> list[Any]:
        with lake.reading(guard) as cursor:
            return cursor.execute(sql, params).fetchall()

    base_sql = f"""WITH sel AS ({sel})
        SELECT GROUPING(bucket, grp), bucket, grp, count(*),
            count(*) FILTER (WHERE status = 'error'),
            quantile_cont(latency_ms::FLOAT, [{_QUANTILES}]),
            quantile_cont(ttft_ms::FLOAT, [{_QUANTILES}]),  -- as questions._summary_sql
            sum(prompt_tokens), sum(completion_tokens)
        FROM sel GROUP BY GROUPING SETS ((bucket, grp), (grp), ())
        ORDER BY bucket NULLS LAST, grp NULLS LAST"""
    metric_sql = f"""WITH sel AS ({sel}),
        per AS (  -- every completion's mean; the join below keeps the matching ones
            SELECT mv.completion_id, mv.metric_id, avg({metric_value("mv.value")}) AS v
            FROM metric_values mv GROUP BY ALL HAVING v IS NOT NULL)
        SELECT GROUPING(sel.bucket, sel.grp), sel.bucket, sel.grp, m.key, count(*),
            avg(per.v), var_samp(per.v), sum(per.v)
        FROM per JOIN sel ON sel.completion_id = per.completion_id
        JOIN metrics m ON m.id = per.metric_id
        GROUP BY GROUPING SETS ((sel.bucket, sel.grp, m.key), (sel.grp, m.key), (m.key))"""
    if kinds:
        base, metric_rows = _at_once(lambda: read(base_sql), lambda: read(metric_sql))
    else:
        base, metric_rows = read(base_sql), []

    def level(rows: Sequence[Sequence[Any]], wanted: int) -> list[tuple[Any, ...]]:
        """Rows of one grouping level, keyed by 'all', the group, or (bucket, group)."""
        out = []
        for grouping, bucket_start, grp, *rest in rows:
            if grouping != wanted or (wanted == _PER_BUCKET and bucket_start is None):
                continue
            key = {_TOTAL: "all", _PER_GROUP: grp}.get(wanted, (bucket_start, grp))
            out.append((key, *rest))
        return out

    import pandas as pd  # the frames only: imported while the queries ran elsewhere, if at all
    import pyarrow as pa

    def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
        return pa.Table.from_pylist(rows).to_pandas() if rows else pd.DataFrame()

    total = summary_rows("group", level(base, _TOTAL), level(metric_rows, _TOTAL), kinds)
    by_group = summary_rows(name, level(base, _PER_GROUP), level(metric_rows, _PER_GROUP), kinds)
    timed = summary_rows("__key", level(base, _PER_BUCKET), level(metric_rows, _PER_BUCKET), kinds)
    for row in timed:
        row["time"], row[name] = row.pop("__key")
    over_time = frame([{"time": r.pop("time"), name: r.pop(name), **r} for r in timed])
    if not over_time.empty:
        over_time["tokens"] = over_time["prompt_tokens"].fillna(0) + over_time[
            "completion_tokens"
        ].fillna(0)
    return Overview(frame(total), frame(by_group), over_time, bucket, synced, tuple(warnings))
