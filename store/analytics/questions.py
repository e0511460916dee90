"""Analytics: one named, typed function per question, answered by DuckDB over the analytics store.

Every function takes the store's `engine`, a `Filters` value (store.filters) and the caller's
`scope` (a Principal or a project id: a project key only ever sees its own project's rows).
The answer reads the shared analytics store (store/analytics/lake.py), columns as needed, never
a copy of the store: first it makes sure the analytics store holds every change older than
`max_staleness` seconds (store/analytics/sync.py: a cheap check of the relational store, and a
catch-up or a short wait when something is missing). Every DataFrame carries
`df.attrs["synced_at"]`: every change committed to the store before that moment is included;
`df.attrs["freshness"]` also says whether newer changes were left out (`behind`).

Metric values join in per completion as the mean of its values for that metric (a bool metric
becomes its true-rate, 0..1); values outside +-METRIC_VALUE_LIMIT (stored before that limit
existed) are left out of every aggregate, so no stored value can make a question fail. Labels
come back as JSON text, as do messages and params. A `ReadGuard` bounds a question's time
and lets a server cancel it when its client goes away.
"""

from __future__ import annotations

import math
import re
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from store.ab_report import AbTestReport, build_ab_test_report
from store.analytics.compiler import compile_filters, label_expression, metric_value
from store.analytics.lake import CATALOG_SECONDS, ROW_GROUP_ROWS, Lake, lake_for
from store.analytics.sync import Freshness, FreshnessCheck
from store.errors import (
    AnalyticsNotReadyError,
    InvalidInputError,
    NotFoundError,
    QueryCancelledError,
)
from store.filters import Filters, LabelFilter, MetricFilter, Scope, parse_time, scope_project_id
from store.read_guard import ReadGuard, read_connection
from store.readback import check_metric_keys, label_key_warnings
from store.stats import mean_interval, proportion_interval

if TYPE_CHECKING:  # pandas and pyarrow load on the first query: the gateway imports this module
    import pandas as pd
    import pyarrow as pa

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

#: Columns of `interactions()` before the metric columns, in order.
INTERACTION_COLUMNS = (
    "completion_id", "created_at", "project", "model", "ab_test", "ab_variant", "session_id",
    "user_id", "request_id", "choice_index", "replica", "status", "error", "finish_reason",
    "source", "prompt_tokens", "completion_tokens", "ttft_ms", "latency_ms", "labels",
    "messages", "params", "completion", "tool_calls",
)  # fmt: skip
_SELECT = """
    CAST(i.completion_id AS VARCHAR) AS completion_id, i.created_at, p.key AS project,
    mo.key AS model, ab.key AS ab_test, i.ab_variant, CAST(i.session_id AS VARCHAR) AS session_id,
    i.user_id, i.request_id, i.choice_index, i.replica, i.status, i.error, i.finish_reason,
    i.source, i.prompt_tokens, i.completion_tokens, i.ttft_ms, i.latency_ms,
    CAST(to_json(i.labels) AS VARCHAR) AS labels, i.messages, i.params, i.completion,
    i.tool_calls"""
_JOINS = """
    LEFT JOIN projects p ON p.id = i.project_id
    LEFT JOIN models mo ON mo.id = i.model_id
    LEFT JOIN ab_tests ab ON ab.id = i.ab_test_id"""
_PERCENTILES = (50, 95, 99)
_BY = re.compile(r"^(model|variant|day|hour|project|status|label:.+)$")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def fresh(
    engine: Engine, max_staleness: float | None, guard: ReadGuard | None = None
) -> tuple[Lake, Freshness]:
    """The process's analytics store, holding every change older than max_staleness seconds
    (default 1 s), and how fresh it is."""
    lake = lake_for(engine)
    check = lake.freshness_check
    if check is None:
        check = lake.freshness_check = FreshnessCheck(lake)
    staleness = 1.0 if max_staleness is None else max_staleness
    freshness = check.ensure(staleness)
    if guard is not None and guard.cancelled:
        raise QueryCancelledError("the query was cancelled: the client went away")
    con = lake.open()
    if con is None:
        raise AnalyticsNotReadyError("the analytics store is not built yet")
    _cache_parquet_metadata(con)
    lake.refresh_catalog(max_age=min(staleness, CATALOG_SECONDS))
    return lake, freshness


