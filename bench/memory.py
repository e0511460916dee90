"""Memory: the gateway's resident set size (RSS) at rest and under load.

`RssSampler(pid)` samples a process's RSS (with its children) in a background thread; the
gateway benchmark samples each Interlog gateway while wrk drives it. Alone, this benchmark
starts the fake upstream and a gateway on SQLite, reads the RSS after start-up and a warm-up
(at rest), then the peak under 64 clients for `--duration` seconds.
Target: at most 200 MB under load.

    python -m bench memory [--duration 10]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from bench import loadgen, services

TARGET_MB = 200.0


def rss_mb(pid: int) -> float:
    """RSS of PID plus its children, in MB (10^6 bytes)."""
    root = psutil.Process(pid)
    total = root.memory_info().rss
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


class RssSampler:
    """Samples RSS every `interval` seconds while in its `with` block; `peak` is the maximum."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


#: What a gateway process imports, in groups: RSS after importing each group (cumulative).
IMPORT_GROUPS = (
    ("Python", ""),
    ("web stack (fastapi, uvicorn, aiohttp, pydantic, orjson)",
     "import fastapi, uvicorn, aiohttp, pydantic, orjson"),
    ("store drivers (sqlalchemy, sqlmodel, psycopg, alembic)",
     "import sqlalchemy, sqlmodel, psycopg, alembic"),
    ("analytics libraries (pandas, pyarrow, duckdb, scipy.stats)",
     "import pandas, pyarrow, pyarrow.parquet, duckdb, scipy.stats"),
    ("the rest of the gateway (import ingest.app)", "import ingest.app"),
)  # fmt: skip


def import_footprint() -> list[tuple[str, float]]:
    """MB of RSS each group of imports adds, in one fresh interpreter (cumulative order)."""
    import subprocess
    import sys

    lines = ["import psutil", "p = psutil.Process()"]
    for _, statement in IMPORT_GROUPS:
        lines += [statement, "print(p.memory_info().rss)"]
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        cwd=services.ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    sizes = [int(line) / 1e6 for line in done.stdout.split()]
    steps = [sizes[0]] + [b - a for a, b in itertools.pairwise(sizes)]
    return [(name, step) for (name, _), step in zip(IMPORT_GROUPS, steps, strict=True)]


BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def run(*, duration: float = 10, clients: int = 64) -> dict[str, Any]:
    """Gateway RSS (MB) after start-up, after a warm-up, and at the peak under load."""
    with tempfile.TemporaryDirectory(prefix="interlog-bench-") as tmp:
        workdir = Path(tmp)
        with services.fake_upstream(workdir) as upstream:
            url = f"sqlite:///{workdir / 'memory.db'}"
            with services.interlog_gateway(url, upstream, workdir) as gateway:
                started = rss_mb(gateway.pid)
                loadgen.run_load(gateway.chat_url, BODY, gateway.key, 4, 1)
                rest = rss_mb(gateway.pid)
                with RssSampler(gateway.pid) as sampler:
                    result = loadgen.run_load(
                        gateway.chat_url, BODY, gateway.key, clients, duration
                    )
                after = rss_mb(gateway.pid)
    return {
        "backend": "sqlite",
        "started_mb": started,
        "rest_mb": rest,
        "load_mb": sampler.peak,
        "after_mb": after,
        "clients": clients,
        "rps": result.rps,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args(argv)
    result = run(duration=args.duration, clients=args.clients)
    print(
        f"gateway RSS: {result['started_mb']:.0f} MB after start, {result['rest_mb']:.0f} MB at "
        f"rest after warm-up, {result['load_mb']:.0f} MB peak under {args.clients} clients "
        f"({result['rps']:.0f} req/s), {result['after_mb']:.0f} MB after; target <= {TARGET_MB:.0f}"
    )
    return result
