"""The notebook API: `from store import connect; db = connect(URL)`, then questions as DataFrames.

URL is a database URL (a SQLite file or PostgreSQL: DuckDB reads the shared analytics store,
store/analytics/, full access) or the gateway's http(s) URL plus an API key (calls the REST API,
with that key's scope). Filter
keywords are those of `store.filters.Filters`: labels, project, model, ab_test, variant, since,
until, session, user, status, metrics, search.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import Engine

from store import analytics, exports
from store.ab_report import AbTestReport, VariantResult
from store.db import create_store_engine
from store.errors import InvalidInputError, StoreError
from store.filters import Filters, LabelFilter, MetricFilter, Scope
from store.keys import Principal


class LocalAnalytics:
    """Analytics straight from a database URL (an engine, and DuckDB on the analytics store)."""

    def __init__(self, engine: Engine, *, scope: Scope, max_staleness: float = 1.0) -> None:
        self.engine = engine
        self.scope = scope
        self.max_staleness = max_staleness

    def interactions(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> pd.DataFrame:
        """Matching interactions (all by default), one column per metric."""
        return analytics.interactions(
            self.engine, Filters(**filters), scope=self.scope, limit=limit, offset=offset,
            max_staleness=self.max_staleness,
        )  # fmt: skip

    def summary(self, by: str | None = "model", **filters: Any) -> pd.DataFrame:
        """Count, error rate, latency/TTFT percentiles, tokens and metric means per group."""
        return analytics.summary(
            self.engine, Filters(**filters), scope=self.scope, by=by,
            max_staleness=self.max_staleness,
        )  # fmt: skip

    def label_keys(self, **filters: Any) -> list[str]:
        return analytics.label_keys(
            self.engine, Filters(**filters), scope=self.scope, max_staleness=self.max_staleness
        )

    def label_values(self, key: str, **filters: Any) -> pd.DataFrame:
        return analytics.label_values(
            self.engine, key, Filters(**filters), scope=self.scope, max_staleness=self.max_staleness
        )

    def ab_test_report(self, key: str, project: str | None = None) -> AbTestReport:
        return analytics.ab_test_report(
            self.engine, key, scope=self.scope, project=project, max_staleness=self.max_staleness
        )

    def sql(self, query: str) -> pd.DataFrame:
        """Read-only SQL on the DuckDB copy: tables interactions, metric_values, metrics,
        comparisons, projects, models, ab_tests, label_keys (label columns are label_N)."""
        return analytics.run_sql(
            self.engine, query, scope=self.scope, max_staleness=self.max_staleness
        )

    def export(self, path: str | Path, *, format: str = "parquet", **filters: Any) -> int:
        """Write every matching interaction to `path` (csv, parquet or jsonl); returns rows."""
        return exports.export_interactions(
            self.engine, path, Filters(**filters), scope=self.scope, format=format
        )

    def close(self) -> None:
        from store.analytics.lake import drop_lake

        drop_lake(self.engine)
        self.engine.dispose()


def filter_params(filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Filter keywords as the REST API's query parameters (label=k=v, where=quality>=0.8, ...)."""
    parsed = Filters(**filters)
    params: list[tuple[str, str]] = []
    for label in parsed.label_filters:
        params.append(("label", _label_text(label)))
    for metric in parsed.metric_filters:
        params.append(("where", f"{metric.key}{metric.op}{metric.value!r}"))
    for name in ("project", "model", "ab_test", "variant", "session", "user", "status", "search"):
        value = getattr(parsed, name)
        if value is not None:
            params.append((name, str(value)))
    for name in ("since", "until"):
        value = getattr(parsed, name)
        if isinstance(value, datetime):
            params.append((name, value.isoformat()))
    return params


def _label_text(label: LabelFilter) -> str:
    if label.op == "exists":
        return label.key
    if label.op == "!=":
        return f"{label.key}!={label.values[0]}"
    return f"{label.key}={'|'.join(label.values)}"


class RemoteAnalytics:
    """The same questions through the gateway's REST API, scoped by the key."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def _get(self, path: str, params: Iterable[tuple[str, str]]) -> bytes:
        query = urllib.parse.urlencode(list(params))
        request = urllib.request.Request(
            f"{self.base_url}{path}?{query}", headers={"Authorization": f"Bearer {self.key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = str(exc)
            raise StoreError(f"{exc.code}: {message}") from exc

    def interactions(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> pd.DataFrame:
        """Matching interactions via the streamed Parquet export (all rows, then sliced)."""
        data = self._get(
            "/api/v1/interactions/export", [("format", "parquet"), *filter_params(filters)]
        )
        frame = pq.read_table(io.BytesIO(data)).to_pandas()
        return frame.iloc[offset : None if limit is None else offset + limit].reset_index(drop=True)

    def summary(self, by: str | None = "model", **filters: Any) -> pd.DataFrame:
        params = [*filter_params(filters), *([("by", by)] if by else [])]
        return pd.DataFrame(json.loads(self._get("/api/v1/analytics/summary", params))["data"])

    def label_keys(self, **filters: Any) -> list[str]:
        return list(
            json.loads(self._get("/api/v1/analytics/labels", filter_params(filters)))["data"]
        )

    def label_values(self, key: str, **filters: Any) -> pd.DataFrame:
        path = f"/api/v1/analytics/labels/{urllib.parse.quote(key, safe='')}/values"
        return pd.DataFrame(json.loads(self._get(path, filter_params(filters)))["data"])

    def ab_test_report(self, key: str, project: str | None = None) -> AbTestReport:
        params = [("project", project)] if project else []
        body = json.loads(
            self._get(f"/api/v1/analytics/ab-tests/{urllib.parse.quote(key)}/report", params)
        )
        variants = [VariantResult(**v) for v in body.pop("variants")]
        return AbTestReport(**body, variants=variants)

    def sql(self, query: str) -> pd.DataFrame:
        raise InvalidInputError("db.sql needs direct database access: connect with a database URL")

    def export(self, path: str | Path, *, format: str = "parquet", **filters: Any) -> int:
        """Download every matching interaction to `path`; returns the bytes written."""
        data = self._get(
            "/api/v1/interactions/export", [("format", format), *filter_params(filters)]
        )
        Path(path).write_bytes(data)
        return len(data)

    def close(self) -> None:
        return None


def connect(
    url: str,
    key: str | None = None,
    *,
    project: int | None = None,
    max_staleness: float = 1.0,
) -> LocalAnalytics | RemoteAnalytics:
    """Open analytics on a database URL (all projects, or `project` id) or a gateway URL + key."""
    if url.startswith(("http://", "https://")):
        if not key:
            raise InvalidInputError("connecting to the gateway needs an API key: connect(url, key)")
        return RemoteAnalytics(url, key)
    scope: Scope = Principal(is_admin=True) if project is None else project
    return LocalAnalytics(create_store_engine(url), scope=scope, max_staleness=max_staleness)


__all__ = ["LocalAnalytics", "MetricFilter", "RemoteAnalytics", "connect", "filter_params"]
