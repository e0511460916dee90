"""Ingest throughput: interactions/s through POST /api/v1/interactions/bulk into SQLite and PG.

Run from the repository root: `.venv/bin/python bench/ingest.py [--items 100000] [--batch 1000]
[--senders 4] [--workers 1 2] [--backend sqlite|postgres|both] [--no-writer-process]`. For each
store and each number of gateway processes it migrates a fresh store (a temporary SQLite file; a
temporary database on the PostgreSQL server of INTERLOG_BENCH_POSTGRES_URL, default the local
test server), starts `interlog serve --workers N` as a subprocess, posts synthetic interactions
(two labels and a new random session each) from several concurrent senders, and prints
interactions/s end to end (every answer means "stored"), a row count check, and the CPU each
party used per interaction: gateway, PostgreSQL (its processes on this machine) and this load
generator, which share the machine's cores, and the machine's speed just before (bench/speed.py:
lower is faster).
Target: at least 20,000/s on each backend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import migrations  # noqa: E402
from bench.services import count_interactions, postgres_database  # noqa: E402
from bench.speed import python_probe_ms  # noqa: E402
from store.catalog import create_model, create_project  # noqa: E402
from store.db import create_store_engine  # noqa: E402
from store.keys import create_api_key  # noqa: E402
from tests.support import free_port, interlog_process, wait_for_http  # noqa: E402


def _item(n: int) -> dict[str, Any]:
    return {
        "model_service": "m1",
        "project": "bench",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"question number {n}: what is {n} + {n}?"},
        ],
        "completion": f"The answer is {2 * n}.",
        "labels": {"team": f"t{n % 7}", "env": "bench"},
        "session_id": str(uuid.uuid4()),
        "prompt_tokens": 20,
        "completion_tokens": 6,
    }


def _bodies(items: int, batch: int) -> list[bytes]:
    """The request bodies, made before the clock starts: the load generator shares the two
    cores with the gateway and the database, so it should spend as little as it can."""
    return [
        orjson.dumps({"interactions": [_item(n) for n in range(start, min(start + batch, items))]})
        for start in range(0, items, batch)
    ]


async def _send(session: aiohttp.ClientSession, url: str, key: str, bodies: list[bytes]) -> int:
    sent = 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while bodies:
        async with session.post(
            url + "/api/v1/interactions/bulk", data=bodies.pop(), headers=headers
        ) as response:
            response.raise_for_status()
            body = orjson.loads(await response.read())
        if body["rejected"]:
            raise RuntimeError(f"rejected items: {body['results'][:2]}")
        sent += body["accepted"]
    return sent


async def _drive(url: str, key: str, bodies: list[bytes], senders: int) -> tuple[int, float, float]:
    """Post every body from SENDERS concurrent connections: (items stored, seconds, CPU seconds
    of this process)."""
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        began, cpu = time.perf_counter(), time.process_time()
        counts = await asyncio.gather(*(_send(session, url, key, bodies) for _ in range(senders)))
        return sum(counts), time.perf_counter() - began, time.process_time() - cpu


def _seed(database_url: str) -> str:
    migrations.upgrade(database_url)
    engine = create_store_engine(database_url)
    try:
        create_project(engine, key="bench")
        create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9"])
        return create_api_key(engine, project_key="bench").secret
    finally:
        engine.dispose()


def _cpu_seconds(group: int | None = None, name: str | None = None) -> float:
    """User + system CPU seconds of every live process in a process group, or of every process
    with a command name (Linux /proc; a process that ended meanwhile is not counted)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command, fields = text.split("(", 1)[1].rsplit(")", 1)
        values = fields.split()
        if (group is not None and int(values[2]) == group) or command == name:
            ticks += int(values[11]) + int(values[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_backend(
    name: str, database_url: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    key = _seed(database_url)
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(workdir / f"journal-{name}-{args.workers}"),
        "INTERLOG_LOG_LEVEL": "warning",
        "INTERLOG_SQLITE_WRITER_PROCESS": "true" if args.writer_process else "false",
    }
    command = ["serve", "--port", str(port), "--no-migrate", "--workers", str(args.workers)]
    log = workdir / f"gateway-{name}-{args.workers}.log"
    with interlog_process(command, env=env, cwd=ROOT, log=log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/healthz", process=process, timeout=120)
        warm_up = _bodies(min(args.items, 2 * args.batch), args.batch)
        asyncio.run(_drive(url, key, warm_up, args.senders))
        bodies = _bodies(args.items, args.batch)
        probe = python_probe_ms()
        before = count_interactions(database_url)
        cpu_before = _cpu_seconds(group=process.pid)
        database_before = _cpu_seconds(name="postgres")
        sent, seconds, client_cpu = asyncio.run(_drive(url, key, bodies, args.senders))
        cpu = _cpu_seconds(group=process.pid) - cpu_before
        database_cpu = _cpu_seconds(name="postgres") - database_before
    stored = count_interactions(database_url) - before
    load = os.getloadavg()[0]
    database = f"; PostgreSQL CPU {database_cpu / sent * 1e6:.0f} µs" if name == "postgres" else ""
    print(
        f"{name:9s} {sent:>8,d} interactions in {seconds:6.2f} s = {sent / seconds:>9,.0f}/s "
        f"(batch {args.batch}, {args.senders} senders, {args.workers} worker(s)); "
        f"stored {stored:,d}; per interaction: gateway CPU {cpu / sent * 1e6:.0f} µs{database}, "
        f"this client's CPU {client_cpu / sent * 1e6:.0f} µs; "
        f"load average {load:.1f} on {os.cpu_count()} cores; Python probe {probe:.0f} ms"
    )
    return {
        "backend": name,
        "sent": sent,
        "seconds": seconds,
        "rate": sent / seconds,
        "stored": stored,
        "batch": args.batch,
        "senders": args.senders,
        "workers": args.workers,
        "gateway_cpu_us": cpu / sent * 1e6,
        "client_cpu_us": client_cpu / sent * 1e6,
        "python_probe_ms": probe,
        **({"database_cpu_us": database_cpu / sent * 1e6} if name == "postgres" else {}),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every backend of ARGS (items, batch, senders, workers, backend), each with every number
    of gateway processes in `args.workers` on a fresh store; a result per configuration."""
    results = []
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    with tempfile.TemporaryDirectory(prefix="interlog-bench-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            for workers in args.workers:
                config = argparse.Namespace(**{**vars(args), "workers": workers})
                if backend == "sqlite":
                    url = f"sqlite:///{workdir / f'bench-{workers}.db'}"
                    results.append(run_backend("sqlite", url, config, workdir))
                    continue
                with postgres_database() as url:
                    results.append(run_backend("postgres", url, config, workdir))
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="gateway processes, each in turn"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--no-writer-process",
        dest="writer_process",
        action="store_false",
        help="SQLite: the request's thread writes (INTERLOG_SQLITE_WRITER_PROCESS=false)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
