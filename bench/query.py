"""Analytics speed on 1,000,000 interactions: label filter + summary, Parquet, DataFrame.

Generates N interactions (3-5 labels each, two metrics on a fraction of them) into a fresh
SQLite file (stdlib sqlite3 executemany) and a fresh PostgreSQL database (COPY), then times the
store.analytics functions over the DuckDB copy. Targets (2 cores): label filter + per-model
metric summary <= 100 ms median; all rows joined with metrics to Parquet <= 5 s; to a
DataFrame <= 3 s.

    .venv/bin/python bench/query.py [--rows 1000000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy.engine import make_url

import migrations
from store import analytics
from store.db import create_store_engine
from store.duckdb_copy import copy_for, drop_copy
from store.exports import export_interactions
from store.filters import Filters
from store.keys import Principal

CHUNK = 100_000
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN = Principal(is_admin=True)
INTERACTION_COLUMNS = (
    "completion_id", "choice_index", "project_id", "model_id", "session_id", "user_id", "labels",
    "messages", "params", "completion", "finish_reason", "prompt_tokens", "completion_tokens",
    "ttft_ms", "latency_ms", "status", "source", "created_at",
)  # fmt: skip


def _labels(rng: random.Random) -> dict[str, str]:
    labels = {
        "team": f"t{rng.randrange(50)}",
        "env": rng.choice(("prod", "staging", "dev")),
        "customer": f"c{rng.randrange(1000)}",
    }
    if rng.random() < 0.5:
        labels["feature"] = f"f{rng.randrange(20)}"
    if rng.random() < 0.5:
        labels["region"] = rng.choice(("eu", "us", "ap", "sa", "af"))
    return labels


def generate(
    rows: int, seed: int = 1
) -> Iterator[tuple[list[tuple[Any, ...]], list[Any], list[Any]]]:
    """Chunks of (interactions, labels, metric values) as plain tuples, storage-format strings."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=30)
    step = timedelta(days=30) / rows
    for offset in range(0, rows, CHUNK):
        interactions, labels, values = [], [], []
        for i in range(offset, min(rows, offset + CHUNK)):
            cid = uuid.UUID(int=rng.getrandbits(128)).hex
            label = _labels(rng)
            created = (start + step * i).strftime("%Y-%m-%d %H:%M:%S.%f")
            latency = rng.gammavariate(4.0, 60.0)
            interactions.append((
                cid, 0, 1, 1 + i % 3, uuid.UUID(int=rng.getrandbits(128)).hex, f"u{i % 5000}",
                json.dumps(label), json.dumps([{"role": "user", "content": f"question {i}"}]), "{}",
                f"answer {i}", "stop", rng.randrange(10, 500), rng.randrange(10, 800),
                latency / 4, latency, "error" if rng.random() < 0.02 else "ok", "LIVE", created,
            ))  # fmt: skip
            labels.extend((cid, 1, key, value) for key, value in label.items())
            if rng.random() < 0.2:
                values.append(
                    (uuid.UUID(int=rng.getrandbits(128)).hex, cid, 1, rng.random(), created)
                )
            if rng.random() < 0.1:
                values.append(
                    (
                        uuid.UUID(int=rng.getrandbits(128)).hex,
                        cid,
                        2,
                        float(rng.random() < 0.7),
                        created,
                    )
                )
        yield interactions, labels, values


LABEL_COLUMNS = ("completion_id", "project_id", "key", "value")
VALUE_COLUMNS = ("id", "completion_id", "metric_id", "value", "created_at")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def _catalog_rows(now: str) -> list[tuple[str, list[tuple[Any, ...]]]]:
    urls = '["http://127.0.0.1:9/v1"]'
    return [
        (_insert("project", ("id", "key", "name", "created_at")), [(1, "bot", "Bot", now)]),
        (
            _insert("model", ("id", "key", "name", "upstream_urls", "multimodal", "created_at")),
            [(i, f"m{i}", f"Model {i}", urls, False, now) for i in (1, 2, 3)],
        ),
        (
            _insert("metric", ("id", "project_id", "key", "name", "kind", "scoring", "created_at")),
            [
                (1, 1, "quality", "Quality", "scalar", "higher_is_better", now),
                (2, 1, "thumbs", "Thumbs", "bool", "higher_is_better", now),
            ],
        ),
    ]


def load_sqlite(path: Path, rows: int) -> None:
    """Fast bulk path: stdlib sqlite3 executemany, one transaction per chunk."""
    migrations.upgrade(f"sqlite:///{path}")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    for sql, values in _catalog_rows(now):
        connection.executemany(sql, values)
    for interactions, labels, values in generate(rows):
        connection.executemany(_insert("interaction", INTERACTION_COLUMNS), interactions)
        connection.executemany(_insert("interaction_label", LABEL_COLUMNS), labels)
        connection.executemany(_insert("metric_value", VALUE_COLUMNS), values)
        connection.commit()
    connection.close()


