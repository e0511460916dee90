"""Analytics at scale on realistic data: the shared analytics store, with RSS per process.

For each store (SQLite, PostgreSQL) of N realistic interactions (bench/realistic.py: seed 1,
the 30 days before a fixed END, about 3 KB of text each; made once and cached between runs:
.bench-cache/realistic-N.db, and the PostgreSQL database interlog_bench_realistic_N):

1. store        the store's size, or how long generating it took;
2. build        the analytics store removed, then `interlog analytics sync` (the console
                script, a process of its own) builds it: seconds, interactions/s, peak RSS,
                Parquet on disk;
3. notebook     a NEW process does what a notebook does: `connect(URL).summary()` (time and
                RSS right after), then with max_staleness=3600: label filter + per-model
                summary, two labels + a metric condition + per-model summary, the newest 50
                of a label with text, free-text search (newest 50, and the count), RSS after;
4. export       another NEW process: `db.export(path, format="parquet")`, every row joined
                with its metrics: seconds, peak RSS, file size;
5. gateway      `interlog serve` on the store (its sync-owner child running) with an admin
                key: REST analytics (summary by model, with a label filter, by label, label
                values, a filtered Parquet export), the gateway process's own peak RSS and,
                apart, its analytics reader child's (which answers them) and its sync-owner
                child's;
6. freshness    the same gateway in front of a fake upstream, ~RATE chat completions/s with
                labels for SECONDS, and every 100 ms a probe request labelled probe=<uuid>;
                this process polls the analytics store every 50 ms (the lake's DuckDB only:
                never the SQLite store file) and records when each probe is visible.
                The chat rows are deleted from the store afterwards (and before a run).
Then once:
7. big          BIG realistic interactions written straight into an analytics store (a
                DuckLake of a throwaway empty store: rows drawn in DuckDB SQL from a pool of
                a few thousand realistic interactions, labels drawn with bench/realistic's
                distributions, ~30% scored), cached in .bench-cache/; a NEW process asks
                store.analytics.summary: first summary, label filter + per-model summary
                median, RSS.

Every line is "backend  measurement  value (target)"; the targets are issue 17's
(bench/report.py QUERY_TARGETS). `python -m bench query [ARGS]` also writes its section of
docs/benchmarks.md (and docs/benchmarks.json).

    .venv/bin/python bench/query.py [--rows 1000000] [--big 10000000] [--backends sqlite,postgres]
        [--sqlite PATH] [--postgres URL] [--fresh] [--quick] [--seconds 20] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench import services  # noqa: E402
from bench.report import QUERY_TARGETS  # noqa: E402
from bench.speed import python_probe_ms  # noqa: E402

CACHE = ROOT / ".bench-cache"
SEED = 1
END = datetime(2026, 11, 30, tzinfo=UTC)  # fixed: the same store in every run
ROWS, QUICK_ROWS = 1_000_000, 20_000
BIG, QUICK_BIG = 10_000_000, 200_000
SEARCH = "Kotlin"  # in about 2% of the interactions' last user turn or completion
RUNS = 21  # repetitions of a timed question (median)
ADMIN_KEY = "bench-admin-" + "k" * 24
BENCH_PROJECT, BENCH_MODEL = "bench-load", "bench-fake"
BIG_VERSION = 1  # changes when the big analytics store is generated differently
BIG_POOL = 4_000  # realistic interactions the big store's rows are drawn from
BIG_BATCH = 500_000
PG_SCHEMA = "interlog_analytics"


# -- output -------------------------------------------------------------------------------------


@dataclass
class Results:
    """Every measurement, printed as it is made: lines for the report and numbers by key."""

    lines: list[list[str]] = field(default_factory=list)
    numbers: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(
        self, backend: str, what: str, value: str, key: str | None = None, number: float = 0.0
    ) -> None:
        target = ""
        if key is not None:
            self.numbers.setdefault(backend, {})[key] = number
            if key in QUERY_TARGETS:
                op, limit, unit, _ = QUERY_TARGETS[key]
                met = number >= limit if op == ">=" else number <= limit
                target = f"{op} {limit:,g} {unit}" + ("" if met else ": MISSED")
        self.lines.append([backend, what, value, target])
        shown = f"{value} (target {target})" if target else value
        print(f"{backend:<9} {what:<64} {shown}", flush=True)


def _mb(size: float) -> str:
    return f"{size:,.0f} MB"


def _tree_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- RSS ----------------------------------------------------------------------------------------


def hwm_mb(pid: int) -> float:
    """The kernel's peak RSS of a process since it started its program (VmHWM), in MB. Not
    ru_maxrss: Linux carries the parent's RSS at the fork into the child's ru_maxrss."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return 0.0


class RssSampler:
    """Peak RSS in MB, sampled every INTERVAL s in a thread while in its `with` block: of the
    process itself (`own`), of its analytics sync-owner children (`owner`), of its analytics
    reader children (`reader`), of its other children (`other`, e.g. the SQLite writer) and of
    all of them (`tree`); `hwm` is the process's own VmHWM at the last sample (its exact peak
    since it started)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = {"own": 0.0, "owner": 0.0, "reader": 0.0, "other": 0.0, "tree": 0.0}
        self.hwm = 0.0
        self._commands: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, float]:
        root = psutil.Process(self.pid)
        now = {"own": root.memory_info().rss / 1e6, "owner": 0.0, "reader": 0.0, "other": 0.0}
        for child in root.children(recursive=True):
            try:
                command = self._commands.get(child.pid)
                if command is None:
                    command = self._commands[child.pid] = " ".join(child.cmdline())
                rss = child.memory_info().rss / 1e6
            except psutil.Error:
                continue
            now[_child_kind(command)] += rss
        now["tree"] = now["own"] + now["owner"] + now["reader"] + now["other"]
        return now

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for name, value in self.sample().items():
                    self.peak[name] = max(self.peak[name], value)
                self.hwm = max(self.hwm, hwm_mb(self.pid))
            except (psutil.Error, OSError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _child_kind(command: str) -> str:
    if "store.analytics.owner" in command:
        return "owner"
    return "reader" if "store.analytics.reader" in command else "other"


@dataclass
class Finished:
    seconds: float
    returncode: int
    peak_mb: float  # the child's own peak RSS (VmHWM, read every 50 ms until it ended)
    tree_mb: float  # sampled peak of the child and its children
    stdout: str


def run_measured(
    command: list[str], *, env: dict[str, str], log: Path, timeout: float = 3600
) -> Finished:
    """Run COMMAND (own session, cwd ROOT) to its end: wall seconds, peak RSS (the child's
    VmHWM, and a sampled peak of its process tree), its stdout; stderr goes to LOG. Killed (by
    its process group) after TIMEOUT seconds."""
    with log.open("wb") as err, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
        timer = threading.Timer(timeout, lambda: os.killpg(child.pid, signal.SIGKILL))
        timer.start()
        try:
            with RssSampler(child.pid) as sampler:
                _, status = os.waitpid(child.pid, 0)
            seconds = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
        except BaseException:
            if child.returncode is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            raise
        finally:
            timer.cancel()
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{command[:3]} failed ({child.returncode}):\n{tail}")
    return Finished(seconds, child.returncode, sampler.hwm, sampler.peak["tree"], stdout)


def child_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a process run on the store at URL: no INTERLOG_* of ours."""
    return services.interlog_env({"INTERLOG_DATABASE_URL": url, **extra})


