"""Ingest throughput: interactions/s through POST /api/v1/interactions/bulk into SQLite and PG.

Run from the repository root: `.venv/bin/python bench/ingest.py [--items 100000] [--batch 1000]
[--senders 4] [--backend sqlite|postgres|both]`. It migrates a fresh store (a temporary SQLite
file; a temporary database on the PostgreSQL server of INTERLOG_BENCH_POSTGRES_URL, default the
local test server), starts `interlog serve` as a subprocess, posts synthetic interactions (two
labels each) from several concurrent senders, and prints interactions/s end to end (every
answer means "stored") plus a row count check. Target: at least 20,000/s on each backend.
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

import httpx
import orjson
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import migrations  # noqa: E402
from bench.services import count_interactions  # noqa: E402
from store.catalog import create_model, create_project  # noqa: E402
from store.db import create_store_engine  # noqa: E402
from store.keys import create_api_key  # noqa: E402
from tests.support import free_port, interlog_process, wait_for_http  # noqa: E402

PG_SERVER = os.environ.get(
    "INTERLOG_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


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


async def _send(url: str, key: str, batches: asyncio.Queue[list[dict[str, Any]]]) -> int:
    sent = 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=120) as client:
        while True:
            try:
                batch = batches.get_nowait()
            except asyncio.QueueEmpty:
                return sent
            response = await client.post(
                url + "/api/v1/interactions/bulk",
                content=orjson.dumps({"interactions": batch}),
                headers=headers,
            )
            response.raise_for_status()
            body = orjson.loads(response.content)
            if body["rejected"]:
                raise RuntimeError(f"rejected items: {body['results'][:2]}")
            sent += body["accepted"]


async def _drive(url: str, key: str, items: int, batch: int, senders: int) -> tuple[int, float]:
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    payloads = [_item(n) for n in range(items)]
    for start in range(0, items, batch):
        queue.put_nowait(payloads[start : start + batch])
    began = time.perf_counter()
    counts = await asyncio.gather(*(_send(url, key, queue) for _ in range(senders)))
    return sum(counts), time.perf_counter() - began


def _seed(database_url: str) -> str:
    migrations.upgrade(database_url)
    engine = create_store_engine(database_url)
    try:
        create_project(engine, key="bench")
        create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9"])
        return create_api_key(engine, project_key="bench").secret
    finally:
        engine.dispose()


def _group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process in a process group (Linux /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_backend(
    name: str, database_url: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    key = _seed(database_url)
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(workdir / f"journal-{name}"),
        "INTERLOG_LOG_LEVEL": "warning",
    }
    command = ["serve", "--port", str(port), "--no-migrate", "--workers", str(args.workers)]
    log = workdir / f"gateway-{name}.log"
    with interlog_process(command, env=env, cwd=ROOT, log=log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/healthz", process=process, timeout=120)
        asyncio.run(_drive(url, key, min(args.items, 2 * args.batch), args.batch, args.senders))
        before = count_interactions(database_url)
        cpu_before = _group_cpu_seconds(process.pid)
        sent, seconds = asyncio.run(_drive(url, key, args.items, args.batch, args.senders))
        cpu = _group_cpu_seconds(process.pid) - cpu_before
    stored = count_interactions(database_url) - before
    load = os.getloadavg()[0]
    print(
        f"{name:9s} {sent:>8,d} interactions in {seconds:6.2f} s = {sent / seconds:>9,.0f}/s "
        f"(batch {args.batch}, {args.senders} senders, {args.workers} worker(s)); "
        f"stored {stored:,d}; gateway CPU {cpu:.2f} s = {sent / max(cpu, 1e-9):,.0f} "
        f"interactions per gateway CPU-second; load average {load:.1f} on {os.cpu_count()} cores"
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
    }


def _pg_conninfo(url: str) -> str:
    parsed = make_url(url)
    return (
        f"host={parsed.host or '127.0.0.1'} port={parsed.port or 5432} "
        f"user={parsed.username or 'postgres'} dbname={parsed.database or 'postgres'}"
        + (f" password={parsed.password}" if parsed.password else "")
    )


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every backend of ARGS (items, batch, senders, workers, backend); a result per backend."""
    results = []
    with tempfile.TemporaryDirectory(prefix="interlog-bench-") as tmp:
        workdir = Path(tmp)
        if args.backend in ("sqlite", "both"):
            results.append(
                run_backend("sqlite", f"sqlite:///{workdir / 'bench.db'}", args, workdir)
            )
        if args.backend in ("postgres", "both"):
            name = f"interlog_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(_pg_conninfo(PG_SERVER), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"'.encode())
            try:
                url = make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
                results.append(run_backend("postgres", url, args, workdir))
            finally:
                with psycopg.connect(_pg_conninfo(PG_SERVER), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
