"""`python -m bench`: every benchmark in one run, written to docs/benchmarks.md and .png.

    python -m bench [--quick] [--only gateway ingest ...]   # all of them (or some), plus the report
    python -m bench gateway|ingest|memory|litellm|load|cli [ARGS]   # one benchmark alone
    python -m bench query [--quick] [ARGS]   # analytics on realistic data, into the report
    python -m bench dashboard [--rows N] [--runs N]   # the dashboard on 1M rows, into the report

The full run takes about 10 minutes on 2 cores (--quick: about 3), plus the query benchmark's
stores the first time (1M realistic interactions in SQLite and PostgreSQL, 10M in an analytics
store: cached in .bench-cache/ and the database interlog_bench_realistic_N afterwards). The
dashboard benchmark is not in it (1.5 minutes with its store cached, 3 more to generate that
store): run it with `python -m bench dashboard` or `--only dashboard`; a full run keeps its last
result. Every server it starts listens on loopback and is stopped by PID, also on Ctrl-C or an
error. Results also go to docs/benchmarks.json (the raw numbers behind the report).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import gateway, loadgen, memory, report, services

DOCS = services.ROOT / "docs"
ALL = ("gateway", "ingest", "query", "load")
OPTIONAL = ("dashboard",)  # not in the default set: it takes minutes of its own


def run_ingest(quick: bool) -> list[dict[str, Any]]:
    from bench import ingest

    items = "10000" if quick else "100000"
    return ingest.run(ingest.parse_args(["--items", items, "--backend", "both"]))


def run_query(quick: bool, argv: list[str] | None = None) -> dict[str, Any]:
    """bench/query.py: the analytics store on realistic data, SQLite and PostgreSQL stores of
    1M interactions (20k with --quick; made once and cached in .bench-cache/ and the database
    interlog_bench_realistic_N) and 10M interactions in an analytics store (200k with --quick).
    """
    from bench import query

    args = list(argv or [])
    if quick and "--quick" not in args:
        args.append("--quick")
    return query.main(args)


def update_report(name: str, result: dict[str, Any], out: Path) -> None:
    """Put one benchmark's result into docs/benchmarks.json and render docs/benchmarks.md
    again from it (the targets table included); the other benchmarks' results stay."""
    try:
        results = json.loads((out / "benchmarks.json").read_text())
    except (OSError, ValueError):
        results = {"machine": report.machine(), "quick": False}
    results[name] = result
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.write_markdown(results, out / "benchmarks.md")
    print(f"\nwrote the {name} section of {out / 'benchmarks.md'}")
    for check in report.query_targets(result) if name == "query" else []:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[check["met"]]
        print(f"  {verdict:<7} {check['target']}: {check['measured']}  {check['gap']}")


def run_load(
    quick: bool, requests: int | None = None, clients: int | None = None
) -> dict[str, Any]:
    """tests/test_load.py under pytest with the full size (20,000 requests at 100 clients)."""
    requests = requests or (2000 if quick else 20_000)
    clients = clients or (50 if quick else 100)
    env = {**os.environ, "LOAD_TEST_REQUESTS": str(requests), "LOAD_TEST_CLIENTS": str(clients)}
    command = [sys.executable, "-m", "pytest", "tests/test_load.py", "-q", "-s", "-m", "load"]
    command += ["-p", "no:cacheprovider", "-o", "timeout=900"]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=services.ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    summary = [line for line in done.stdout.splitlines() if line.startswith("load:")]
    tail = done.stdout.strip().splitlines()[-15:]
    return {
        "requests": requests,
        "clients": clients,
        "passed": done.returncode == 0,
        "seconds": time.perf_counter() - started,
        "summary": "\n".join(summary if done.returncode == 0 else tail),
    }


