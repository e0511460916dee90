"""A version of the analytics copy's contents, for caches of analytics results.

`data_version` brings the copy up to date (unless it synced less than `max_staleness` seconds ago)
and returns a token that changes whenever a row was added to or removed from a log table
(interactions, metric values, comparisons: row count, newest timestamp and an XOR of the keys'
hashes) or any catalog table changed (projects, models, metrics, A/B tests: a digest of every
row). A cache keyed on the token serves results until the data changes; it costs one scan of
the key columns (about 20 ms on 1,000,000 interactions).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from store.duckdb_copy import CATALOG_TABLES, LOG_TABLES, copy_for


@dataclass(frozen=True)
class DataVersion:
    """When the copy last matched the store, and a token of its contents."""

    synced_at: datetime
    token: str


def _version_sql() -> str:
    parts = []
    for table in LOG_TABLES:
        parts += [
            f"(SELECT count(*) FROM {table.name})",
            f"(SELECT max(created_at) FROM {table.name})",
            f"(SELECT bit_xor(hash({table.key})) FROM {table.name})",
        ]
    for name in CATALOG_TABLES:
        parts.append(
            f"(SELECT md5(coalesce(string_agg(CAST(x AS VARCHAR), ';' ORDER BY x.id), '')) "
            f"FROM {name} x)"
        )
    return "SELECT " + ", ".join(parts)


def data_version(engine: Engine, *, max_staleness: float | None = None) -> DataVersion:
    """Sync the copy if it is older than max_staleness seconds, then version its contents."""
    copy = copy_for(engine)
    synced = copy.ensure_fresh(max_staleness)
    with copy.reading() as cursor:
        row = cursor.execute(_version_sql()).fetchone()
    digest = hashlib.sha1("|".join(str(value) for value in row or ()).encode()).hexdigest()
    return DataVersion(synced_at=synced, token=digest[:16])