#: DuckDB instances whose Parquet metadata cache is on (see `_cache_parquet_metadata`).
_metadata_cached: weakref.WeakSet[Any] = weakref.WeakSet()


def _cache_parquet_metadata(con: Any) -> None:
    """Keep the footers of the Parquet files read in memory, for every question of this
    process's DuckDB instance (set once per instance).

    Every question reads the same files again, and parsing a footer (a schema of ~45 columns,
    statistics per row group) took ~0.5 ms a file: ~5 ms of CPU per scan of interactions, ~7%
    of a label-filtered summary's (1M interactions in 10 files; it scans them twice). DuckLake
    never changes a file once written (new rows, deletions and compactions make new files),
    and DuckDB checks a file's modification time before using its cached footer; the cache is
    an LRU within the memory limit."""
    if con in _metadata_cached:
        return
    cursor = con.cursor()
    try:
        cursor.execute("SET GLOBAL parquet_metadata_cache = true")
    finally:
        cursor.close()
    _metadata_cached.add(con)


def check_filters(
    engine: Engine, filters: Filters | None, scope: Scope, guard: ReadGuard | None = None
) -> list[str]:
    """Refuse metric conditions naming a metric that no project in scope has (InvalidInputError
    naming the valid ones), and warn of label keys that no interaction in scope has (the
    answer is then empty, e.g. `project=x` asked as a label). Reads the relational store's
    indexes, so a typo is told apart from a filter that matches nothing."""
    if filters is None or not (filters.metric_filters or filters.label_filters):
        return []
    with read_connection(engine, guard) as connection:
        project_id = scope_project_id(scope)
        check_metric_keys(connection, filters, project_id)
        return label_key_warnings(connection, filters, project_id)


@dataclass
class _FilterCheck:
    """`check_filters` for one question: before its answer, or after it when the answer can
    stand in for the check.

    Rows matching a label condition `=`, `in` or `exists` prove that its key exists in scope, so
    when that is all the check would look at, it is left out for an answer with rows and asked
    only for an empty one (it costs a connection and an index probe of the store: ~3 ms of a
    ~100 ms summary on PostgreSQL, ~1.5 ms on SQLite). Metric conditions are refused before
    anything is answered, and a `!=` condition also matches rows without its key: filters with
    either are checked first, as `check_filters` always was."""

    engine: Engine
    filters: Filters | None
    scope: Scope
    guard: ReadGuard | None
    _warnings: list[str] | None = None

    def before(self) -> None:
        """Check now (refusing unknown metrics), unless the answer can stand in for it."""
        if not _answer_vouches(self.filters):
            self._warnings = self._check()

    def warnings(self, *, matched: bool) -> list[str]:
        """The filters' warnings, once the answer has said whether any row MATCHED them."""
        if self._warnings is None:
            self._warnings = [] if matched else self._check()
        return self._warnings

    def _check(self) -> list[str]:
        return check_filters(self.engine, self.filters, self.scope, self.guard)


def _answer_vouches(filters: Filters | None) -> bool:
    """Whether rows matching FILTERS prove that every key `check_filters` looks up exists: label
    conditions, all `=`, `in` or `exists`, and no metric condition."""
    if filters is None or filters.metric_filters or not filters.label_filters:
        return False
    return all(label.op != "!=" for label in filters.label_filters)