def run_script(script: str, args: list[str], url: str, log: Path) -> dict[str, Any]:
    """Run a Python SCRIPT in a new process; its last stdout line is a JSON object."""
    done = run_measured([sys.executable, "-c", script, *args], env=child_env(url), log=log)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = done.seconds
    result["sampled_peak_mb"] = done.peak_mb
    return result


# -- the stores ---------------------------------------------------------------------------------


def _pg_url(database: str) -> str:
    return make_url(services.PG_SERVER).set(database=database).render_as_string(False)


def _count(url: str) -> int:
    return services.count_interactions(url)


def _done_marker(rows: int) -> str:
    return f"interlog bench realistic rows={rows} seed={SEED} end={END.isoformat()}"


def _upgrade(url: str) -> None:
    """A cached store made by an earlier version, brought to the current schema (a no-op when
    it is), so that every figure is measured on the schema Interlog now writes."""
    import migrations

    migrations.upgrade(url)


def sqlite_store(rows: int, *, fresh: bool, res: Results) -> str:
    """The cached SQLite store of ROWS realistic interactions (made when missing)."""
    from bench import realistic

    path = CACHE / f"realistic-{rows}.db"
    if fresh:
        for stale in CACHE.glob(f"realistic-{rows}.*"):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
    if path.exists():
        _upgrade(f"sqlite:///{path}")
    else:
        CACHE.mkdir(exist_ok=True)
        partial = CACHE / f"realistic-{rows}-partial.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        print(f"generating {rows:,} realistic interactions into {path} ...", flush=True)
        facts = realistic.create_sqlite_store(partial, rows, seed=SEED, end=END)
        partial.rename(path)
        res.add(
            "sqlite", f"generate the store ({rows:,} interactions, bench/realistic.py)",
            f"{facts['load_seconds']:.0f} s ({facts['rows_per_s']:,}/s)",
        )  # fmt: skip
    return f"sqlite:///{path}"


def postgres_store(rows: int, *, fresh: bool, res: Results) -> str:
    """The PostgreSQL database interlog_bench_realistic_ROWS (made when missing or
    incomplete; a finished one carries a comment saying what it holds)."""
    import psycopg

    from bench import realistic

    name = f"interlog_bench_realistic_{rows}"
    url = _pg_url(name)
    conninfo = services._pg_conninfo(services.PG_SERVER)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    if row is not None and row[0] == _done_marker(rows) and not fresh:
        _upgrade(url)
        return url
    print(f"generating {rows:,} realistic interactions into database {name} ...", flush=True)
    facts = realistic.create_postgres_store(url, rows, seed=SEED, end=END, replace=True)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"COMMENT ON DATABASE \"{name}\" IS '{_done_marker(rows)}'".encode())
    res.add(
        "postgres", f"generate the store ({rows:,} interactions, bench/realistic.py)",
        f"{facts['load_seconds']:.0f} s ({facts['rows_per_s']:,}/s)",
    )  # fmt: skip
    return url


def store_size_mb(url: str) -> float:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        return sum(_tree_bytes(Path(f"{parsed.database}{s}")) for s in ("", "-wal")) / 1e6
    from store.db import create_store_engine

    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            size = connection.execute(text("SELECT pg_database_size(current_database())"))
            return int(size.scalar() or 0) / 1e6
    finally:
        engine.dispose()


@contextmanager
def store_engine(url: str) -> Iterator[Engine]:
    from store.db import create_store_engine

    engine = create_store_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def remove_bench_rows(url: str) -> int:
    """Delete what the gateway benchmark added to the store (its project's interactions,
    labels, keys; the project and model); returns the interactions deleted. The deletes leave
    tombstones for the analytics store's sync, as any delete does."""
    with store_engine(url) as engine, engine.begin() as connection:
        project = connection.execute(
            text("SELECT id FROM project WHERE key = :key"), {"key": BENCH_PROJECT}
        ).scalar()
        deleted = 0
        if project is not None:
            where = {"p": project}
            deleted = connection.execute(
                text("DELETE FROM interaction WHERE project_id = :p"), where
            ).rowcount
            for table in ("interaction_label", "project_model", "api_key"):
                connection.execute(text(f"DELETE FROM {table} WHERE project_id = :p"), where)
            connection.execute(text("DELETE FROM project WHERE id = :p"), where)
        connection.execute(text("DELETE FROM model WHERE key = :m"), {"m": BENCH_MODEL})
    return max(0, deleted)


def seed_bench_project(url: str, upstream: str) -> None:
    """Project BENCH_PROJECT routing to model BENCH_MODEL on the fake UPSTREAM."""
    from store.catalog import attach_model, create_model, create_project

    remove_bench_rows(url)
    with store_engine(url) as engine:
        create_project(engine, key=BENCH_PROJECT)
        create_model(engine, key=BENCH_MODEL, upstream_urls=[upstream])
        attach_model(engine, project_key=BENCH_PROJECT, model_key=BENCH_MODEL, default=True)


# -- 2. the analytics store: removal and initial build -----------------------------------------


def _pg_data_dir(url: str) -> Path:
    """Where this benchmark puts a PostgreSQL store's Parquet files (INTERLOG_ANALYTICS_PATH)."""
    parsed = make_url(url)
    name = f"{parsed.host or 'localhost'}-{parsed.port or 5432}-{parsed.database}"
    return CACHE / "interlog-analytics" / name


