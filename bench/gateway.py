"""Gateway benchmark: requests/s and p50/p99 latency, direct vs through Interlog vs LiteLLM.

Run from the repository root:  python bench/gateway.py [--duration 5] [--concurrency 1 16 64]
(or `python -m bench gateway ...`).

It starts a fast fake upstream (bench/fake_upstream.py, raw ASGI under uvicorn) and measures it
directly, then through `interlog serve` with logging on (one process, then `--workers 2`), on a
fresh SQLite store and on a scratch PostgreSQL database (created and dropped on 127.0.0.1:5432),
then through the LiteLLM proxy
(bench/litellm_proxy.py; skipped with the reason if it cannot be installed). Each cell is driven
by `wrk` (POST via a Lua script) or, without wrk, a bounded aiohttp load generator. After each
Interlog cell it waits for the journal writer to drain and checks rows logged == requests sent.
Streaming: median time to first token, direct and through Interlog. The gateway's RSS is sampled
at rest and under load. Every server is stopped by PID. Targets on a 2-core machine: >= 2,000
req/s and >= 40x LiteLLM at 16 clients through Interlog, <= 0.5 ms added p50 at 1 client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import litellm_proxy, loadgen, memory, profile, services  # noqa: E402
from bench.speed import python_probe_ms  # noqa: E402

BODY = {"messages": [{"role": "user", "content": "hello from the benchmark"}], "max_tokens": 8}
DIRECT_BODY = {**BODY, "model": "demo"}
INTERLOG_BODY = {**BODY, "model": "bench"}


def _row(system: str, clients: int, result: loadgen.LoadResult, **extra: Any) -> dict[str, Any]:
    return {"system": system, "clients": clients, **result.as_dict(), **extra}


def _print_row(row: dict[str, Any]) -> None:
    logged = row.get("logged")
    ok = logged == row.get("expected")
    check = "" if logged is None else f"{logged:>8}{'  ok' if ok else '  MISMATCH'}"
    print(
        f"{row['system']:<26}{row['clients']:>8}{row['rps']:>10.0f}{row['p50']:>9.2f}"
        f"{row['p99']:>9.2f}{row['errors']:>8}{row['sent']:>8}{check}",
        flush=True,
    )


@contextmanager
def _store(backend: str, workdir: Path, workers: int = 1) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'gateway-{workers}.db'}"  # a fresh store per configuration
    else:
        with services.postgres_database() as url:
            yield url


#: Paired rounds for the one-client latency: this VM's speed drifts by more than the target
#: between cells minutes apart, so the added p50 is taken against a direct run made just before
#: (or after) each Interlog run, order alternating, and the median of the rounds is reported.
PAIRED_ROUNDS = 5


def _paired_one_client(
    gateway: services.Gateway, direct_url: str, duration: float
) -> tuple[loadgen.LoadResult, dict[str, Any]]:
    """PAIRED_ROUNDS alternating (direct, Interlog) 1-client runs: the Interlog run with the
    median p50 (its counts summed over the rounds) and the paired added p50s."""
    runs: list[loadgen.LoadResult] = []
    added: list[float] = []
    seconds = max(1.0, duration / 2)
    probe = python_probe_ms()
    for round_number in range(PAIRED_ROUNDS):
        first_direct = round_number % 2 == 0
        if first_direct:
            direct = loadgen.run_load(direct_url, DIRECT_BODY, None, 1, seconds)
        through = loadgen.run_load(gateway.chat_url, INTERLOG_BODY, gateway.key, 1, seconds)
        if not first_direct:
            direct = loadgen.run_load(direct_url, DIRECT_BODY, None, 1, seconds)
        runs.append(through)
        added.append(through.p50 - direct.p50)
    middle = sorted(runs, key=lambda run: run.p50)[len(runs) // 2]
    total = loadgen.LoadResult(
        rps=statistics.median(run.rps for run in runs),
        p50=middle.p50,
        p99=statistics.median(run.p99 for run in runs),
        errors=sum(run.errors for run in runs),
        completed=sum(run.completed for run in runs),
        sent=sum(run.sent for run in runs),
    )
    paired = {"added_p50": statistics.median(added), "added_rounds": added}
    return total, {**paired, "python_probe_ms": probe}


def measure_interlog(
    gateway: services.Gateway,
    system: str,
    *,
    duration: float,
    concurrency: tuple[int, ...],
    store_false_at: int | None,
    direct_url: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every cell through one gateway (rows logged checked), its RSS at rest and under load.
    With DIRECT_URL the one-client cell is paired rounds (_paired_one_client)."""
    loadgen.run_load(gateway.chat_url, INTERLOG_BODY, gateway.key, 4, 1)  # warm-up
    services.drain_and_count(gateway)
    rows = []
    rss = {"rest_mb": memory.rss_mb(gateway.pid), "load_mb": 0.0}
    for clients in concurrency:
        before = services.drain_and_count(gateway)
        extra: dict[str, Any] = {}
        with memory.RssSampler(gateway.pid) as sampler:
            if clients == 1 and direct_url:
                result, extra = _paired_one_client(gateway, direct_url, duration)
            else:
                result = loadgen.run_load(
                    gateway.chat_url, INTERLOG_BODY, gateway.key, clients, duration
                )
        logged = services.drain_and_count(gateway, expected=before + result.sent) - before
        rss["load_mb"] = max(rss["load_mb"], sampler.peak)
        rows.append(_row(system, clients, result, logged=logged, expected=result.sent, **extra))
        _print_row(rows[-1])
    if store_false_at:
        before = services.drain_and_count(gateway)
        body = {**INTERLOG_BODY, "store": False}
        result = loadgen.run_load(gateway.chat_url, body, gateway.key, store_false_at, duration)
        logged = services.drain_and_count(gateway, expected=before) - before
        rows.append(
            _row(f"{system} store=false", store_false_at, result, logged=logged, expected=0)
        )
        _print_row(rows[-1])
    rss["after_mb"] = memory.rss_mb(gateway.pid)
    return rows, rss