def load_postgres(url: str, rows: int) -> None:
    """Fast bulk path: COPY, one transaction per chunk."""
    migrations.upgrade(url)
    parsed = make_url(url)
    conninfo = f"host={parsed.host} port={parsed.port or 5432} user={parsed.username}"
    with psycopg.connect(f"{conninfo} dbname={parsed.database}") as connection:
        now = datetime.now(UTC).isoformat()
        for sql, values in _catalog_rows(now):
            connection.cursor().executemany(sql.replace("?", "%s"), values)
        for interactions, labels, values in generate(rows):
            with connection.cursor() as cursor:
                for table, columns, data in (
                    ("interaction", INTERACTION_COLUMNS, interactions),
                    ("interaction_label", LABEL_COLUMNS, labels),
                    ("metric_value", VALUE_COLUMNS, values),
                ):
                    stamp = columns.index("created_at") if "created_at" in columns else -1
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in data:
                            if stamp >= 0:
                                row = (*row[:stamp], f"{row[stamp]}+00", *row[stamp + 1 :])
                            copy.write_row(row)
            connection.commit()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up
    return statistics.median(timed(fn)[0] for _ in range(runs)) * 1000


def measure(name: str, url: str, workdir: Path) -> list[tuple[str, str, str]]:
    """Time the analytics functions on one store; queries run on the synced copy."""
    engine = create_store_engine(url)
    copy = copy_for(engine)
    stale = 3600.0  # the copy was just synced: time the queries, not the sync
    label = Filters(labels={"team": "t7"})
    two = Filters(labels=["team=t7", "env!=dev"], metrics=["quality>=0.5"])
    out = workdir / f"{name}.parquet"

    def summary(filters: Filters) -> Any:
        return analytics.summary(engine, filters, scope=ADMIN, by="model", max_staleness=stale)

    results = []
    try:
        seconds, _ = timed(copy.sync)
        results.append(("initial sync into DuckDB (whole store)", f"{seconds:.1f} s"))
        results.append(("sync when nothing changed, median", f"{median_ms(copy.sync, 5):.0f} ms"))
        matched = analytics.count_interactions(engine, label, scope=ADMIN, max_staleness=stale)
        results.append(
            (
                f"label filter ({matched} rows) + per-model summary, median",
                f"{median_ms(lambda: summary(label), 21):.1f} ms (target 100)",
            )
        )
        results.append(
            (
                "2 labels + metric range + per-model summary, median",
                f"{median_ms(lambda: summary(two), 21):.1f} ms",
            )
        )
        page = median_ms(
            lambda: analytics.interactions(
                engine, label, scope=ADMIN, limit=50, max_staleness=stale
            ),
            21,
        )
        results.append(("label filter, newest 50 with metrics, median", f"{page:.1f} ms"))
        seconds, count = timed(
            lambda: export_interactions(engine, out, scope=ADMIN, format="parquet")
        )
        size = out.stat().st_size / 1e6
        results.append(
            (
                f"all {count} rows joined with metrics -> Parquet file",
                f"{seconds:.2f} s (target 5), {size:.0f} MB",
            )
        )
        seconds, frame = timed(
            lambda: analytics.interactions(engine, scope=ADMIN, limit=None, max_staleness=stale)
        )
        results.append(
            (
                f"all {len(frame)} rows joined with metrics -> DataFrame",
                f"{seconds:.2f} s (target 3)",
            )
        )
    finally:
        drop_copy(engine)
        engine.dispose()
    return [(name, what, value) for what, value in results]


def run_backend(backend: str, rows: int, workdir: Path) -> list[tuple[str, str, str]]:
    """Load ROWS synthetic interactions into a fresh BACKEND store and time the analytics."""
    results: list[tuple[str, str, str]] = []
    if backend == "sqlite":
        path = workdir / "bench.db"
        seconds, _ = timed(lambda: load_sqlite(path, rows))
        results.append(
            ("sqlite", f"generate + load {rows} rows (sqlite3 executemany)", f"{seconds:.0f} s")
        )
        results += measure("sqlite", f"sqlite:///{path}", workdir)
        path.unlink()
        return results
    name = f"interlog_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    url = (
        make_url(POSTGRES_SERVER)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        seconds, _ = timed(lambda: load_postgres(url, rows))
        results.append(("postgres", f"generate + load {rows} rows (COPY)", f"{seconds:.0f} s"))
        results += measure("postgres", url, workdir)
    finally:
        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
    return results


def run(rows: int, backends: list[str]) -> list[tuple[str, str, str]]:
    """Every backend in turn (printing each one's lines as it finishes); all the lines."""
    results: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="interlog-bench-") as tmp:
        for backend in backends:
            lines = run_backend(backend, rows, Path(tmp))
            for row in lines:
                print(f"{row[0]:<9} {row[1]:<62} {row[2]}", flush=True)
            results += lines
    return results


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    return run(args.rows, args.backends.split(","))


if __name__ == "__main__":
    main()