@dataclass(frozen=True)
class Answer:
    """A question's rows as plain Python records, how fresh they are, and the filter's
    warnings. Servers answer from it without pandas or pyarrow (a gateway stays small);
    `to_pandas()` is the notebook's DataFrame."""

    rows: list[dict[str, Any]]
    freshness: Freshness
    warnings: tuple[str, ...] = ()
    columns: tuple[str, ...] | None = None  # the DataFrame's columns when there is no row

    def records(self) -> list[dict[str, Any]]:
        return self.rows

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame whose attrs say `synced_at`, `freshness` and `warnings`."""
        import pandas as pd

        frame = pd.DataFrame.from_records(self.rows, columns=self.columns)
        frame.attrs["synced_at"] = self.freshness.synced_at
        frame.attrs["freshness"] = self.freshness.to_dict()
        frame.attrs["warnings"] = list(self.warnings)
        return frame


def _frame(table: pa.Table, freshness: Freshness, warnings: Sequence[str] = ()) -> pd.DataFrame:
    frame = table.to_pandas()
    frame.attrs["synced_at"] = freshness.synced_at
    frame.attrs["freshness"] = freshness.to_dict()
    frame.attrs["warnings"] = list(warnings)
    return frame


def metric_definitions(
    engine: Engine,
    *,
    scope: Scope,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> pd.DataFrame:
    """Metrics visible to the scope: project, key, name, kind (scalar/bool) and scoring."""
    lake, freshness = fresh(engine, max_staleness, guard)
    project_id = scope_project_id(scope)
    sql = (
        "SELECT p.key AS project, m.key, m.name, m.kind, m.scoring FROM metrics m "
        "JOIN projects p ON p.id = m.project_id"
        + (" WHERE m.project_id = ?" if project_id is not None else "")
        + " ORDER BY p.key, m.key"
    )
    params = [project_id] if project_id is not None else []
    with lake.reading(guard) as cursor:
        return _frame(cursor.execute(sql, params).to_arrow_table(), freshness)


def metric_keys(cursor: Any, project_id: int | None) -> list[tuple[str, str]]:
    """(key, kind) of the metrics in scope, by key; a key that is bool everywhere is bool.

    Grouped here rather than by DuckDB: the table has a row per metric, and a DuckDB aggregate
    costs ~1 ms however few its rows (it schedules tasks on its threads), a plain scan ~0.1 ms;
    every summary and page asks this first."""
    sql = "SELECT key, kind FROM metrics"
    params: list[Any] = []
    if project_id is not None:
        sql += " WHERE project_id = ?"
        params.append(project_id)
    kinds: dict[str, list[str]] = {}
    for key, kind in cursor.execute(sql, params).fetchall():
        kinds.setdefault(key, [])
        if kind is not None:  # as bool_and: a NULL kind does not count
            kinds[key].append(kind)
    return [(key, _kind(kinds[key])) for key in sorted(kinds)]


def _kind(kinds: Sequence[str]) -> str:
    """'bool' when every project's metric of a key is a bool, else 'scalar'."""
    return "bool" if kinds and all(kind == "bool" for kind in kinds) else "scalar"