def run(
    *,
    duration: float = 5,
    concurrency: tuple[int, ...] = (1, 16, 64),
    fsync: str = "batch",
    backends: tuple[str, ...] = ("sqlite", "postgres"),
    litellm: bool = True,
    ttft_requests: int = 200,
    profile_seconds: float = 0,
    workers: tuple[int, ...] = (1, 2),
) -> dict[str, Any]:
    """Every system at every concurrency; a dict of rows, TTFT, memory, skips and profile."""
    out: dict[str, Any] = {
        "tool": loadgen.tool_name(),
        "duration": duration,
        "fsync": fsync,
        "workers": list(workers),
        "rows": [],
        "ttft": {},
        "memory": {},
        "skipped": {},
    }
    print(f"{'system':<26}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'sent':>8}{'logged':>8}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="interlog-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        upstream = stack.enter_context(services.fake_upstream(workdir))
        direct_url = f"{upstream}/chat/completions"
        loadgen.run_load(direct_url, DIRECT_BODY, None, 4, 1)  # warm-up
        for clients in concurrency:
            result = loadgen.run_load(direct_url, DIRECT_BODY, None, clients, duration)
            out["rows"].append(_row("direct", clients, result))
            _print_row(out["rows"][-1])
        out["ttft"]["direct"] = loadgen.time_to_first_token(
            direct_url, DIRECT_BODY, None, ttft_requests
        )
        for backend in backends:
            if backend == "postgres" and (reason := services.postgres_available()):
                out["skipped"][f"interlog {backend}"] = reason
                print(f"interlog {backend}: skipped ({reason})")
                continue
            for count in workers:
                _measure_backend(out, backend, count, upstream, workdir, duration, concurrency,
                                 fsync, ttft_requests, profile_seconds)  # fmt: skip
        if litellm:
            _measure_litellm(out, upstream, workdir, duration, concurrency)
    return out


def _measure_backend(
    out: dict[str, Any],
    backend: str,
    workers: int,
    upstream: str,
    workdir: Path,
    duration: float,
    concurrency: tuple[int, ...],
    fsync: str,
    ttft_requests: int,
    profile_seconds: float,
) -> None:
    """One Interlog configuration; with several workers only throughput and latency (RSS, TTFT
    and store=false are measured on one process)."""
    system = f"interlog {backend}" + (f" x{workers}" if workers > 1 else "")
    with (
        _store(backend, workdir, workers) as database_url,
        services.interlog_gateway(
            database_url, upstream, workdir, fsync=fsync, workers=workers
        ) as gateway,
    ):
        single = workers == 1
        rows, rss = measure_interlog(
            gateway,
            system,
            duration=duration,
            concurrency=concurrency,
            store_false_at=16 if single and backend == "sqlite" and 16 in concurrency else None,
            direct_url=f"{upstream}/chat/completions",
        )
        out["rows"] += rows
        if not single:
            return
        out["memory"][system] = rss
        out["ttft"][system] = loadgen.time_to_first_token(
            gateway.chat_url, INTERLOG_BODY, gateway.key, ttft_requests
        )
        if profile_seconds and backend == "sqlite":
            out["profile"] = profile.profile_under_load(
                gateway, INTERLOG_BODY, clients=64, seconds=profile_seconds, workdir=workdir
            )


def _measure_litellm(
    out: dict[str, Any], upstream: str, workdir: Path, duration: float, concurrency: tuple[int, ...]
) -> None:
    system = "litellm proxy"
    try:
        with litellm_proxy.litellm_proxy(upstream, workdir) as (url, pid):
            key = litellm_proxy.MASTER_KEY
            loadgen.run_load(url, INTERLOG_BODY, key, 2, 2)  # warm-up
            rss = {"rest_mb": memory.rss_mb(pid), "load_mb": 0.0}
            for clients in concurrency:
                with memory.RssSampler(pid) as sampler:
                    result = loadgen.run_load(url, INTERLOG_BODY, key, clients, duration)
                rss["load_mb"] = max(rss["load_mb"], sampler.peak)
                out["rows"].append(_row(system, clients, result))
                _print_row(out["rows"][-1])
            rss["after_mb"] = memory.rss_mb(pid)
            out["memory"][system] = rss
            out["litellm_version"] = litellm_proxy.installed_version()
    except litellm_proxy.LiteLLMUnavailable as exc:
        out["skipped"][system] = str(exc)
        print(f"{system}: skipped ({exc})")


def print_summary(out: dict[str, Any]) -> None:
    rows = {(row["system"], row["clients"]): row for row in out["rows"]}
    for (system, clients), row in rows.items():
        direct = rows.get(("direct", clients))
        if system.startswith("interlog") and "store=false" not in system and direct:
            added = row.get("added_p50", row["p50"] - direct["p50"])
            how = ""
            if rounds := row.get("added_rounds"):  # only the one-client cell is paired
                how = f" (median of paired rounds {', '.join(f'{a:.2f}' for a in rounds)}"
                if "python_probe_ms" in row:  # bench/speed.py: the machine's speed then
                    how += f"; Python probe {row['python_probe_ms']:.0f} ms"
                how += ")"
            print(f"added p50 through {system} at {clients} client(s): {added:.2f} ms{how}")
    for system, ttft in out["ttft"].items():
        print(f"time to first token, {system}: p50 {ttft['ttft_p50']:.2f} ms")
    for system, rss in out["memory"].items():
        print(f"RSS {system}: {rss['rest_mb']:.0f} MB at rest, {rss['load_mb']:.0f} MB under load")
    for system, reason in out["skipped"].items():
        print(f"skipped {system}: {reason}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--fsync", default="batch", help="INTERLOG_JOURNAL_FSYNC for the gateway")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--no-litellm", dest="litellm", action="store_false")
    parser.add_argument("--ttft-requests", type=int, default=200)
    parser.add_argument("--profile", type=float, default=0, help="py-spy seconds at 64 clients")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="gateway processes to measure"
    )
    args = parser.parse_args(argv)
    print(f"\nGateway benchmark ({loadgen.tool_name()}, {args.duration:g} s per cell, "
          f"journal fsync={args.fsync})\n")  # fmt: skip
    out = run(
        duration=args.duration,
        concurrency=tuple(args.concurrency),
        fsync=args.fsync,
        backends=tuple(args.backends),
        litellm=args.litellm,
        ttft_requests=args.ttft_requests,
        profile_seconds=args.profile,
        workers=tuple(args.workers),
    )
    print_summary(out)
    return out


if __name__ == "__main__":
    services.stop_on_sigterm()
    loadgen.ensure_wrk()
    main()
