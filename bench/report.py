"""docs/benchmarks.md and docs/benchmarks.png from the results of `python -m bench`.

`targets(results)` checks every target of issue 9 (met or not, and by how much it was missed);
`write_markdown` renders a table per benchmark with the machine and the date; `write_plot`
draws requests/s and p50/p99 latency per system and concurrency (matplotlib, no display).
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

LITELLM = "litellm proxy"

#: Issue 17's analytics targets (bench/query.py): key -> (op, limit, unit, what).
QUERY_TARGETS: dict[str, tuple[str, float, str, str]] = {
    "build_rate": (">=", 50_000, "/s", "initial build of the analytics store"),
    "first_summary_s": ("<=", 2, "s", "new notebook process: connect + first summary"),
    "first_rss_mb": ("<=", 500, "MB", "new notebook process: RSS after the first summary"),
    "label_summary_ms": ("<=", 100, "ms", "label filter + per-model summary, median"),
    "search_s": ("<=", 2, "s", "free-text search, newest 50"),
    "search_count_s": ("<=", 2, "s", "free-text search, count"),
    "export_s": ("<=", 10, "s", "all rows joined with metrics -> Parquet"),
    "export_peak_mb": ("<=", 1000, "MB", "peak RSS of that export"),
    "gateway_peak_mb": ("<=", 300, "MB", "gateway peak RSS during REST analytics calls"),
    "fresh_p95_s": ("<=", 2, "s", "logged -> visible in analytics, p95 under chat load"),
    "big_label_summary_ms": ("<=", 1000, "ms", "label filter + per-model summary, median"),
    "big_peak_mb": ("<=", 1000, "MB", "peak RSS of that process"),
}
#: The dashboard's targets (bench/dashboard.py): key -> (op, limit, unit, what).
DASHBOARD_TARGETS: dict[str, tuple[str, float, str, str]] = {
    "first_page_s": ("<=", 3, "s", "dashboard: first page in a new process"),
}


def machine() -> dict[str, Any]:
    """CPU count and model, memory, OS, Python: printed at the top of the report."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": os.getloadavg(),
    }


def _cell(results: dict[str, Any], system: str, clients: int) -> dict[str, Any] | None:
    for row in results.get("gateway", {}).get("rows", []):
        if row["system"] == system and row["clients"] == clients:
            return dict(row)
    return None


def _at_least(name: str, value: float | None, target: float, unit: str) -> dict[str, Any]:
    if value is None:
        return {"target": name, "measured": "not measured", "met": None, "gap": "-"}
    met = value >= target
    gap = "-" if met else f"{target - value:,.1f} {unit} short ({(1 - value / target):.0%} below)"
    return {"target": name, "measured": f"{value:,.1f} {unit}", "met": met, "gap": gap}


def _at_most(name: str, value: float | None, target: float, unit: str) -> dict[str, Any]:
    if value is None:
        return {"target": name, "measured": "not measured", "met": None, "gap": "-"}
    met = value <= target
    gap = "-" if met else f"{value - target:,.2f} {unit} over ({value / target:.1f}x the limit)"
    return {"target": name, "measured": f"{value:,.2f} {unit}", "met": met, "gap": gap}