def run_dashboard(quick: bool, argv: list[str] | None = None) -> dict[str, Any]:
    """bench/dashboard.py: every dashboard page on 1M interactions (50k with --quick)."""
    from bench import dashboard

    result = dashboard.main(argv if argv is not None else (["--rows", "50000"] if quick else []))
    return {**result, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _previous(out: Path, name: str) -> Any:
    """A benchmark's result from the last report, for one not run this time."""
    try:
        return json.loads((out / "benchmarks.json").read_text()).get(name)
    except (OSError, ValueError):
        return None


def _guarded(name: str, function: Any, *args: Any) -> Any:
    """Run one benchmark; a failure is reported in the results instead of ending the run."""
    print(f"\n=== {name} ===", flush=True)
    try:
        return function(*args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        print(f"{name} failed: {exc!r}", flush=True)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": report.machine(), "quick": args.quick}
    only = set(args.only or ALL)
    if "gateway" in only:
        results["gateway"] = _guarded(
            "gateway",
            lambda: gateway.run(
                duration=2 if args.quick else 5,
                ttft_requests=50 if args.quick else 300,
                profile_seconds=3 if args.quick else 6,
            ),
        )
        results["imports"] = _guarded("memory by import", memory.import_footprint)
    if "ingest" in only:
        results["ingest"] = _guarded("ingest", run_ingest, args.quick)
    if "query" in only:
        results["query"] = _guarded("query", run_query, args.quick)
    if "load" in only:
        results["load"] = _guarded("load test", run_load, args.quick)
    if "dashboard" in only:
        results["dashboard"] = _guarded("dashboard", run_dashboard, args.quick)
    results["elapsed"] = time.perf_counter() - started
    return results


def write_report(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.write_markdown(results, out / "benchmarks.md")
    if isinstance(results.get("gateway"), dict) and results["gateway"].get("rows"):
        report.write_plot(results["gateway"], out / "benchmarks.png")
    print(f"\nwrote {out / 'benchmarks.md'}")
    for check in report.targets(results):
        verdict = {True: "met", False: "MISSED", None: "n/a"}[check["met"]]
        print(f"  {verdict:<7} {check['target']}: {check['measured']}  {check['gap']}")


def main() -> None:
    services.stop_on_sigterm()
    loadgen.ensure_wrk()
    commands = {
        "gateway": gateway.main,
        "memory": memory.main,
        "litellm": lambda argv: __import__("bench.litellm_proxy").litellm_proxy.main(argv),
        "ingest": lambda argv: __import__("bench.ingest").ingest.main(argv),
        "cli": lambda argv: __import__("bench.cli").cli.main(argv),
    }
    argv = sys.argv[1:]
    if argv and argv[0] in commands:
        commands[argv[0]](argv[1:])
        return
    if argv and argv[0] == "query":
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--out", type=Path, default=DOCS)
        known, rest = parser.parse_known_args(argv[1:])
        update_report("query", run_query(False, rest), known.out)
        return
    if argv and argv[0] == "dashboard":
        result = _guarded("dashboard", run_dashboard, False, argv[1:])
        if "error" in result:
            sys.exit(1)
        previous = json.loads((DOCS / "benchmarks.json").read_text())
        report.replace_section(DOCS / "benchmarks.md", report.dashboard_section(result))
        (DOCS / "benchmarks.json").write_text(
            json.dumps({**previous, "dashboard": result}, indent=1, default=str) + "\n"
        )
        print(f"wrote the dashboard section of {DOCS / 'benchmarks.md'}")
        return
    if argv and argv[0] == "load":
        parser = argparse.ArgumentParser(prog="python -m bench load")
        parser.add_argument("--requests", type=int, default=20_000)
        parser.add_argument("--clients", type=int, default=100)
        load_args = parser.parse_args(argv[1:])
        result = run_load(False, load_args.requests, load_args.clients)
        print(("passed" if result["passed"] else "FAILED") + f" in {result['seconds']:.1f} s")
        print(result["summary"])
        sys.exit(0 if result["passed"] else 1)
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, short cells")
    parser.add_argument(
        "--only", nargs="+", choices=ALL + OPTIONAL, help="run only these benchmarks"
    )
    parser.add_argument("--out", type=Path, default=DOCS, help="where the report goes")
    parser.add_argument("--from-json", type=Path, help="re-render a report from benchmarks.json")
    args = parser.parse_args(argv)
    if args.from_json:
        write_report(json.loads(args.from_json.read_text()), args.out)
        return
    results = run_all(args)
    for name in OPTIONAL:
        if name not in results and _previous(args.out, name) is not None:
            results[name] = _previous(args.out, name)
    write_report(results, args.out)


if __name__ == "__main__":
    main()