def remove_analytics(url: str) -> list[str]:
    """Remove the store's analytics store (catalog, lock, Parquet files) and the store's
    tombstones (the rebuild starts from scratch); returns what was removed. A data directory
    named in the catalog is removed only where Interlog (or this benchmark) puts one by
    default: `NAME.analytics/` beside a SQLite store, `.../interlog-analytics/HOST-PORT-DB`."""
    parsed = make_url(url)
    removed: list[str] = []
    data_paths: list[str] = []
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        assert parsed.database is not None
        store = Path(parsed.database).resolve()
        catalog = store.with_name(store.stem + ".analytics.sqlite")
        if catalog.exists():
            # The catalog file, never the store file.
            with (
                contextlib.closing(sqlite3.connect(catalog)) as connection,
                contextlib.suppress(sqlite3.Error),
            ):
                data_paths += [
                    row[0]
                    for row in connection.execute(
                        "SELECT value FROM ducklake_metadata WHERE key = 'data_path'"
                    )
                ]
        allowed = [store.with_name(store.stem + ".analytics")]
        for path in store.parent.glob(store.stem + ".analytics.sqlite*"):
            path.unlink()
            removed.append(str(path))
        lock = store.with_name(store.stem + ".analytics.lock")
        if lock.exists():
            lock.unlink()
            removed.append(str(lock))
    else:
        name = f"{parsed.host or 'localhost'}-{parsed.port or 5432}-{parsed.database}"
        allowed = [_pg_data_dir(url)]
        with store_engine(url) as engine, engine.begin() as connection:
            exists = connection.execute(
                text(f"SELECT to_regclass('{PG_SCHEMA}.ducklake_metadata') IS NOT NULL")
            ).scalar()
            if exists:
                data_paths += [
                    str(value)
                    for (value,) in connection.execute(
                        text(
                            f"SELECT value FROM {PG_SCHEMA}.ducklake_metadata "
                            "WHERE key = 'data_path'"
                        )
                    )
                ]
            connection.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            if exists:
                removed.append(f"schema {PG_SCHEMA}")
        for value in data_paths:
            path = Path(value.rstrip("/"))
            if path.name == name and path.parent.name == "interlog-analytics":
                allowed.append(path)
    for value in data_paths:
        path = Path(value.rstrip("/")).resolve()
        if "://" not in value and path not in [p.resolve() for p in allowed] and path.exists():
            print(f"  left {path} in place (not a default analytics data directory)")
    for path in allowed:
        if path.exists():
            shutil.rmtree(path)
            removed.append(str(path))
    with store_engine(url) as engine, engine.begin() as connection:
        connection.execute(text("DELETE FROM analytics_tombstone"))
    return removed


def build(backend: str, url: str, workdir: Path, rows: int, res: Results) -> None:
    """Remove the analytics store, then time `interlog analytics sync` building it."""
    removed = remove_analytics(url)
    if removed:
        print(f"  removed the analytics store: {', '.join(removed)}", flush=True)
    extra = {}
    if backend == "postgres":
        extra["INTERLOG_ANALYTICS_PATH"] = str(_pg_data_dir(url))
    interlog = str(Path(sys.executable).parent / "interlog")
    done = run_measured(
        [interlog, "analytics", "sync"],
        env=child_env(url, **extra),
        log=workdir / f"build-{backend}.log",
    )
    rate = rows / done.seconds
    res.add(
        backend, f"initial build: `interlog analytics sync`, {rows:,} interactions",
        f"{done.seconds:.1f} s, {rate:,.0f} interactions/s", "build_rate", rate,
    )  # fmt: skip
    res.add(
        backend, "initial build: peak RSS of the sync process",
        f"{_mb(done.peak_mb)} (process tree sampled: {_mb(done.tree_mb)})",
        "build_rss_mb", done.peak_mb,
    )  # fmt: skip
    if backend == "sqlite":
        path = Path(make_url(url).database or "").resolve()
        data = path.with_name(path.stem + ".analytics")
        catalog = sum(_tree_bytes(p) for p in path.parent.glob(path.stem + ".analytics.sqlite*"))
        where = f"catalog file {catalog / 1e6:,.1f} MB"
    else:
        data = _pg_data_dir(url)
        where = "catalog in PostgreSQL"
    parquet = _tree_bytes(data) / 1e6
    files = sum(1 for p in data.rglob("*.parquet")) if data.exists() else 0
    res.add(
        backend, "analytics store on disk: Parquet files (zstd)",
        f"{parquet:,.0f} MB in {files} files ({parquet * 1e6 / rows:,.0f} B/interaction), "
        f"{where}",
        "parquet_mb", parquet,
    )  # fmt: skip


# -- 3. a notebook; 4. an export ----------------------------------------------------------------

NOTEBOOK = r"""
import json, statistics, sys, time
started = time.perf_counter()
from store import analytics, connect
from store.filters import Filters
imported = time.perf_counter() - started
import psutil

url, word, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
me = psutil.Process()
out = {"import_s": imported}

def rss():
    return me.memory_info().rss / 1e6

def peak():  # VmHWM: ru_maxrss would count the parent's RSS at the fork
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024 / 1e6

def reset_peak():  # VmHWM from now on (Linux: clear_refs 5), so each question has its own
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")

def median_ms(question, runs):
    question()  # warm-up
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        question()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000

began = time.perf_counter()
db = connect(url)
first = db.summary()
out["first_summary_s"] = time.perf_counter() - began
out["first_rss_mb"], out["first_peak_mb"] = rss(), peak()
out["rows"] = int(first["count"].sum())
db.max_staleness = 3600.0  # the analytics store was just checked: time the questions alone
label = db.summary(by="model", labels={"team": "t7"})
out["label_rows"] = int(label["count"].sum())
out["label_summary_ms"] = median_ms(lambda: db.summary(by="model", labels={"team": "t7"}), runs)
two = dict(labels=["team=t7", "env!=dev"], metrics=["quality>=0.5"])
out["two_rows"] = int(db.summary(by=None, **two)["count"].sum())
out["two_labels_metric_ms"] = median_ms(lambda: db.summary(by="model", **two), runs)
page = db.interactions(labels={"team": "t7"}, limit=50)
out["page_rows"] = len(page)
text = page["messages"].str.len().sum() + page["completion"].fillna("").str.len().sum()
out["page_text_chars"] = int(text)
out["page_ms"] = median_ms(lambda: db.interactions(labels={"team": "t7"}, limit=50), runs)
slow = max(3, runs // 4)
out["search_ms"] = median_ms(lambda: db.interactions(search=word, limit=50), slow)
count = lambda: analytics.count_interactions(
    db.engine, Filters(search=word), scope=db.scope, max_staleness=3600.0)
out["search_matches"] = count()
out["search_count_ms"] = median_ms(count, slow)
out["after_rss_mb"], out["after_peak_mb"] = rss(), peak()
print(json.dumps(out))
"""

EXPORT = r"""
import json, sys, time
started = time.perf_counter()
from store import connect
imported = time.perf_counter() - started
url, path = sys.argv[1], sys.argv[2]
began = time.perf_counter()
rows = connect(url).export(path, format="parquet")
seconds = time.perf_counter() - began
with open("/proc/self/status") as status:  # VmHWM: the peak RSS of this program
    peak = int(next(l for l in status if l.startswith("VmHWM:")).split()[1]) * 1024 / 1e6
print(json.dumps({"import_s": imported, "rows": rows, "export_s": seconds, "peak_mb": peak}))
"""


