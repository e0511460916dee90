"""Dashboard on realistic stores: the first page in a NEW dashboard process, then every page.

The stores are bench/query.py's (bench/realistic.py's interactions, about 3 KB of text each):
the SQLite store .bench-cache/realistic-N.db and the PostgreSQL database
interlog_bench_realistic_N, each with its analytics store built (`python -m bench query --steps
build` makes both when missing). The dashboard only reads them: a store whose analytics store
is not built is refused (the dashboard would build it first), and a run during which another
process wrote to the store (the dashboard then waits for, or does, a catch-up) is flagged.

Per backend and run, in a real headless Chromium (bench/dashboard_browser.py), started before
the dashboard so that its own start-up does not count:
1. `interlog dashboard` (`streamlit run`, sign-in off on loopback) starts as a NEW process; timed
   from that start until the first page (Overview: totals, charts and the per-model table of
   every interaction) has settled in the browser with its data. The CPU seconds the dashboard's
   processes used until then (less noisy than wall time on a shared machine), and RSS of the
   dashboard process (the Streamlit server; the browser's memory is not the dashboard's).
   Each run prints when each step of it ended, counted from the process start
   (dashboard/timing.py: the CLI starting the server, the server listening, the warm-up's
   steps, the script run's reads), and bench/speed.py's probe taken just before it.
2. Each other page from the page menu, its first view (its own reads not cached yet).
3. After the data-version period (dashboard.context.REFRESH_SECONDS), every page again: the
   warm view (the version is looked up again, the data did not change, so the page comes from
   the caches). RSS of the dashboard process after.
Medians over --runs new processes. Target: the first page in a new process within 3 s
(bench/report.py DASHBOARD_TARGETS).

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--runs 3] [--backends sqlite,postgres]
        [--sqlite PATH] [--postgres URL]
    python -m bench dashboard [ARGS]   # the same, and writes the docs/benchmarks.md section
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench import dashboard_browser, report, services  # noqa: E402
from bench.speed import python_probe_ms  # noqa: E402
from dashboard import timing  # noqa: E402

if TYPE_CHECKING:
    import subprocess

    from selenium.webdriver.remote.webdriver import WebDriver

ROWS = 1_000_000
RUNS = 3
POLL_SECONDS = 0.02  # how often the dashboard's health endpoint is asked while it starts


# -- the stores ---------------------------------------------------------------------------------


def store_url(backend: str, args: argparse.Namespace) -> str:
    """The store of BACKEND: --sqlite/--postgres, else bench/query.py's cached one (which that
    helper generates when missing)."""
    from bench import query

    results = query.Results()
    if backend == "sqlite":
        if args.sqlite:
            return f"sqlite:///{Path(args.sqlite).resolve()}"
        return query.sqlite_store(args.rows, fresh=False, res=results)
    if backend == "postgres":
        return str(args.postgres or query.postgres_store(args.rows, fresh=False, res=results))
    raise SystemExit(f"unknown backend {backend!r}: sqlite or postgres")


@dataclass(frozen=True)
class StoreState:
    """What the analytics store holds (interactions, latest snapshot), and whether the store
    has rows it lacks: changes there during a run mean another process wrote to the store."""

    rows: int
    snapshot: int
    pending: bool


def store_state(url: str) -> StoreState:
    """The store's StoreState; refuses a store whose analytics store is not built (the
    dashboard would build it first: minutes of writing). Reads only: the relational store
    through SQLAlchemy, the analytics store's catalog through DuckDB (never a SQLite store file
    through DuckDB)."""
    from store.analytics import changes
    from store.analytics.lake import LAKE, drop_lake, lake_for
    from store.analytics.sync import read_state
    from store.db import create_store_engine

    engine = create_store_engine(url)
    lake = lake_for(engine)
    try:
        con = lake.open()
        state = read_state(con.cursor())[0] if con is not None else None
        if con is None or state is None or not state.complete:
            raise RuntimeError(
                f"the analytics store of {url} is not built: `python -m bench query --steps "
                "build` builds it"
            )
        with engine.connect() as connection:
            feed = changes.feed_for(connection)
            pending = bool(feed.pending(connection, state.position))
        rows, snapshot = con.execute(
            "SELECT (SELECT count(*) FROM interactions), "
            f"(SELECT max(snapshot_id) FROM ducklake_snapshots('{LAKE}'))"
        ).fetchone() or (0, 0)
        return StoreState(int(rows), int(snapshot), pending)
    finally:
        drop_lake(engine)
        engine.dispose()


# -- one dashboard process ----------------------------------------------------------------------


def cpu_s(process: psutil.Process) -> float:
    """CPU seconds (user + system) the dashboard's process tree has used since it started: less
    noisy than wall time on a shared machine, and a floor for it on an idle one with as many
    cores as the dashboard keeps busy."""
    tree = [process, *process.children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in tree if p.is_running())


def rss_mb(process: psutil.Process) -> dict[str, float]:
    """RSS of the dashboard process (the Streamlit server) and of its whole process tree
    (`interlog dashboard`'s CLI process, the server, any sync child), in MB."""
    tree = [process, *process.children(recursive=True)]
    sizes = {p.pid: p.memory_info().rss / 1e6 for p in tree if p.is_running()}
    server = next((p for p in tree if "streamlit" in " ".join(p.cmdline())), process)
    return {"rss_mb": sizes.get(server.pid, 0.0), "tree_mb": sum(sizes.values())}


def _wait_healthy(url: str, child: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the dashboard's health endpoint every POLL_SECONDS until it answers."""
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the dashboard exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{url} did not answer within 120 s")


@contextmanager
def dashboard_process(
    url: str, workdir: Path, timing_file: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`interlog dashboard` on the store at URL, sign-in off (loopback); stopped by PID. With
    TIMING_FILE, its steps are noted there (dashboard/timing.py)."""
    port = services.free_port()
    env = {"INTERLOG_DATABASE_URL": url, "INTERLOG_DASHBOARD_AUTH": "false"}
    if timing_file is not None:
        env[timing.ENV] = str(timing_file)
    command = [sys.executable, "-m", "ingest", "dashboard", "--host", "127.0.0.1"]
    log = workdir / f"dashboard-{port}.log"
    with services.process([*command, "--port", str(port)], log=log, env=env) as child:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(f"{base}/_stcore/health", child, log)
        yield base, child


def refresh_seconds() -> float:
    """The dashboard's data-version period (dashboard.context.REFRESH_SECONDS), read without
    Streamlit's warnings about caches used outside a running app."""
    import logging

    import streamlit  # noqa: F401  (configures its loggers, which the next lines quieten)

    for api in ("cache_data_api", "cache_resource_api"):
        logging.getLogger(f"streamlit.runtime.caching.{api}").setLevel(logging.ERROR)
    from dashboard.context import REFRESH_SECONDS

    return float(REFRESH_SECONDS)


def one_run(url: str, workdir: Path) -> dict[str, Any]:
    """A new dashboard process in front of an open browser: the first page (seconds from the
    process start, and when it answered), RSS then, each other page's first view, every page's
    warm view, RSS after."""
    timing_file = workdir / f"timing-{time.monotonic_ns()}.txt"
    with dashboard_browser.chromium() as driver:
        wall_started = time.time()
        started = time.perf_counter()
        with dashboard_process(url, workdir, timing_file) as (base, child):
            healthy = time.perf_counter() - started
            dashboard_browser.first_page(driver, base)
            first = time.perf_counter() - started
            process = psutil.Process(child.pid)
            first_cpu = cpu_s(process)
            after_first = rss_mb(process)
            steps = timing.read(str(timing_file), wall_started)
            views = _page_views(driver)
            time.sleep(refresh_seconds() + 1)
            warm = _page_views(driver, overview=True)
            after = rss_mb(process)
    return {
        "first_page_s": first,
        "healthy_s": healthy,
        "first_cpu_s": first_cpu,
        "first_rss_mb": after_first["rss_mb"],
        "first_tree_mb": after_first["tree_mb"],
        "first_view": views,
        "warm_view": warm,
        "after_rss_mb": after["rss_mb"],
        "after_tree_mb": after["tree_mb"],
        "steps": [*steps, (healthy, None, "server answered"), (first, None, "first page shown")],
    }


def _page_views(driver: WebDriver, *, overview: bool = False) -> dict[str, float]:
    """Seconds per page, visited from the menu in order (Overview last when asked)."""
    pages = [*dashboard_browser.OTHER_PAGES, *([dashboard_browser.OVERVIEW] if overview else [])]
    return {page: dashboard_browser.visit(driver, page, text) for page, text in pages}


def print_steps(steps: list[tuple[float, float | None, str]]) -> None:
    """The first page's steps (dashboard/timing.py): seconds after the process started when
    each ended, and what each took."""
    seen: set[str] = set()
    for at, took, step in sorted(steps, key=lambda item: item[0]):
        if step in seen:  # the first run's steps only
            continue
        seen.add(step)
        shown = "" if took is None else f" ({took:.2f} s)"
        print(f"      {at:6.2f} s  {step}{shown}", flush=True)


# -- per backend, over runs ---------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    url: str
    before: StoreState


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-run numbers' medians (page times per page)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if key == "steps":
            continue
        if isinstance(value, dict):
            out[key] = {page: statistics.median(r[key][page] for r in runs) for page in value}
        else:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def measure(backend: Backend, runs: int, workdir: Path) -> dict[str, Any]:
    """RUNS new dashboard processes on one store: the medians, and each run's first page."""
    results = []
    for number in range(runs):
        probe = python_probe_ms()
        result = one_run(backend.url, workdir)
        results.append({**result, "python_probe_ms": probe})
        print(
            f"  {backend.name} run {number + 1}: first page {result['first_page_s']:.2f} s "
            f"(server up {result['healthy_s']:.2f} s, CPU {result['first_cpu_s']:.2f} s), "
            f"RSS {result['first_rss_mb']:.0f} MB; Python probe {probe:.0f} ms",
            flush=True,
        )
        print_steps(result["steps"])
    after = store_state(backend.url)
    quiet = not backend.before.pending and after == backend.before
    if not quiet:
        print(f"  {backend.name}: another process wrote to the store during the run", flush=True)
    return {
        "backend": backend.name,
        "store": _shown_url(backend.url),  # no path of this machine in the committed report
        "rows": backend.before.rows,
        **median_of(results),
        "first_page_runs": [r["first_page_s"] for r in results],
        "quiet": quiet,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every backend asked for: check its store, then measure."""
    problem = dashboard_browser.missing()
    if problem:
        raise SystemExit(f"bench/dashboard.py {problem}")
    started = time.perf_counter()
    backends: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="interlog-bench-dash-") as tmp:
        for name in [b for b in args.backends.split(",") if b]:
            if name == "postgres" and services.postgres_available():
                backends.append({"backend": name, "error": services.postgres_available()})
                continue
            url = store_url(name, args)
            backend = Backend(name, url, store_state(url))
            print(f"{name}: {backend.before.rows:,} interactions, {url}", flush=True)
            backends.append(measure(backend, args.runs, Path(tmp)))
    return {
        "rows": args.rows,
        "runs": args.runs,
        "backends": backends,
        "seconds": time.perf_counter() - started,
        "load_average": list(os.getloadavg()),
    }


def print_result(result: dict[str, Any]) -> None:
    """Per backend: the first page and RSS, then every page's first and warm view."""
    for backend in result["backends"]:
        name = backend["backend"]
        if "error" in backend:
            print(f"{name:<9} skipped: {backend['error']}")
            continue
        runs = ", ".join(f"{s:.2f}" for s in backend["first_page_runs"])
        print(
            f"{name:<9} {backend['rows']:,} interactions; first page in a new process "
            f"{backend['first_page_s']:.2f} s (runs: {runs}; server answered after "
            f"{backend['healthy_s']:.2f} s; dashboard CPU {backend['first_cpu_s']:.2f} s; "
            f"Python probe {backend['python_probe_ms']:.0f} ms); "
            f"RSS {backend['first_rss_mb']:.0f} MB"
            + ("" if backend.get("quiet", True) else " (another process wrote to the store)")
        )
        print(f"{'':<9} {'page':<13} {'first view s':>13} {'warm view s':>12}")
        for page, warm in backend["warm_view"].items():
            first = backend["first_view"].get(page)
            shown = f"{first:>13.2f}" if first is not None else f"{'(first page)':>13}"
            print(f"{'':<9} {page:<13} {shown} {warm:>12.2f}")
        print(
            f"{'':<9} RSS after every page: {backend['after_rss_mb']:.0f} MB "
            f"(process tree {backend['after_tree_mb']:.0f} MB)"
        )
    for check in report.dashboard_targets(result):
        verdict = {True: "met", False: "MISSED", None: "n/a"}[check["met"]]
        print(f"  {verdict:<7} {check['target']}: {check['measured']}  {check['gap']}")


def _shown_url(url: str) -> str:
    from bench.query import shown_url

    return shown_url(url)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench dashboard", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=ROWS, help="interactions in each store")
    parser.add_argument("--runs", type=int, default=RUNS, help="new dashboard processes (median)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sqlite", help="an existing SQLite store file to use")
    parser.add_argument("--postgres", help="an existing PostgreSQL store URL to use")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    services.stop_on_sigterm()
    result = run(parse_args(argv))
    print_result(result)
    return result


if __name__ == "__main__":
    main()