def _added_p50(row: dict[str, Any] | None, direct: dict[str, Any] | None) -> float | None:
    """The p50 latency ROW adds over the direct cell: its paired-rounds median when measured."""
    if row is None or direct is None:
        return None
    return float(row.get("added_p50", row["p50"] - direct["p50"]))


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 9 with what was measured, whether it was met, and the gap."""
    checks: list[dict[str, Any]] = []
    rows = results.get("gateway", {}).get("rows", [])
    names = dict.fromkeys(
        row["system"]
        for row in rows
        if row["system"].startswith("interlog") and "store=false" not in row["system"]
    )
    systems = [s for s in names if _cell(results, s, 16)]
    litellm = _cell(results, LITELLM, 16)
    for system in systems or ["interlog sqlite"]:
        cell = _cell(results, system, 16)
        ratio = cell["rps"] / litellm["rps"] if cell and litellm and litellm["rps"] else None
        checks.append(_at_least(f"{system}: >= 40x LiteLLM req/s at 16 clients", ratio, 40, "x"))
        rps = cell["rps"] if cell else None
        checks.append(_at_least(f"{system}: >= 2,000 req/s at 16 clients", rps, 2000, "req/s"))
        one, direct = _cell(results, system, 1), _cell(results, "direct", 1)
        added = _added_p50(one, direct)
        checks.append(_at_most(f"{system}: added p50 at 1 client <= 0.5 ms", added, 0.5, "ms"))
    ingest = results.get("ingest")
    for row in ingest if isinstance(ingest, list) else []:
        processes = row.get("workers", 1)
        where = f"{row['backend']}" + (f", {processes} gateway processes" if processes > 1 else "")
        name = f"bulk ingest into {where} >= 20,000 interactions/s"
        checks.append(_at_least(name, row["rate"], 20_000, "/s"))
    checks += query_targets(results.get("query") or {})
    checks += dashboard_targets(results.get("dashboard") or {})
    for system, rss in results.get("gateway", {}).get("memory", {}).items():
        if system.startswith("interlog"):
            checks.append(
                _at_most(f"{system}: RSS under load <= 200 MB", rss["load_mb"], 200, "MB")
            )
    return checks


def query_targets(query: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 17's targets as measured by bench/query.py (per store, and on the big store)."""
    checks: list[dict[str, Any]] = []
    numbers = query.get("numbers") or {}
    for scope, values in numbers.items():
        rows = query.get("big_rows") if scope == "lake" else values.get("rows", query.get("rows"))
        where = (
            f"{int(rows or 0):,} interactions in the analytics store"
            if scope == "lake"
            else f"{int(rows or 0):,} interactions, {scope}"
        )
        for key, (op, limit, unit, what) in QUERY_TARGETS.items():
            if key not in values:
                continue
            name = f"{where}: {what} {op} {limit:,g} {unit}"
            check = _at_least if op == ">=" else _at_most
            checks.append(check(name, values[key], limit, unit))
    return checks


def dashboard_targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's targets as measured by bench/dashboard.py, per store."""
    checks: list[dict[str, Any]] = []
    for backend in dashboard.get("backends") or []:
        where = f"{int(backend.get('rows') or 0):,} interactions, {backend.get('backend')}"
        for key, (op, limit, unit, what) in DASHBOARD_TARGETS.items():
            name = f"{where}: {what} {op} {limit:,g} {unit}"
            check = _at_least if op == ">=" else _at_most
            checks.append(check(name, backend.get(key), limit, unit))
    return checks


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]
    return [*lines, ""]


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def _gateway_section(gateway: dict[str, Any]) -> list[str]:
    out = ["## Gateway: fake upstream direct, through Interlog (logging on), through LiteLLM", ""]
    if "error" in gateway:
        return [*out, f"Failed: `{gateway['error']}`", ""]
    out += [
        f"Load generator: {gateway['tool']}, {gateway['duration']:g} s per cell, closed loop "
        f"(each client sends its next request when the previous answer arrived). Interlog runs "
        f"one process (`interlog serve`), and `x2` two (`interlog serve --workers 2`, one journal "
        f"each); journal fsync `{gateway['fsync']}` (the default). "
        f"Rows logged are counted in the store after the journal writer drained; `sent` counts "
        f"requests written to the socket (including those cut off when the time was up).",
        "",
    ]
    rows = []
    for row in gateway["rows"]:
        logged = row.get("logged")
        check = (
            ""
            if logged is None
            else f"{logged:,} ({'ok' if logged == row['expected'] else 'MISMATCH'})"
        )
        rows.append(
            [row["system"], row["clients"], f"{row['rps']:,.0f}", f"{row['p50']:.2f}",
             f"{row['p99']:.2f}", row["errors"], f"{row['sent']:,}", check]
        )  # fmt: skip
    out += _table(
        ["system", "clients", "req/s", "p50 ms", "p99 ms", "errors", "sent", "rows logged"], rows
    )
    added = []
    for row in gateway["rows"]:
        direct = next(
            (
                d
                for d in gateway["rows"]
                if d["system"] == "direct" and d["clients"] == row["clients"]
            ),
            None,
        )
        if direct and row["system"] != "direct":
            added.append(
                [row["system"], row["clients"], f"{_added_p50(row, direct):+.2f}",
                 f"{row['rps'] / direct['rps']:.0%}"]
            )  # fmt: skip
    out += [
        "Added latency and throughput kept, relative to the upstream measured directly. At one "
        "client the added p50 is the median of paired rounds (a direct run right before or "
        "after each Interlog run, order alternating), since this machine's speed drifts "
        "between cells measured minutes apart; the rounds are in benchmarks.json.",
        "",
    ]
    out += _table(["system", "clients", "added p50 ms", "req/s vs direct"], added)
    if gateway.get("ttft"):
        direct_ttft = gateway["ttft"].get("direct", {}).get("ttft_p50")
        out += ["### Streaming: time to first token (1 client, one request at a time)", ""]
        rows = [
            [system, f"{t['ttft_p50']:.2f}", f"{t['ttft_p99']:.2f}", f"{t['total_p50']:.2f}",
             "-" if system == "direct" or direct_ttft is None
             else f"{t['ttft_p50'] - direct_ttft:+.2f}"]
            for system, t in gateway["ttft"].items()
        ]  # fmt: skip
        out += _table(
            ["system", "TTFT p50 ms", "TTFT p99 ms", "whole stream p50 ms", "added"], rows
        )
    for system, reason in gateway.get("skipped", {}).items():
        out += [f"Skipped {system}: {reason}", ""]
    if gateway.get("litellm_version"):
        out += [
            f"LiteLLM {gateway['litellm_version']} (`litellm[proxy]`, one worker, offline).",
            "",
        ]
    return out