def notebook(backend: str, url: str, workdir: Path, runs: int, search: str, res: Results) -> None:
    out = run_script(NOTEBOOK, [url, search, str(runs)], url, workdir / f"notebook-{backend}.log")
    res.add(backend, "new notebook process: imports (from store import connect)",
            f"{out['import_s']:.2f} s")  # fmt: skip
    res.add(
        backend, f"new notebook process: connect + first summary ({out['rows']:,} rows)",
        f"{out['first_summary_s']:.2f} s", "first_summary_s", out["first_summary_s"],
    )  # fmt: skip
    res.add(
        backend, "new notebook process: RSS right after the first summary",
        f"{_mb(out['first_rss_mb'])} (peak {_mb(out['first_peak_mb'])})",
        "first_rss_mb", out["first_rss_mb"],
    )  # fmt: skip
    res.add(
        backend, f"label filter ({out['label_rows']:,} rows) + per-model summary, median",
        f"{out['label_summary_ms']:.1f} ms", "label_summary_ms", out["label_summary_ms"],
    )  # fmt: skip
    res.add(
        backend, f"2 labels + metric ({out['two_rows']:,} rows) + per-model summary, median",
        f"{out['two_labels_metric_ms']:.1f} ms", "two_labels_metric_ms",
        out["two_labels_metric_ms"],
    )  # fmt: skip
    res.add(
        backend, f"label filter, newest {out['page_rows']} with text and metrics, median",
        f"{out['page_ms']:.1f} ms ({out['page_text_chars'] / 1000:,.0f} k chars of text)",
        "page_ms", out["page_ms"],
    )  # fmt: skip
    share = out["search_matches"] / max(1, out["rows"])
    res.add(
        backend, f"free-text search '{search}', newest 50, median",
        f"{out['search_ms'] / 1000:.2f} s", "search_s", out["search_ms"] / 1000,
    )  # fmt: skip
    res.add(
        backend, f"free-text search '{search}': count ({out['search_matches']:,}, {share:.1%})",
        f"{out['search_count_ms'] / 1000:.2f} s", "search_count_s", out["search_count_ms"] / 1000,
    )  # fmt: skip
    res.add(
        backend, "new notebook process: RSS after these questions",
        f"{_mb(out['after_rss_mb'])} (peak {_mb(out['after_peak_mb'])})",
        "notebook_peak_mb", out["after_peak_mb"],
    )  # fmt: skip


def export(backend: str, url: str, workdir: Path, res: Results) -> None:
    path = workdir / f"export-{backend}.parquet"
    out = run_script(EXPORT, [url, str(path)], url, workdir / f"export-{backend}.log")
    size = path.stat().st_size / 1e6
    path.unlink()
    res.add(
        backend, f"new process: all {out['rows']:,} rows joined with metrics -> Parquet",
        f"{out['export_s']:.1f} s, {size:,.0f} MB file", "export_s", out["export_s"],
    )  # fmt: skip
    res.add(
        backend, "new process: peak RSS of that export", _mb(out["peak_mb"]),
        "export_peak_mb", out["peak_mb"],
    )  # fmt: skip


# -- 5. the gateway's REST analytics; 6. freshness under chat load ------------------------------


@dataclass
class RunningGateway:
    base: str
    pid: int
    url: str


