"""Gateway benchmark: requests/s and p50/p99 latency, direct to the upstream vs through Interlog.

Run from the repository root:  python bench/gateway.py [--duration 5] [--concurrency 1 16 64]

It starts `interlog demo-model` and `interlog serve` (on a fresh SQLite store in a temporary
directory, logging on) on free loopback ports, drives them with `wrk` (POST via a Lua script)
or, without wrk, a bounded aiohttp load generator, prints a table, and stops every server it
started by PID. Targets on a 2-core machine: >= 2,000 req/s at 16 clients through Interlog,
<= 0.5 ms added p50 at 1 client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BODY = {"messages": [{"role": "user", "content": "hello from the benchmark"}], "max_tokens": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}) before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(url)


@contextmanager
def interlog(args: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    """Run `python -m ingest ARGS`; yields its PID and always stops it (by PID)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOG_")}
    full_env.update(env)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest", *args],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process.pid
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()


def _millis(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(
    url: str, body: dict[str, Any], key: str | None, clients: int, seconds: int
) -> dict[str, float]:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(body))}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if key:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {key}"')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        threads = min(clients, 2)
        output = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{clients}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _millis(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _millis(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(errors.group(1)) if errors else 0.0}


def run_aiohttp(
    url: str, body: dict[str, Any], key: str | None, clients: int, seconds: int
) -> dict[str, float]:
    """A bounded closed-loop load generator: `clients` workers, each one request at a time."""
    import aiohttp

    async def main() -> dict[str, float]:
        latencies: list[float] = []
        errors = 0
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        payload = json.dumps(body).encode()
        deadline = time.perf_counter() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    async with session.post(url, data=payload, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                    latencies.append((time.perf_counter() - start) * 1000)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            elapsed = time.perf_counter() - began
        latencies.sort()
        return {
            "rps": len(latencies) / elapsed,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)],
            "errors": float(errors),
        }

    return asyncio.run(main())


def seed(database_url: str, upstream: str) -> str:
    import migrations
    from store.catalog import attach_model, create_model, create_project
    from store.db import create_store_engine
    from store.keys import create_api_key

    migrations.upgrade(database_url)
    engine = create_store_engine(database_url)
    create_project(engine, key="bench")
    create_model(engine, key="demo", upstream_urls=[upstream])
    attach_model(engine, project_key="bench", model_key="demo", default=True)
    secret = create_api_key(engine, project_key="bench").secret
    engine.dispose()
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--fsync", default="batch", help="INTERLOG_JOURNAL_FSYNC for the gateway")
    args = parser.parse_args()
    runner = run_wrk if shutil.which("wrk") else run_aiohttp
    tool = "wrk" if runner is run_wrk else "aiohttp load generator"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo_port, gateway_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{demo_port}/v1"
        database_url = f"sqlite:///{work / 'bench.db'}"
        with interlog(["demo-model", "--port", str(demo_port)], {}, work / "demo.log") as demo_pid:
            key = seed(database_url, upstream)
            env = {
                "INTERLOG_DATABASE_URL": database_url,
                "INTERLOG_JOURNAL_DIR": str(work / "journal"),
                "INTERLOG_JOURNAL_FSYNC": args.fsync,
                "INTERLOG_LOG_LEVEL": "warning",
            }
            serve = ["serve", "--port", str(gateway_port), "--no-migrate"]
            with interlog(serve, env, work / "gateway.log") as gateway_pid:
                base = f"http://127.0.0.1:{gateway_port}"
                wait_until_up(f"http://127.0.0.1:{demo_port}/v1/models", _Process(demo_pid))
                wait_until_up(f"{base}/healthz", _Process(gateway_pid))
                targets = [
                    ("direct", f"{upstream}/chat/completions", {**BODY, "model": "demo"}, None),
                    (
                        "interlog",
                        f"{base}/api/v1/chat/completions",
                        {**BODY, "model": "bench"},
                        key,
                    ),
                    (
                        "interlog store=false",
                        f"{base}/api/v1/chat/completions",
                        {**BODY, "model": "bench", "store": False},
                        key,
                    ),
                ]
                for _, url, body, target_key in targets:  # warm up connections and caches
                    runner(url, body, target_key, 4, 1)
                results = {}
                for name, url, body, target_key in targets:
                    for clients in args.concurrency:
                        results[(name, clients)] = runner(
                            url, body, target_key, clients, args.duration
                        )
            stored = _count_interactions(database_url)
    print(f"\nGateway benchmark ({tool}, {args.duration} s per cell, journal fsync={args.fsync})\n")
    print(f"{'target':<22}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for (name, clients), result in results.items():
        print(
            f"{name:<22}{clients:>8}{result['rps']:>10.0f}{result['p50']:>9.2f}"
            f"{result['p99']:>9.2f}{result['errors']:>8.0f}"
        )
    for clients in args.concurrency:
        added = results[("interlog", clients)]["p50"] - results[("direct", clients)]["p50"]
        print(f"added p50 through Interlog at {clients} client(s): {added:.2f} ms")
    print(f"interactions stored by the gateway's logging: {stored}")


class _Process:
    """Adapter so wait_until_up can check a PID we started for early exit."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            self.returncode = -1
            return -1
        return None


def _count_interactions(database_url: str) -> int:
    from sqlalchemy import text

    from store.db import create_store_engine

    engine = create_store_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM interaction")).scalar_one()
    engine.dispose()
    return int(count)


if __name__ == "__main__":
    main()