def _interactions_sql(
    lake: Lake,
    filters: Filters,
    scope: Scope,
    keys: Sequence[str],
    *,
    limit: int | None,
    offset: int,
) -> tuple[str, list[Any]]:
    """A page: select and order first, then join metrics of the page only. Everything: one
    pass over interactions joined with every metric pivot, unordered (sorting a million wide
    rows would double the time; sort the DataFrame if the order matters)."""
    compiled = compile_filters(filters, scope=scope, label_columns=lake.label_columns)
    taken = set(INTERACTION_COLUMNS)
    names = [key if key not in taken else f"metric_{key}" for key in keys]
    pivots = ", ".join(f"avg(v.value) FILTER (WHERE v.key = ?) AS {_quote(name)}" for name in names)
    metric_columns = "".join(f", piv.{_quote(name)}" for name in names)
    order = "ORDER BY i.created_at DESC, i.completion_id DESC"
    per_completion = f"""
        SELECT mv.completion_id, m.key, avg({metric_value("mv.value")}) AS value
        FROM metric_values mv JOIN metrics m ON m.id = mv.metric_id"""
    if limit is None:
        # Metrics of the matching completions only (a narrow pass over the filter first), so
        # the join never holds message text in a hash table and the rows stream.
        ctes, params = "", [*keys, *compiled.params]
        if keys:
            ctes = f"""WITH v AS ({per_completion}
                WHERE mv.completion_id IN (
                    SELECT i.completion_id FROM interactions i WHERE {compiled.where})
                GROUP BY ALL),
            piv AS (SELECT v.completion_id, {pivots} FROM v GROUP BY v.completion_id)"""
            params = [*compiled.params, *keys, *compiled.params]
        join = " LEFT JOIN piv ON piv.completion_id = i.completion_id" if keys else ""
        sql = f"""{ctes}
            SELECT {_SELECT}{metric_columns} FROM interactions i {_JOINS}{join}
            WHERE {compiled.where}"""
        return sql, params
    params = [*compiled.params, limit, offset, *keys]
    metric_cte = ""
    metric_join = ""
    if keys:
        metric_cte = f"""
        , v AS ({per_completion}
            WHERE mv.completion_id IN (SELECT completion_id FROM sel) GROUP BY ALL)
        , piv AS (SELECT v.completion_id, {pivots} FROM v GROUP BY v.completion_id)"""
        metric_join = " LEFT JOIN piv ON piv.completion_id = i.completion_id"
    sql = f"""
        WITH sel AS (
            SELECT i.* FROM interactions i WHERE {compiled.where} {order}
            LIMIT ? OFFSET ?){metric_cte}
        SELECT {_SELECT}{metric_columns}
        FROM sel i {_JOINS}{metric_join} {order}"""
    return sql, params