@contextmanager
def gateway(backend: str, url: str, workdir: Path) -> Iterator[RunningGateway]:
    """The fake upstream and `interlog serve` on URL (sync owner on, admin key), seeded with
    the benchmark's project; its rows are removed from the store afterwards."""
    with services.fake_upstream(workdir) as upstream:
        seed_bench_project(url, upstream)
        try:
            port = services.free_port()
            env = {
                "INTERLOG_DATABASE_URL": url,
                "INTERLOG_ADMIN_KEY": ADMIN_KEY,
                "INTERLOG_ANALYTICS_SYNC": "true",
                "INTERLOG_ANALYTICS_READER": "true",  # the defaults (the tests' env turns them off)
                "INTERLOG_JOURNAL_DIR": str(workdir / f"journal-{backend}"),
                "INTERLOG_LOG_LEVEL": "warning",
            }
            command = [sys.executable, "-m", "ingest", "serve", "--port", str(port)]
            command += ["--no-migrate"]
            log = workdir / f"gateway-{backend}.log"
            with services.process(command, log=log, env=env) as child:
                base = f"http://127.0.0.1:{port}"
                services.wait_or_explain(f"{base}/healthz", child, log, 120)
                yield RunningGateway(base, child.pid, url)
                _drain(base)
        finally:
            removed = remove_bench_rows(url)
            print(f"  removed the benchmark's {removed:,} chat interactions from the store")


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def _drain(base: str, timeout: float = 60) -> None:
    """Wait until the gateway's journal is written to the store."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/api/v1/status", headers=_headers(), timeout=10).json()
        if status["journal"]["depth"] == 0:
            return
        time.sleep(0.1)


def _wait_for_owner(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if "store.analytics.owner" in " ".join(child.cmdline()):
                    return
            except psutil.Error:
                continue
        time.sleep(0.1)
    raise RuntimeError("the gateway started no analytics sync-owner child")


def rest_analytics(backend: str, gw: RunningGateway, runs: int, res: Results) -> None:
    import httpx

    _wait_for_owner(gw.pid)
    time.sleep(1.0)  # the owner's first cycle (nothing to do: the store was just built)
    at_start = RssSampler(gw.pid).sample()
    calls: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    requests: list[tuple[str, str, list[tuple[str, Any]]]] = [
        ("summary?by=model", "/api/v1/analytics/summary", [("by", "model")]),
        ("summary?by=model&label=team=t7", "/api/v1/analytics/summary",
         [("by", "model"), ("label", "team=t7")]),
        ("summary?by=label:team", "/api/v1/analytics/summary", [("by", "label:team")]),
        ("labels/team/values", "/api/v1/analytics/labels/team/values", []),
        ("interactions/export?format=parquet&label=team=t7", "/api/v1/interactions/export",
         [("format", "parquet"), ("label", "team=t7")]),
    ]  # fmt: skip
    exports = [request for request in requests if "export" in request[0]]
    analytics_calls = [request for request in requests if "export" not in request[0]]

    def call_all(client: Any, batch: list[tuple[str, str, list[tuple[str, Any]]]]) -> None:
        for round_number in range(runs + 1):
            for name, path, params in batch:
                began = time.perf_counter()
                size = 0
                with client.stream("GET", path, params=params) as response:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                    if response.status_code != 200:
                        raise RuntimeError(f"GET {path}: HTTP {response.status_code}")
                calls.setdefault(name if round_number else "first " + name, []).append(
                    time.perf_counter() - began
                )
                sizes[name] = size

    # The analytics questions first (the target), then exports (message text streams through
    # the gateway), each phase with its own RSS sampler.
    with httpx.Client(base_url=gw.base, headers=_headers(), timeout=600) as client:
        with RssSampler(gw.pid) as sampler:
            call_all(client, analytics_calls)
        with RssSampler(gw.pid) as export_sampler:
            call_all(client, exports)
    after = RssSampler(gw.pid).sample()
    first = calls.pop(f"first {requests[0][0]}")[0]
    res.add(
        backend, "gateway: RSS at start (own / sync-owner child / reader child)",
        f"{_mb(at_start['own'])} / {_mb(at_start['owner'])} / {_mb(at_start['reader'])}",
    )  # fmt: skip
    res.add(backend, "gateway: first REST analytics call (summary?by=model)",
            f"{first * 1000:,.0f} ms")  # fmt: skip
    for name, times in calls.items():
        if name.startswith("first "):
            continue
        extra = f", {sizes[name] / 1e6:,.1f} MB" if "export" in name else ""
        res.add(backend, f"gateway: GET {name}, median of {len(times)}",
                f"{statistics.median(times) * 1000:,.0f} ms{extra}")  # fmt: skip
    res.add(
        backend, "gateway process: peak RSS during the REST analytics calls",
        f"{_mb(sampler.peak['own'])}",
        "gateway_peak_mb", sampler.peak["own"],
    )  # fmt: skip
    res.add(
        backend, "gateway process: peak RSS during the filtered Parquet exports after them",
        f"{_mb(export_sampler.peak['own'])} (after: {_mb(after['own'])}; VmHWM since start "
        f"{_mb(export_sampler.hwm)})",
    )  # fmt: skip
    res.add(
        backend, "its analytics reader child (answers the calls): peak RSS during the analytics "
        "calls / during the exports (it ends past INTERLOG_ANALYTICS_READER_MAX_MB)",
        f"{_mb(sampler.peak['reader'])} / {_mb(export_sampler.peak['reader'])}",
        "reader_peak_mb", max(sampler.peak["reader"], export_sampler.peak["reader"]),
    )  # fmt: skip
    res.add(
        backend, "its sync-owner child: peak RSS during the calls",
        f"{_mb(sampler.peak['owner'])} (other children: {_mb(sampler.peak['other'])})",
        "owner_peak_mb", sampler.peak["owner"],
    )  # fmt: skip


def _chat_body(labels: dict[str, str]) -> bytes:
    import orjson

    return orjson.dumps(
        {
            "model": BENCH_PROJECT,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant for the benchmark."},
                {"role": "user", "content": "How do I reset my password? " * 4},
            ],
            "max_tokens": 64,
            "labels": labels,
            "metadata": {"source": "bench-query"},
        }
    )


@dataclass
class LoadDone:
    seconds: float
    completed: int
    errors: int
    probes: dict[str, float]  # probe id -> wall time it was sent


def drive_load(chat_url: str, seconds: float, rate: float, probe_every: float) -> LoadDone:
    """Open-loop chat load: request k leaves at start + k/RATE (as soon as a connection is
    free); and a probe request every PROBE_EVERY seconds, labelled probe=<uuid>."""
    import aiohttp

    bodies = [
        _chat_body({"team": f"t{i % 50}", "env": "bench", "customer": f"c{i % 1000}"})
        for i in range(200)
    ]
    headers = {"Content-Type": "application/json", **_headers()}
    probes: dict[str, float] = {}
    counts = {"completed": 0, "errors": 0, "next": 0}

    async def main() -> float:
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            start = loop.time()
            end = start + seconds

            async def send(body: bytes) -> None:
                try:
                    async with session.post(chat_url, data=body) as response:
                        await response.read()
                        counts["errors"] += response.status != 200
                except aiohttp.ClientError:
                    counts["errors"] += 1
                counts["completed"] += 1

            async def worker() -> None:
                while True:
                    k = counts["next"]
                    counts["next"] += 1
                    due = start + k / rate
                    if due >= end:
                        return
                    if due > loop.time():
                        await asyncio.sleep(due - loop.time())
                    await send(bodies[k % len(bodies)])

            async def prober() -> None:
                k = 0
                while (due := start + k * probe_every) < end:
                    if due > loop.time():
                        await asyncio.sleep(due - loop.time())
                    probe = uuid.uuid4().hex
                    probes[probe] = time.time()
                    await send(_chat_body({"probe": probe, "env": "bench"}))
                    k += 1

            await asyncio.gather(prober(), *(worker() for _ in range(32)))
            return loop.time() - start

    elapsed = asyncio.run(main())
    return LoadDone(elapsed, counts["completed"], counts["errors"], probes)


class ProbeWatcher:
    """Polls the analytics store every INTERVAL s through this process's own DuckDB (the
    lake's catalog and Parquet files: never the SQLite store file), reading what the sync
    owner has committed, and notes when each probe label first shows."""

    def __init__(self, url: str, since: datetime, interval: float = 0.05) -> None:
        from store.analytics.lake import lake_for
        from store.db import create_store_engine

        self.engine = create_store_engine(url)
        self.lake = lake_for(self.engine)
        con = self.lake.open()
        if con is None:
            raise RuntimeError("no analytics store to watch")
        self.cursor = con.cursor()
        self.since = since
        self.interval = interval
        self.seen: dict[str, float] = {}
        self.polls: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sql = (
            "SELECT DISTINCT labels['probe'] FROM interactions "
            "WHERE created_at >= ? AND labels['probe'] IS NOT NULL"
        )
        while not self._stop.is_set():
            began = time.perf_counter()
            rows = self.cursor.execute(sql, [self.since]).fetchall()
            now = time.time()
            self.polls.append(time.perf_counter() - began)
            for (probe,) in rows:
                self.seen.setdefault(probe, now)
            self._stop.wait(self.interval)

    def __enter__(self) -> ProbeWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        from store.analytics.lake import drop_lake

        self.cursor.close()
        drop_lake(self.engine)
        self.engine.dispose()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def freshness(backend: str, gw: RunningGateway, seconds: float, rate: float, res: Results) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    with ProbeWatcher(gw.url, since) as watcher, RssSampler(gw.pid) as sampler:
        load = drive_load(f"{gw.base}/api/v1/chat/completions", seconds, rate, 0.1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(load.probes) <= set(watcher.seen):
            time.sleep(0.05)
    delays = [watcher.seen[p] - sent for p, sent in load.probes.items() if p in watcher.seen]
    missing = len(load.probes) - len(delays)
    res.add(
        backend, f"chat load through the gateway for {load.seconds:.0f} s (asked {rate:,.0f}/s)",
        f"{load.completed / load.seconds:,.0f} req/s, {load.errors} errors",
        "load_rps", load.completed / load.seconds,
    )  # fmt: skip
    if not delays:
        res.add(backend, "freshness: no probe became visible within 30 s", "-")
        return
    p95 = _quantile(delays, 0.95)
    res.add(
        backend, f"freshness: logged -> visible in analytics, {len(delays)} probes",
        f"p50 {statistics.median(delays):.2f} s, p95 {p95:.2f} s, max {max(delays):.2f} s"
        + (f", {missing} never seen" if missing else ""),
        "fresh_p95_s", p95 if not missing else float("inf"),
    )  # fmt: skip
    res.add(
        backend, "freshness poll (this process's DuckDB, recent files), median",
        f"{statistics.median(watcher.polls) * 1000:,.0f} ms",
    )  # fmt: skip
    res.add(
        backend, "under that load: gateway / sync-owner child peak RSS",
        f"{_mb(sampler.peak['own'])} / {_mb(sampler.peak['owner'])}",
    )  # fmt: skip


# -- 7. a big analytics store, generated directly --------------------------------------------


def _pool_table(n: int, catalog: Any) -> Any:
    """N realistic interactions (bench/realistic.py, seed SEED) as an Arrow table, the
    columns the analytics store takes from each (texts, model, outcome, tokens, times)."""
    import orjson
    import pyarrow as pa

    from bench import realistic

    quality = {catalog.models[m.key]: m.quality for m in realistic.MODELS}
    generator = realistic.Generator(n, seed=SEED, end=END, catalog=catalog, kind=None)
    records = [record for chunk in generator.chunks() for record in chunk.records][:n]
    columns: dict[str, list[Any]] = {}

    def put(name: str, value: Any) -> None:
        columns.setdefault(name, []).append(value)

    for index, record in enumerate(records):
        messages = record.get("messages", [])
        last = messages[-1]["content"] if messages else ""
        if isinstance(last, list):
            last = "\n".join(p.get("text", "") for p in last if isinstance(p, dict))
        put("idx", index)
        for name in (
            "project_id", "model_id", "ab_test_id", "ab_variant", "replica", "user_id",
            "completion", "finish_reason", "prompt_tokens", "completion_tokens", "ttft_ms",
            "latency_ms", "status", "error", "source",
        ):  # fmt: skip
            put(name, record.get(name))
        put("messages", orjson.dumps(messages).decode())
        put("params", orjson.dumps(record.get("params", {})).decode())
        put("prompt_text", last)
        put("quality", quality.get(record.get("model_id") or 0, 0.7))
    return pa.table(columns)


BIG_LABEL_KEYS = ("team", "env", "customer", "feature", "region", "version")


def _big_sql(n: int, pool: int, catalog: Any) -> tuple[str, str]:
    """INSERT ... SELECT of interactions and of metric values for rows [?, ?) of N."""
    from store.analytics.layout import INTERACTIONS, METRIC_VALUES

    def u(salt: str) -> str:  # a deterministic uniform number in [0, 1) per row
        return f"((hash(r.i, '{salt}') % 1000000) / 1000000.0)"

    start = (END - timedelta(days=30)).timestamp()
    span = 30 * 86_400
    env = (
        f"CASE WHEN {u('env')} < 0.82 THEN 'prod' WHEN {u('env')} < 0.94 THEN 'staging' "
        "ELSE 'dev' END"
    )
    region = (
        f"CASE WHEN {u('rg')} < 0.38 THEN 'eu' WHEN {u('rg')} < 0.75 THEN 'us' "
        f"WHEN {u('rg')} < 0.90 THEN 'ap' WHEN {u('rg')} < 0.96 THEN 'sa' ELSE 'af' END"
    )
    versions = "['2.3.1', '2.4.0', '2.4.2', '2.5.0', '2.6.0', '3.0.0']"
    labels = (
        "map_from_entries(list_filter(["
        f"{{'key': 'team', 'value': 't' || (hash(r.i, 'team') % 50)}}, "
        f"{{'key': 'env', 'value': {env}}}, "
        f"{{'key': 'customer', 'value': 'c' || (hash(r.i, 'cu') % 1000)}}, "
        f"CASE WHEN {u('fe')} < 0.5 THEN {{'key': 'feature', 'value': "
        f"'f' || CAST(floor(20 * pow({u('fv')}, 1.5)) AS INTEGER)}} END, "
        f"CASE WHEN {u('re')} < 0.6 THEN {{'key': 'region', 'value': {region}}} END, "
        f"CASE WHEN {u('ve')} < 0.3 THEN {{'key': 'version', 'value': "
        f"{versions}[1 + CAST(floor(6 * {u('vv')}) AS INTEGER)]}} END"
        "], lambda x: x IS NOT NULL))"
    )
    created = f"to_timestamp({start} + (r.i + {u('t')}) * {span / n})"
    exprs = {
        "completion_id": "CAST(md5(CAST(r.i AS VARCHAR) || 'c') AS UUID)",
        "request_id": "'req-' || substr(md5(CAST(r.i AS VARCHAR) || 'r'), 1, 24)",
        "choice_index": "0",
        "session_id": "CAST(md5(CAST(r.i // 2 AS VARCHAR) || 's') AS UUID)",
        "labels": labels,
        "ttft_ms": f"p.ttft_ms * (0.8 + 0.4 * {u('tt')})",
        "latency_ms": f"p.latency_ms * (0.8 + 0.4 * {u('la')})",
        "created_at": created,
    }
    # The label keys' own columns, as the sync fills them (BIG_LABEL_KEYS, in label_columns).
    for n_key, key in enumerate(BIG_LABEL_KEYS):
        exprs[f"label_{n_key}"] = f"({labels})['{key}']"
    names = [column.name for column in INTERACTIONS.columns]
    select = ", ".join(
        exprs.get(name, "NULL" if name.startswith("label_") else f"p.{name}") for name in names
    )
    source = f"FROM range(?, ?) r(i) JOIN pool p ON p.idx = hash(r.i, 'pool') % {pool}"
    interactions = f"INSERT INTO lake.interactions ({', '.join(names)}) SELECT {select} {source}"
    thumbs = f"{u('mk')} >= 0.7"
    metric_exprs = {
        "id": "CAST(md5(CAST(r.i AS VARCHAR) || 'm') AS UUID)",
        "completion_id": exprs["completion_id"],
        "metric_id": f"CASE WHEN {thumbs} THEN m.thumbs ELSE m.quality END",
        "value": f"CASE WHEN {thumbs} THEN CAST({u('mv')} < p.quality AS DOUBLE) "
        f"ELSE round(greatest(0, least(1, p.quality + ({u('mv')} - 0.5) * 0.5)), 3) END",
        "details": "NULL",
        "reason": "NULL",
        "user_id": "p.user_id",
        "created_at": f"{created} + INTERVAL 2 MINUTE",
    }
    metric_names = [column.name for column in METRIC_VALUES.columns]
    missing = set(metric_names) - set(metric_exprs)
    assert not missing, f"bench/query.py: no value for metric_values columns {missing}"
    metric_values = (
        f"INSERT INTO lake.metric_values ({', '.join(metric_names)}) "
        f"SELECT {', '.join(metric_exprs[name] for name in metric_names)} {source} "
        "JOIN metric_ids m ON m.project_id = p.project_id "
        f"WHERE p.status = 'ok' AND {u('scored')} < 0.3"
    )
    return interactions, metric_values


def make_big(directory: Path, n: int, pool: int) -> dict[str, Any]:
    """A throwaway empty store (migrated, with bench/realistic's catalog) in DIRECTORY and
    its analytics store holding N generated interactions; returns facts about it."""
    import pyarrow as pa

    import migrations
    from bench import realistic
    from store.analytics.lake import Lake
    from store.analytics.sync import sync_now
    from store.db import create_store_engine
    from store.settings import get_settings

    directory.mkdir(parents=True)
    url = f"sqlite:///{directory / 'big.db'}"
    migrations.upgrade(url)
    engine = create_store_engine(url)
    settings = get_settings().model_copy(
        update={"database_url": url, "analytics_path": None, "analytics_memory_limit": "1GB"}
    )
    lake = Lake(engine, settings)
    try:
        catalog = realistic.create_catalog(engine, END - timedelta(days=realistic.DAYS))
        started = time.perf_counter()
        con = lake.open(create=True)
        assert con is not None
        pool_table = _pool_table(pool, catalog)
        pool = pool_table.num_rows
        metric_ids = pa.table(
            {
                "project_id": [catalog.projects[p.key] for p in realistic.PROJECTS],
                "quality": [catalog.metrics[p.key, "quality"] for p in realistic.PROJECTS],
                "thumbs": [catalog.metrics[p.key, "thumbs"] for p in realistic.PROJECTS],
            }
        )
        cursor = con.cursor()
        cursor.register("pool_rows", pool_table)
        cursor.execute("CREATE TEMP TABLE pool AS SELECT * FROM pool_rows")
        cursor.register("metric_id_rows", metric_ids)
        cursor.execute("CREATE TEMP TABLE metric_ids AS SELECT * FROM metric_id_rows")
        interactions, metric_values = _big_sql(n, pool, catalog)
        for n_key, key in enumerate(BIG_LABEL_KEYS):
            con.execute("INSERT INTO lake.label_columns VALUES (?, ?)", [key, f"label_{n_key}"])
        for first in range(0, n, BIG_BATCH):
            last = min(n, first + BIG_BATCH)
            cursor.execute("BEGIN")
            cursor.execute(interactions, [first, last])
            cursor.execute(metric_values, [first, last])
            cursor.execute("COMMIT")
            rate = last / (time.perf_counter() - started)
            print(f"  {last:>11,} interactions  {rate:>8,.0f}/s", file=sys.stderr, flush=True)
        cursor.close()
        seconds = time.perf_counter() - started
        sync_now(lake)  # the sync state: the analytics store is up to date with its store
    finally:
        lake.close()
        engine.dispose()
    data = directory / "big.analytics"
    return {
        "rows": n,
        "pool": pool,
        "seconds": seconds,
        "parquet_mb": _tree_bytes(data) / 1e6,
        "files": sum(1 for _ in data.rglob("*.parquet")),
        "url": url,
        "version": BIG_VERSION,
    }


BIG_SCRIPT = r"""
import json, statistics, sys, time
started = time.perf_counter()
from store import analytics
from store.db import create_store_engine
from store.filters import Filters
from store.keys import Principal
imported = time.perf_counter() - started
import psutil

url, runs = sys.argv[1], int(sys.argv[2])
engine = create_store_engine(url)
admin = Principal(is_admin=True)
stale = 3600.0

def peak():  # VmHWM: ru_maxrss would count the parent's RSS at the fork
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024 / 1e6

def reset_peak():  # VmHWM from now on (Linux: clear_refs 5), so each question has its own
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")

def summary(filters):
    return analytics.summary(engine, filters, scope=admin, by="model", max_staleness=stale)

def median_ms(question, runs):
    question()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        question()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000

out = {"import_s": imported}
began = time.perf_counter()
first = summary(Filters())
out["first_summary_s"] = time.perf_counter() - began
out["first_rss_mb"] = psutil.Process().memory_info().rss / 1e6
out["first_peak_mb"] = peak()
out["rows"] = int(first["count"].sum())
label = Filters(labels={"team": "t7"})
reset_peak()
out["label_rows"] = int(summary(label)["count"].sum())
out["label_summary_ms"] = median_ms(lambda: summary(label), runs)
out["label_peak_mb"] = peak()
reset_peak()
out["all_summary_ms"] = median_ms(lambda: summary(Filters()), max(3, runs // 4))
out["all_peak_mb"] = peak()
out["rss_mb"] = psutil.Process().memory_info().rss / 1e6
out["peak_mb"] = max(out["first_peak_mb"], out["label_peak_mb"], out["all_peak_mb"])
print(json.dumps(out))
"""


def big(n: int, *, fresh: bool, workdir: Path, runs: int, res: Results) -> None:
    """The big analytics store (cached in .bench-cache/big-N/), then a new process's
    questions on it."""
    directory = CACHE / f"big-{n}"
    meta_path = directory / "meta.json"
    meta: dict[str, Any] | None = None
    if meta_path.exists() and not fresh:
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != BIG_VERSION:
            meta = None
    cached = meta is not None
    if meta is None:
        if directory.exists():
            shutil.rmtree(directory)
        CACHE.mkdir(exist_ok=True)
        print(f"generating {n:,} interactions into an analytics store in {directory} ...")
        meta = make_big(directory, n, min(BIG_POOL, max(100, n // 10)))
        meta_path.write_text(json.dumps(meta, indent=1))
    scope = "lake"
    res.add(
        scope, f"generate {n:,} interactions straight into an analytics store",
        f"{meta['seconds']:.0f} s ({n / meta['seconds']:,.0f}/s; rows drawn from a pool of "
        f"{meta['pool']:,})" + ("; cached from an earlier run" if cached else ""),
    )  # fmt: skip
    res.add(
        scope, "its Parquet files (zstd)",
        f"{meta['parquet_mb']:,.0f} MB in {meta['files']} files "
        f"({meta['parquet_mb'] * 1e6 / n:,.0f} B/interaction)", "big_parquet_mb",
        meta["parquet_mb"],
    )  # fmt: skip
    out = run_script(BIG_SCRIPT, [meta["url"], str(runs)], meta["url"], workdir / "big.log")
    res.add(
        scope, f"new process: first summary by model ({out['rows']:,} rows)",
        f"{out['first_summary_s']:.2f} s; RSS after {_mb(out['first_rss_mb'])} "
        f"(peak {_mb(out['first_peak_mb'])})",
    )  # fmt: skip
    res.add(
        scope, f"label filter ({out['label_rows']:,} rows) + per-model summary, median",
        f"{out['label_summary_ms']:,.0f} ms (peak RSS {_mb(out['label_peak_mb'])})",
        "big_label_summary_ms", out["label_summary_ms"],
    )  # fmt: skip
    res.add(
        scope, "summary of all rows by model, median",
        f"{out['all_summary_ms']:,.0f} ms (peak RSS {_mb(out['all_peak_mb'])})",
    )  # fmt: skip
    res.add(
        scope, "that process's RSS after the questions (peak of all)",
        f"{_mb(out['rss_mb'])} (peak {_mb(out['peak_mb'])})", "big_peak_mb", out["peak_mb"],
    )  # fmt: skip


# -- the whole run ------------------------------------------------------------------------------

STEPS = ("build", "notebook", "export", "gateway", "freshness", "big")


def _guard(res: Results, backend: str, step: str, function: Callable[[], None]) -> None:
    """Run one step; a failure is printed and recorded, and the run goes on."""
    try:
        function()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        res.add(backend, f"{step} FAILED", f"{type(exc).__name__}: {exc}"[:400])


def run_backend(
    backend: str, url: str, rows: int, args: argparse.Namespace, workdir: Path, res: Results
) -> None:
    """Steps 2-6 on one store."""
    steps = set(args.steps)
    if "build" in steps:
        _guard(res, backend, "build", lambda: build(backend, url, workdir, rows, res))
    if "notebook" in steps:
        _guard(
            res, backend, "notebook",
            lambda: notebook(backend, url, workdir, args.runs, args.search, res),
        )  # fmt: skip
    if "export" in steps:
        _guard(res, backend, "export", lambda: export(backend, url, workdir, res))
    if not steps & {"gateway", "freshness"}:
        return

    def serve() -> None:
        with gateway(backend, url, workdir) as gw:
            if "gateway" in steps:
                _guard(
                    res, backend, "gateway",
                    lambda: rest_analytics(backend, gw, args.rest_runs, res),
                )  # fmt: skip
            if "freshness" in steps:
                _guard(
                    res, backend, "freshness",
                    lambda: freshness(backend, gw, args.seconds, args.rate, res),
                )  # fmt: skip

    _guard(res, backend, "gateway", serve)


def shown_url(url: str) -> str:
    """URL for the report: no password, and a SQLite path relative to the repository (the
    report is committed: it must not name a path of the machine it ran on)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = Path(parsed.database).resolve()
        with contextlib.suppress(ValueError):
            return f"sqlite:///{path.relative_to(ROOT)}"
        return f"sqlite:///.../{path.name}"
    return parsed.render_as_string(hide_password=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import migrations

    res = Results()
    probe = python_probe_ms()
    res.add("machine", "Python speed probe (bench/speed.py; lower is faster)", f"{probe:.0f} ms")
    steps = set(args.steps)
    backends = [name for name in args.backends.split(",") if name]
    stores: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="interlog-bench-query-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            if backend == "sqlite":
                url = (
                    f"sqlite:///{Path(args.sqlite).resolve()}"
                    if args.sqlite
                    else sqlite_store(args.rows, fresh=args.fresh, res=res)
                )
            elif backend == "postgres":
                reason = services.postgres_available()
                if reason:
                    res.add("postgres", "skipped", reason)
                    continue
                url = args.postgres or postgres_store(args.rows, fresh=args.fresh, res=res)
            else:
                raise SystemExit(f"unknown backend {backend!r}: sqlite or postgres")
            migrations.upgrade(url)
            removed = remove_bench_rows(url)
            if removed:
                print(f"  removed {removed:,} chat interactions left by an earlier run")
            rows = _count(url)
            stores[backend] = shown_url(url)
            res.add(
                backend, "the store", f"{rows:,} interactions, {store_size_mb(url):,.0f} MB: "
                f"{stores[backend]}", "rows", rows,
            )  # fmt: skip
            run_backend(backend, url, rows, args, workdir, res)
        if "big" in steps and args.big > 0:
            _guard(
                res, "lake", "big",
                lambda: big(args.big, fresh=args.fresh, workdir=workdir, runs=args.runs, res=res),
            )  # fmt: skip
    return {
        "rows": args.rows,
        "big_rows": args.big if "big" in steps else 0,
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "speed_probe_ms": probe,
        "load_average": list(os.getloadavg()),
        "stores": stores,
        "search": args.search,
        "rate": args.rate,
        "seconds": args.seconds,
        "lines": res.lines,
        "numbers": res.numbers,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench query",
        description=(__doc__ or "").splitlines()[0],
        epilog="Targets: bench/report.py QUERY_TARGETS (issue 17). `python -m bench query` also "
        "takes --out DIR (default docs/), where it writes its report section.",
    )
    parser.add_argument("--rows", type=int, help=f"interactions in each store ({ROWS:,})")
    parser.add_argument(
        "--big", type=int, help=f"interactions in the big analytics store ({BIG:,}; 0: skip)"
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sqlite", help="an existing SQLite store file to use")
    parser.add_argument("--postgres", help="an existing PostgreSQL store URL to use")
    parser.add_argument("--fresh", action="store_true", help="regenerate the cached stores")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_ROWS:,} rows, --big {QUICK_BIG:,}, 5 s of load, fewer repetitions",
    )
    parser.add_argument("--seconds", type=float, help="chat load duration (20; quick 5)")
    parser.add_argument("--rate", type=float, default=1000.0, help="chat requests/s asked")
    parser.add_argument("--runs", type=int, help=f"repetitions of a timed question ({RUNS})")
    parser.add_argument("--rest-runs", type=int, help="repetitions of each REST call (5)")
    parser.add_argument("--search", default=SEARCH, help="the free-text search word")
    parser.add_argument(
        "--steps", nargs="+", choices=STEPS, default=list(STEPS), help="run only these steps"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    if args.rows is None:
        args.rows = QUICK_ROWS if quick else ROWS
    if args.big is None:
        args.big = QUICK_BIG if quick else BIG
    if args.seconds is None:
        args.seconds = 5.0 if quick else 20.0
    if args.runs is None:
        args.runs = 11 if quick else RUNS
    if args.rest_runs is None:
        args.rest_runs = 3 if quick else 5
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    services.stop_on_sigterm()
    return run(args)


if __name__ == "__main__":
    main()
