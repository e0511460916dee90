"""A version of what analytics answers from, for caches of analytics results (the dashboard's).

`data_version` makes sure the analytics store is fresh (store/analytics/sync.py) and returns a
token that changes whenever the analytics store takes a new snapshot (rows added or deleted) or
a configuration table changed (projects, models, metrics, A/B tests). A cache keyed on the
token serves results until the data changes; computing it reads no data file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from store.analytics.lake import CATALOG_TABLES, LAKE
from store.analytics.questions import fresh


@dataclass(frozen=True)
class DataVersion:
    """As of when the analytics store holds every change, and a token of its contents."""

    synced_at: datetime
    token: str


def data_version(engine: Engine, *, max_staleness: float | None = None) -> DataVersion:
    """Sync (or wait for the sync) if older than max_staleness seconds, then version."""
    lake, freshness = fresh(engine, max_staleness)
    parts = [f"(SELECT max(snapshot_id) FROM ducklake_snapshots('{LAKE}'))"]
    parts += [
        f"(SELECT md5(coalesce(string_agg(CAST(x AS VARCHAR), ';' ORDER BY x.id), '')) "
        f"FROM {name} x)"
        for name in CATALOG_TABLES
    ]
    with lake.reading() as cursor:
        row = cursor.execute("SELECT " + ", ".join(parts)).fetchone()
    digest = hashlib.sha1("|".join(str(value) for value in row or ()).encode()).hexdigest()
    return DataVersion(synced_at=freshness.synced_at, token=digest[:16])