def _memory_section(gateway: dict[str, Any], imports: Any) -> list[str]:
    memory = gateway.get("memory", {})
    if not memory:
        return []
    rows = [
        [system, f"{m['rest_mb']:.0f}", f"{m['load_mb']:.0f}",
         f"{m['after_mb']:.0f}" if "after_mb" in m else "-"]
        for system, m in memory.items()
    ]  # fmt: skip
    out = ["## Memory: resident set size (RSS)", ""]
    out += _table(["system", "at rest MB", "peak under load MB", "after load MB"], rows)
    if isinstance(imports, list) and imports:
        out += ["What the gateway's imports cost (RSS added by each group, one fresh process):", ""]
        out += _table(["imports", "MB"], [[name, f"{mb:.0f}"] for name, mb in imports])
    return out


def _profile_section(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    out = ["## Where the gateway spends its time (py-spy, 64 clients, SQLite)", ""]
    if "skipped" in profile:
        return [*out, f"Skipped: {profile['skipped']}", ""]
    out += [f"{profile['samples']:,} samples of the thread holding the GIL (`py-spy --gil`).", ""]
    out += _table(
        ["area (innermost frame)", "share"], [[a, f"{s:.0%}"] for a, s in profile["areas"]]
    )
    out += _table(
        ["function (self time)", "share"], [[f"`{f}`", f"{s:.1%}"] for f, s in profile["leaves"]]
    )
    return out


def _ingest_section(ingest: Any) -> list[str]:
    out = ["## Bulk ingest: POST /api/v1/interactions/bulk", ""]
    if isinstance(ingest, dict):
        return [*out, f"Failed: `{ingest.get('error')}`", ""]

    def cpu(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.0f}" if key in row else "-"

    rows = [
        [r["backend"], r.get("workers", 1), f"{r['sent']:,}", f"{r['seconds']:.2f}",
         f"{r['rate']:,.0f}", f"{r['stored']:,}", r["batch"], r["senders"],
         cpu(r, "gateway_cpu_us"), cpu(r, "database_cpu_us"), cpu(r, "client_cpu_us")]
        for r in ingest
    ]  # fmt: skip
    out += _table(
        ["store", "gateway processes", "interactions", "seconds", "per second", "stored",
         "batch", "senders", "gateway CPU µs", "PostgreSQL CPU µs", "load generator CPU µs"],
        rows,
    )  # fmt: skip
    out += [
        "CPU columns are per interaction, over the timed run; the three share this machine's "
        "cores, so on 2 cores their sum bounds the rate. Each item has a new random session id "
        "(the worst case for the session index).",
        "",
    ]
    return out


QUERY_HEADING = "## Analytics ("


def _query_section(query: dict[str, Any]) -> list[str]:
    """bench/query.py: the analytics store on realistic data, one row per measurement."""
    rows, big = int(query.get("rows") or 0), int(query.get("big_rows") or 0)
    title = f"{QUERY_HEADING}{rows:,} realistic interactions"
    out = [title + (f"; {big:,} in an analytics store)" if big else ")"), ""]
    if "error" in query:
        return [*out, f"Failed: `{query['error']}`", ""]
    if "numbers" in query:  # the realistic-data benchmark (issue 17)
        load = ", ".join(f"{v:.2f}" for v in query.get("load_average", []))
        out += [
            f"`python -m bench query{' --quick' if query.get('quick') else ''}` on "
            f"{query.get('date', '?')}: stores of bench/realistic.py's interactions (seed 1, "
            "about 3 KB of text each, 3-6 labels, ~30% scored), the shared analytics store "
            "(DuckLake, Parquet) built from each by `interlog analytics sync`, then each "
            "question asked the way a user asks it: a new notebook process (`connect(URL)`), "
            "a new export process, the gateway's REST API (`interlog serve` with its "
            "sync-owner child). RSS is per process: the gateway's own apart from its child's. "
            f"Freshness: {query.get('rate', 0):,.0f} chat requests/s asked for "
            f"{query.get('seconds', 0):g} s, a probe request every 100 ms, the analytics "
            "store polled every 50 ms. The big store's rows are generated straight into an "
            "analytics store from a pool of realistic interactions. Python speed probe "
            f"{query.get('speed_probe_ms', 0):.0f} ms (bench/speed.py; lower is faster); load "
            f"average at the end {load}.",
            "",
        ]
    lines = [[*line, ""][:4] for line in query.get("lines", [])]
    return out + _table(["store", "measurement", "result", "target"], lines)


def _load_section(load: dict[str, Any]) -> list[str]:
    out = ["## Load test (tests/test_load.py)", ""]
    out += [
        f"{load['requests']:,} chat requests at {load['clients']} concurrent clients against the "
        f"real gateway on SQLite (half streamed, half with `store: false`): "
        f"**{'passed' if load['passed'] else 'FAILED'}** in {load['seconds']:.1f} s.",
        "",
    ]
    if load.get("summary"):
        out += ["```", load["summary"].strip(), "```", ""]
    return out


DASHBOARD_HEADING = "## Dashboard ("


def _dashboard_page_rows(backend: dict[str, Any]) -> list[list[str]]:
    """One row per page: its first view and its warm view (Overview's first view is the first
    page, timed from the process start)."""
    rows = []
    for page, warm in backend.get("warm_view", {}).items():
        first = backend.get("first_view", {}).get(page)
        shown = f"{first:.2f}" if first is not None else "(the first page)"
        rows.append([page, shown, f"{warm:.2f}"])
    return rows


def _dashboard_backend(backend: dict[str, Any]) -> list[str]:
    """One backend's first page, RSS, and every page's first and warm view."""
    name = backend.get("backend", "?")
    if "error" in backend:
        return [f"**{name}**: not measured: `{backend['error']}`", ""]
    runs = ", ".join(f"{s:.2f}" for s in backend.get("first_page_runs", []))
    limit = DASHBOARD_TARGETS["first_page_s"][1]
    met = backend["first_page_s"] <= limit
    out = [
        f"**{name}** ({int(backend.get('rows') or 0):,} interactions): first page in a new "
        f"process **{backend['first_page_s']:.2f} s** (target {limit:g} s: "
        f"{'met' if met else 'MISSED'}; runs {runs}; the server answered after "
        f"{backend['healthy_s']:.2f} s; the dashboard's processes used "
        f"{backend.get('first_cpu_s', 0):.2f} s of CPU until then); RSS of the dashboard "
        "process then "
        f"**{backend['first_rss_mb']:.0f} MB**, after every page "
        f"**{backend['after_rss_mb']:.0f} MB** (with `interlog dashboard`'s CLI process "
        f"{backend['after_tree_mb']:.0f} MB)."
        + (
            ""
            if backend.get("quiet", True)
            else " Another process wrote to the store during these runs: the dashboard waited "
            "for (or made) a catch-up of its analytics store."
        ),
        "",
    ]
    return out + _table(["page", "first view s", "warm view s"], _dashboard_page_rows(backend))


def dashboard_section(dashboard: dict[str, Any]) -> list[str]:
    """bench/dashboard.py: per backend, the first page in a new process, RSS, every page."""
    rows = int(dashboard.get("rows") or 0)
    out = [f"{DASHBOARD_HEADING}{rows:,} realistic interactions)", ""]
    if "error" in dashboard:
        return [*out, f"Failed: `{dashboard['error']}`", ""]
    if "backends" not in dashboard:
        return [*out, "An older benchmark's result: run `python -m bench dashboard`.", ""]
    load = ", ".join(f"{v:.2f}" for v in dashboard.get("load_average", []))
    out += [
        f"`python -m bench dashboard` on {dashboard.get('date', '?')}: bench/query.py's "
        "realistic stores (about 3 KB of text per interaction) with their analytics stores "
        "built; the dashboard only reads them. Per run, a headless Chromium is started first "
        "(its start-up is not counted), then `interlog dashboard` as a NEW process (sign-in "
        "off on loopback). **First page**: from that process's start until Overview (totals, "
        "charts and the per-model table of every interaction) has settled in the browser with "
        "its data. Then each other page from the page menu (**first view**: its reads not "
        "cached yet), and after the 10 s data-version period every page again (**warm view**: "
        "the version is looked up again, the data did not change). RSS is the dashboard "
        "process's own (the Streamlit server; the browser's memory is not the dashboard's). "
        f"Medians of {dashboard.get('runs', '?')} new processes per store; load average at "
        f"the end {load}.",
        "",
    ]
    for backend in dashboard["backends"]:
        out += _dashboard_backend(backend)
    return out


def replace_section(path: Path, section: list[str]) -> None:
    """Put `section` in place of the markdown file's section with the same heading (up to the
    next `## `), or before "What limits the gateway" when it has none."""
    lines = path.read_text().splitlines()
    heading = section[0].split("(")[0]
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        start = next(
            (i for i, line in enumerate(lines) if line.startswith("## What limits")), len(lines)
        )
        end = start
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
    path.write_text("\n".join([*lines[:start], *section, *lines[end:]]) + "\n")


LIMITS = """## What limits the gateway

- **Per-request Python on one event loop.** A chat completion runs uvicorn's HTTP parsing, our
  limits and capture middleware, the handler (pydantic validation, cached auth and routing), our
  upstream HTTP client (ingest/upstream_http.py), the answer with new completion ids, and the
  journal append. Chat requests skip FastAPI's stack entirely (ingest/chat_endpoint.py); the
  upstream client replaced an aiohttp session that took a third of the CPU; a sized answer
  leaves in one send (ingest/http_protocol.py); the young GC generation is collected every
  20,000 allocations instead of 700. What is left is spread thin (see the profile: no function
  of ours above a few percent); the largest single items are the send system calls on loopback,
  which the kernel completes inside the call.
- **Added latency at one client.** A minimal uvloop TCP relay adds about 0.1 ms p50 here (two
  more loopback hops and wake-ups); the rest is Python on the request's path: uvicorn's request
  parsing (about 0.15 ms of CPU outside our app), auth, validation and routing before the
  request goes upstream, then the answer, the journal append and two send system calls. The
  request is written upstream before the context and the journal record's request part are
  built (they are made while the upstream computes), and no loop timer is armed per request
  (body, keep-alive and upstream timeouts are one timer per connection or process). Measured
  CPU per request at one client is about twice that at 16 clients: an idle core between
  requests leaves caches cold, so every step costs more than in a microbenchmark. Logging's own
  share is small (store=true vs store=false, alternating runs). Journal fsync is off the
  response path with the default `INTERLOG_JOURNAL_FSYNC=batch` (once per writer cycle).
- **Two cores for everything.** wrk, the fake upstream, the gateway (and PostgreSQL) share two
  cores, so a second gateway process (`x2`) helps most at 64 clients.
- **Bulk ingest.** Per interaction the gateway parses and checks the item and makes its rows
  (UUIDs, JSON); the database inserts one interaction row (four indexes, one of them on session
  ids, random in this benchmark, so each insert dirties a random page and the cost grows with
  the store) and two label rows. On SQLite a child process of the gateway does the inserts
  (store/sqlite_writer.py, with group commit): in the gateway's own threads sqlite3 waited for
  the GIL after every statement, up to 5 ms each time. `--workers 2` gives each process its own
  child, the writers taking turns through an flock beside the database. The WAL is checkpointed
  every 10,000 pages, not 1,000 (random index pages were copied again and again). On PostgreSQL
  the database's share is the COPY and the index inserts; the logging tables have no foreign
  keys since migrations 0002 and 0003 (PostgreSQL checked them row by row: over a third of its
  work). Gateway CPU includes the SQLite child.
- **Memory.** pandas, pyarrow, DuckDB and numpy load only with the first analytics or export
  request; glibc malloc arenas are capped at two. The rest is the web stack and the store
  drivers (import table above) plus at most 5,000 pending records in the journal's memory.
  SQLite multi-row INSERTs come in at most 9 sizes per table (250 rows, then powers of two):
  sqlite3 keeps up to 128 prepared statements per connection, about half a MB each at 250
  rows, and one size per journal batch length grew the gateway by ~80 MB under load.
"""


def write_markdown(results: dict[str, Any], path: Path) -> None:
    m = results["machine"]
    load = ", ".join(f"{v:.2f}" for v in m["load_average"])
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python -m bench{' --quick' if results.get('quick') else ''}` on "
        f"{m['date']} in {results.get('elapsed', 0) / 60:.1f} minutes.",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']:.0f} GB memory, "
        f"{m['os']}, Python {m['python']}; load average at the start {load}. Everything runs on "
        "this machine over loopback: servers, load generators and databases share its cores.",
        "",
        "## Targets",
        "",
    ]
    checks = targets(results)
    lines += _table(
        ["target", "measured", "met", "missed by"],
        [[c["target"], c["measured"], _met(c["met"]), c["gap"]] for c in checks],
    )
    gateway = results.get("gateway", {})
    if gateway:
        lines += _gateway_section(gateway) + _memory_section(gateway, results.get("imports"))
        lines += _profile_section(gateway.get("profile"))
    if "ingest" in results:
        lines += _ingest_section(results["ingest"])
    if "query" in results:
        lines += _query_section(results["query"])
    if "load" in results:
        lines += _load_section(results["load"])
    if "dashboard" in results:
        lines += dashboard_section(results["dashboard"])
    lines += LIMITS.splitlines()
    lines += ["", "![throughput and latency per system](benchmarks.png)", ""]
    path.write_text("\n".join(lines))


def write_plot(gateway: dict[str, Any], path: Path) -> None:
    """Requests/s (left) and p50 with p99 whiskers (right, log scale) per system and clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in gateway.get("rows", []) if "store=false" not in r["system"]]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    levels = sorted({r["clients"] for r in rows})
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.8 / max(1, len(systems))
    for number, system in enumerate(systems):
        cells = {r["clients"]: r for r in rows if r["system"] == system}
        xs = [i + number * width for i, level in enumerate(levels) if level in cells]
        picked = [cells[level] for level in levels if level in cells]
        left.bar(xs, [c["rps"] for c in picked], width, label=system)
        p50 = [c["p50"] for c in picked]
        p99 = [c["p99"] - c["p50"] for c in picked]
        right.bar(xs, p50, width, yerr=[[0] * len(p50), p99], capsize=3, label=system)
    for axis in (left, right):
        axis.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(levels))])
        axis.set_xticklabels([f"{level} clients" for level in levels])
    left.set_ylabel("requests / s")
    left.set_title("Throughput")
    right.set_yscale("log")
    right.set_ylabel("latency ms (bar p50, whisker p99)")
    right.set_title("Latency")
    left.legend(fontsize=8)
    figure.suptitle("Chat completions against the same fake upstream")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def summary_markdown(results: dict[str, Any]) -> str:
    """The README's headline table: req/s and p50 per system at 1 and 16 clients, then targets."""
    m = results["machine"]
    lines = [
        f"Measured {m['date']} on {m['cpus']} CPUs / {m['memory_gb']:.0f} GB (everything on the "
        "same machine).",
        "",
    ]
    systems = list(dict.fromkeys(r["system"] for r in results.get("gateway", {}).get("rows", [])))
    rows = []
    for system in systems:
        one, sixteen = _cell(results, system, 1), _cell(results, system, 16)
        if one and sixteen:
            rows.append(
                [system, f"{sixteen['rps']:,.0f}", f"{one['p50']:.2f}", f"{sixteen['p50']:.2f}"]
            )
    lines += _table(
        ["chat completions", "req/s, 16 clients", "p50 ms, 1 client", "p50 ms, 16"], rows
    )
    lines += _table(
        ["target", "measured", "met", "missed by"],
        [[c["target"], c["measured"], _met(c["met"]), c["gap"]] for c in targets(results)],
    )
    return "\n".join(lines)