def interactions(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    limit: int | None = 100,
    offset: int = 0,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> pd.DataFrame:
    """Matching interactions, one column per metric key: a page newest first, or with
    `limit=None` every row in storage order (sort it if needed)."""
    if limit is not None and (limit < 0 or offset < 0):
        raise InvalidInputError("limit and offset must not be negative")
    check = _FilterCheck(engine, filters, scope, guard)
    check.before()
    lake, freshness = fresh(engine, max_staleness, guard)
    with lake.reading(guard) as cursor:
        keys = [key for key, _ in metric_keys(cursor, scope_project_id(scope))]
        sql, params = _interactions_sql(
            lake, filters or Filters(), scope, keys, limit=limit, offset=offset
        )
        table = cursor.execute(sql, params).to_arrow_table()
    return _frame(table, freshness, check.warnings(matched=table.num_rows > 0))


def interaction_batches(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    batch_size: int = 50_000,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> Iterator[pa.RecordBatch]:
    """Every matching interaction (with metric columns) as Arrow batches (at least one), read
    from one snapshot of the analytics store however long the consumer takes."""
    check_filters(engine, filters, scope, guard)
    lake, _ = fresh(engine, max_staleness, guard)
    with lake.reading(guard) as cursor:
        keys = [key for key, _ in metric_keys(cursor, scope_project_id(scope))]
        sql, params = _interactions_sql(
            lake, filters or Filters(), scope, keys, limit=None, offset=0
        )
        reader = cursor.execute(sql, params).to_arrow_reader(batch_size)  # streams
        empty = True
        for batch in reader:
            empty = False
            yield batch
        if empty:  # one empty batch, so consumers still learn the schema
            import pyarrow as pa

            yield pa.RecordBatch.from_pylist([], schema=reader.schema)


def copy_interactions(
    engine: Engine,
    path: str | Path,
    filters: Filters | None = None,
    *,
    scope: Scope,
    format: str,
    max_staleness: float | None = None,
) -> int:
    """Write every matching interaction (the columns of `interactions`) to a Parquet or CSV
    file with DuckDB's own writer (parallel, no Python object per row); returns the rows."""
    if format not in ("parquet", "csv"):
        raise InvalidInputError(f"DuckDB writes parquet or csv files, not {format!r}")
    check_filters(engine, filters, scope)
    lake, _ = fresh(engine, max_staleness)
    options = (  # row groups of ROW_GROUP_ROWS: DuckDB buffers one per thread
        f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
        if format == "parquet"
        else "FORMAT csv, HEADER"
    )
    target = "'" + str(Path(path)).replace("'", "''") + "'"
    with lake.reading() as cursor:
        keys = [key for key, _ in metric_keys(cursor, scope_project_id(scope))]
        sql, params = _interactions_sql(
            lake, filters or Filters(), scope, keys, limit=None, offset=0
        )
        row = cursor.execute(f"COPY ({sql}) TO {target} ({options})", params).fetchone()
    return int(row[0]) if row else 0


def count_interactions(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> int:
    """How many interactions match (for pagers and progress bars)."""
    _FilterCheck(engine, filters, scope, guard).before()  # its warnings are not returned
    lake, _ = fresh(engine, max_staleness, guard)
    compiled = compile_filters(filters or Filters(), scope=scope, label_columns=lake.label_columns)
    with lake.reading(guard) as cursor:
        row = cursor.execute(
            f"SELECT count(*) FROM interactions i WHERE {compiled.where}", compiled.params
        ).fetchone()
    return int(row[0]) if row else 0


def get_interaction(
    engine: Engine,
    completion_id: str,
    *,
    scope: Scope,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> dict[str, Any]:
    """One interaction as a dict with all its `metric_values`; NotFoundError outside scope."""
    try:
        wanted = str(uuid.UUID(str(completion_id)))
    except ValueError as exc:
        raise InvalidInputError(f"bad completion id {completion_id!r}") from exc
    lake, _ = fresh(engine, max_staleness, guard)
    compiled = compile_filters(Filters(), scope=scope, label_columns=lake.label_columns)
    with lake.reading(guard) as cursor:
        table = cursor.execute(
            f"SELECT {_SELECT} FROM interactions i {_JOINS} "
            f"WHERE {compiled.where} AND i.completion_id = ?",
            [*compiled.params, wanted],
        ).to_arrow_table()
        if table.num_rows == 0:
            raise NotFoundError("interaction", completion_id)
        row = table.to_pylist()[0]
        row["metric_values"] = (
            cursor.execute(
                "SELECT m.key, mv.value, mv.details, mv.reason, mv.user_id, "
                "CAST(mv.id AS VARCHAR) AS id, mv.created_at FROM metric_values mv "
                "JOIN metrics m ON m.id = mv.metric_id WHERE mv.completion_id = ? "
                "ORDER BY mv.created_at, mv.id",
                [wanted],
            )
            .to_arrow_table()
            .to_pylist()
        )
    return row


def check_grouping(by: str | None) -> None:
    """InvalidInputError for a grouping `summary` does not know."""
    if by is not None and not _BY.match(by):
        raise InvalidInputError(
            f"bad summary grouping {by!r}: use model, variant, day, hour, project, status "
            "or label:<key>"
        )


def group_expression(by: str | None, lake: Lake) -> tuple[str, str]:
    """(SQL expression, output column name) of a summary's grouping."""
    check_grouping(by)
    if by is None:
        return "'all'", "group"
    if by.startswith("label:"):
        key = by.removeprefix("label:")
        return label_expression(key, lake.label_columns), key
    return {
        "model": ("mo.key", "model"),
        "variant": ("i.ab_variant", "variant"),
        "project": ("p.key", "project"),
        "status": ("i.status", "status"),
        "day": ("date_trunc('day', i.created_at)", "day"),
        "hour": ("date_trunc('hour', i.created_at)", "hour"),
    }[by]


def summary(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    by: str | None = "model",
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> pd.DataFrame:
    """The summary (see `summary_answer`) as a DataFrame."""
    return summary_answer(
        engine, filters, scope=scope, by=by, max_staleness=max_staleness, guard=guard
    ).to_pandas()


def summary_answer(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    by: str | None = "model",
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> Answer:
    """Per group (model | variant | day | hour | project | status | label:<key> | None = all):
    count, errors, error_rate, latency and TTFT p50/p95/p99 (ms), token sums, and per metric key
    `<key>_mean`, `<key>_n` (completions scored) and `<key>_ci_low/high` (95%: Student-t for
    scalars, Wilson for bools)."""
    check_grouping(by)
    check = _FilterCheck(engine, filters, scope, guard)
    check.before()
    lake, freshness = fresh(engine, max_staleness, guard)
    group, name = group_expression(by, lake)
    compiled = compile_filters(filters or Filters(), scope=scope, label_columns=lake.label_columns)
    joins = " LEFT JOIN projects p ON p.id = i.project_id" if "p.key" in group else ""
    joins += " LEFT JOIN models mo ON mo.id = i.model_id" if "mo.key" in group else ""
    sel = (
        f"SELECT i.completion_id, {group} AS grp, i.status, i.latency_ms, i.ttft_ms, "
        f"i.prompt_tokens, i.completion_tokens FROM interactions i{joins} "
        f"WHERE {compiled.where}"
    )
    with lake.reading(guard) as cursor:
        kinds = dict(metric_keys(cursor, scope_project_id(scope)))
        rows = cursor.execute(_summary_sql(sel, metrics=bool(kinds)), compiled.params).fetchall()
    base = [row[:7] for row in rows]
    metric_rows = [
        (row[0], m["key"], m["n"], m["mean"], m["var"], m["total"])
        for row in rows
        for m in (row[7] or [] if kinds else [])
    ]
    summary = summary_rows(name, base, metric_rows, kinds)
    return Answer(summary, freshness, tuple(check.warnings(matched=bool(rows))))


def _float_digits(value: float | None) -> float | None:
    """A percentile computed over 4-byte floats (`_summary_sql`) with the 7 significant digits
    it has, not the binary noise beyond them (7.805497, not 7.805497169494629)."""
    return None if value is None else float(f"{value:.7g}")


def _summary_sql(sel: str, *, metrics: bool) -> str:
    """One statement, one pass over the matching rows (`sel`, materialized once): per group
    the base aggregates, and (METRICS) a list of per-metric-key aggregates of the completions'
    metric means: n, mean, variance and sum (values beyond the documented range left out).

    Percentiles are exact over the group's values taken as 4-byte floats: an exact quantile
    keeps every value of its group in memory, outside DuckDB's memory limit (lake.py), and
    halving them kept a summary of 10M rows under 1 GB; a float keeps 7 significant digits, a
    latency of 100 s to the millisecond's hundredth."""
    quantiles = ", ".join(str(q / 100) for q in _PERCENTILES)
    base = f"""
        base AS (
            SELECT grp, count(*) AS count, count(*) FILTER (WHERE status = 'error') AS errors,
                quantile_cont(latency_ms::FLOAT, [{quantiles}]) AS latency,
                quantile_cont(ttft_ms::FLOAT, [{quantiles}]) AS ttft,
                sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens
            FROM sel GROUP BY grp)"""
    if not metrics:
        return f"""WITH sel AS NOT MATERIALIZED ({sel}), {base}
            SELECT *, NULL AS metrics FROM base ORDER BY grp NULLS LAST"""
    return f"""WITH sel AS NOT MATERIALIZED ({sel}), {base},
        per AS (
            SELECT sel.grp, mv.completion_id, mv.metric_id, avg({metric_value("mv.value")}) AS v
            FROM metric_values mv JOIN sel ON sel.completion_id = mv.completion_id
            GROUP BY ALL HAVING v IS NOT NULL),
        agg AS (
            SELECT per.grp, m.key, count(*) AS n, avg(per.v) AS mean, var_samp(per.v) AS var,
                sum(per.v) AS total
            FROM per JOIN metrics m ON m.id = per.metric_id GROUP BY ALL),
        met AS (
            SELECT grp, list(struct_pack(key := key, n := n, mean := mean, var := var,
                total := total)) AS metrics
            FROM agg GROUP BY grp)
        SELECT base.*, met.metrics FROM base
        LEFT JOIN met ON base.grp IS NOT DISTINCT FROM met.grp ORDER BY base.grp NULLS LAST"""


def _number(value: Any) -> float | None:
    """A finite float, or None (a sum of huge values may be infinite)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def summary_rows(
    name: str,
    base: Sequence[Sequence[Any]],
    metric_rows: Sequence[Sequence[Any]],
    kinds: dict[str, str],
) -> list[dict[str, Any]]:
    """Summary rows (see `summary`) from the base and metric aggregate rows."""
    metrics: dict[tuple[Any, str], Sequence[Any]] = {(r[0], r[1]): r for r in metric_rows}
    rows = []
    for grp, count, errors, latency, ttft, prompt_tokens, completion_tokens in base:
        row: dict[str, Any] = {name: grp, "count": count, "errors": errors}
        row["error_rate"] = errors / count if count else None
        for label, values in (("latency", latency), ("ttft", ttft)):
            for q, value in zip(_PERCENTILES, values or [None] * 3, strict=True):
                row[f"{label}_p{q}"] = _float_digits(value)
        row["prompt_tokens"] = None if prompt_tokens is None else int(prompt_tokens)
        row["completion_tokens"] = None if completion_tokens is None else int(completion_tokens)
        for key, kind in kinds.items():
            found = metrics.get((grp, key))
            n = int(found[2]) if found else 0
            mean = _number(found[3]) if found else None
            if kind == "bool":
                interval = proportion_interval(n, _number(found[5]) or 0.0 if found else 0.0)
            else:
                interval = mean_interval(n, mean, _number(found[4]) if found else None)
            row[f"{key}_mean"] = mean
            row[f"{key}_n"] = n
            row[f"{key}_ci_low"] = interval.low
            row[f"{key}_ci_high"] = interval.high
        rows.append(row)
    return rows


#: The label keys of one project (:project), one index probe per key: a loose index scan of
#: interaction_label's (project_id, key, value) index, on SQLite and PostgreSQL alike.
_PROJECT_LABEL_KEYS = """
WITH RECURSIVE k(key) AS (
    SELECT (SELECT min(key) FROM interaction_label WHERE project_id = :project)
    UNION ALL
    SELECT (SELECT min(key) FROM interaction_label WHERE project_id = :project AND key > k.key)
    FROM k WHERE k.key IS NOT NULL)
SELECT key FROM k WHERE key IS NOT NULL"""


def label_keys(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> list[str]:
    """Label keys used by matching interactions, sorted (for pickers).

    Filtered by nothing but a project (a picker's usual question), the keys come from the
    store's label index, a probe per key (~1 ms; a scan of every interaction's labels took
    0.5-1.2 s on 1M interactions), and as current as the store itself."""
    check_filters(engine, filters, scope, guard)
    if filters is None or replace(filters, project=None) == Filters():
        return _indexed_label_keys(engine, filters.project if filters else None, scope, guard)
    lake, _ = fresh(engine, max_staleness, guard)
    compiled = compile_filters(filters or Filters(), scope=scope, label_columns=lake.label_columns)
    with lake.reading(guard) as cursor:
        rows = cursor.execute(
            "SELECT DISTINCT unnest(map_keys(i.labels)) AS key FROM interactions i "
            f"WHERE {compiled.where} ORDER BY key",
            compiled.params,
        ).fetchall()
    return [str(key) for (key,) in rows]


def _indexed_label_keys(
    engine: Engine, project: str | None, scope: Scope, guard: ReadGuard | None
) -> list[str]:
    """The label keys of the projects in SCOPE (only PROJECT, a key, when given), from the
    store's label index."""
    from sqlalchemy import text

    scoped = scope_project_id(scope)
    conditions = ["id = :scoped"] if scoped is not None else []
    conditions += ["key = :project"] if project is not None else []
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    keys: set[str] = set()
    with read_connection(engine, guard) as connection:
        ids = connection.execute(
            text(f"SELECT id FROM project{where}"), {"scoped": scoped, "project": project}
        ).scalars()
        for project_id in list(ids):
            rows = connection.execute(text(_PROJECT_LABEL_KEYS), {"project": int(project_id)})
            keys.update(str(key) for key in rows.scalars())
    return sorted(keys)


def label_values(
    engine: Engine,
    key: str,
    filters: Filters | None = None,
    *,
    scope: Scope,
    limit: int = 1000,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> pd.DataFrame:
    """Values of one label key (see `label_values_answer`) as a DataFrame."""
    return label_values_answer(
        engine, key, filters, scope=scope, limit=limit, max_staleness=max_staleness, guard=guard
    ).to_pandas()


def label_values_answer(
    engine: Engine,
    key: str,
    filters: Filters | None = None,
    *,
    scope: Scope,
    limit: int = 1000,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> Answer:
    """Values of one label key among matching interactions with their counts, most used first."""
    check = _FilterCheck(engine, filters, scope, guard)
    check.before()
    lake, freshness = fresh(engine, max_staleness, guard)
    compiled = compile_filters(filters or Filters(), scope=scope, label_columns=lake.label_columns)
    value = label_expression(key, lake.label_columns)
    with lake.reading(guard) as cursor:
        rows = cursor.execute(
            f"SELECT {value} AS value, count(*) AS count FROM interactions i "
            f"WHERE {compiled.where} AND {value} IS NOT NULL "
            f"GROUP BY value ORDER BY count DESC, value LIMIT ?",
            [*compiled.params, limit],
        ).fetchall()
    records = [{"value": value, "count": count} for value, count in rows]
    warnings = check.warnings(matched=bool(rows))
    return Answer(records, freshness, tuple(warnings), columns=("value", "count"))


def ab_test_report(
    engine: Engine,
    key: str,
    *,
    scope: Scope,
    project: str | None = None,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> AbTestReport:
    """Per variant of A/B test `key`: n, metric mean or true-rate (or win rate for preference
    tests) with a 95% interval, difference to the control (first variant), p-value (Welch's t,
    two-proportion z, or exact binomial) and significance at 5%."""
    lake, _ = fresh(engine, max_staleness, guard)
    with lake.reading(guard) as cursor:
        return build_ab_test_report(
            cursor, key, project_id=scope_project_id(scope), project=project
        )


def run_sql(
    engine: Engine,
    query: str,
    *,
    scope: Scope,
    max_staleness: float | None = None,
    guard: ReadGuard | None = None,
) -> pd.DataFrame:
    """Read-only SQL over the analytics store's tables (interactions, metric_values,
    comparisons) and the configuration tables (projects, models, metrics, ab_tests); admin only,
    since raw SQL is not project-scoped."""
    if scope_project_id(scope) is not None:
        raise InvalidInputError("raw SQL needs an admin scope; use the filter functions instead")
    lake, freshness = fresh(engine, max_staleness, guard)
    with lake.reading(guard) as cursor:
        statements = cursor.extract_statements(query)
        if len(statements) != 1 or statements[0].type.name != "SELECT":
            raise InvalidInputError("db.sql runs exactly one read-only SELECT statement")
        return _frame(cursor.execute(query).to_arrow_table(), freshness)


def synced_at(engine: Engine, *, max_staleness: float | None = None) -> datetime:
    """Bring the analytics store up to date (if older than max_staleness) and say as of when
    it holds every change."""
    return fresh(engine, max_staleness)[1].synced_at
