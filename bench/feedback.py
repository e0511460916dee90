"""Feedback and read-back benchmark: metric values/s (REST single, REST bulk, GraphQL) and read-back
latency (REST and GraphQL list with label and metric filters) on a seeded SQLite store.

Run from the repository root:  .venv/bin/python bench/feedback.py [--interactions 20000]
[--requests 2000] [--concurrency 16]

It migrates a fresh SQLite file in a temporary directory, writes synthetic interactions (two
labels each) straight into the store, starts `interlog serve` on a free loopback port, drives it
with httpx, prints one line per measurement, and stops the server it started. Targets on a
2-core machine: >= 500 single metric values/s, >= 10,000 bulk values/s, read-back p50 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import migrations  # noqa: E402
from store.catalog import attach_model, create_model, create_project  # noqa: E402
from store.db import create_store_engine  # noqa: E402
from store.ids import uuid7  # noqa: E402
from store.interactions import write_interactions  # noqa: E402
from store.keys import create_api_key  # noqa: E402
from store.metrics import create_metric  # noqa: E402
from store.types import utcnow  # noqa: E402

LIST_QUERY = """query($p: IdOrKey!) {
  completions(filter: {project: $p, advancedFilter: {and: [
    {label: {key: "team", value: {in: ["t3"]}}}, {scores: {metric: "quality", value: {gte: 0.5}}}
  ]}}, page: {first: 50}) { totalCount nodes { id labels { key value } directScores { value } } }
}"""
SCORE = """mutation($c: UUID!) {
  addDirectScore(completionId: $c, metricId: "quality", input: {value: 0.7}) { id }
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(url: str, count: int) -> tuple[str, list[str]]:
    engine = create_store_engine(url)
    project = create_project(engine, key="bench")
    create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9"])
    attach_model(engine, project_key="bench", model_key="m1", default=True)
    create_metric(engine, project_key="bench", key="quality")
    secret = create_api_key(engine, project_key="bench").secret
    ids: list[str] = []
    now = utcnow().isoformat()
    for start in range(0, count, 5000):
        records: list[dict[str, Any]] = []
        for index in range(start, min(count, start + 5000)):
            completion_id = str(uuid7())
            ids.append(completion_id)
            records.append(
                {
                    "completion_id": completion_id,
                    "project_id": project.id,
                    "session_id": str(uuid.uuid4()),
                    "created_at": now,
                    "labels": {"team": f"t{index % 10}", "env": "bench"},
                    "messages": [{"role": "user", "content": "q"}],
                    "completion": "a",
                }
            )
        write_interactions(engine, records)
    engine.dispose()
    return secret, ids


async def _timed(count: int, concurrency: int, send: Any) -> float:
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def measure(base: str, secret: str, ids: list[str], requests: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:

        async def rest(index: int) -> None:
            body = {"completion_id": ids[index], "metric": "quality", "value": index % 2}
            assert (await http.post("/api/v1/feedback", json=body)).status_code == 201

        elapsed = await _timed(requests, concurrency, rest)
        rate = requests / elapsed
        print(f"REST POST /feedback      {rate:10,.0f} values/s  ({concurrency} clients)")

        async def graphql(index: int) -> None:
            payload = {"query": SCORE, "variables": {"c": ids[-1 - index]}}
            response = await http.post("/api/graphql", json=payload)
            assert "errors" not in response.json(), response.text

        elapsed = await _timed(requests, concurrency, graphql)
        rate = requests / elapsed
        print(f"GraphQL addDirectScore   {rate:10,.0f} values/s  ({concurrency} clients)")

        batch = 1000
        items = [{"completion_id": i, "metric": "quality", "value": 0.9} for i in ids]
        batches = [items[i : i + batch] for i in range(0, len(items), batch)]

        async def bulk(index: int) -> None:
            response = await http.post("/api/v1/feedback/bulk", json={"items": batches[index]})
            assert response.json()["failed"] == 0

        elapsed = await _timed(len(batches), 4, bulk)
        rate = len(items) / elapsed
        print(f"REST POST /feedback/bulk {rate:10,.0f} values/s  (batches of {batch}, 4 clients)")

        for name, call in (
            ("REST GET /interactions  ", lambda: http.get(
                "/api/v1/interactions", params={"label": "team=t3", "metric": "quality>=0.5"})),
            ("GraphQL completions     ", lambda: http.post(
                "/api/graphql", json={"query": LIST_QUERY, "variables": {"p": "bench"}})),
        ):  # fmt: skip
            timings = []
            for _ in range(50):
                start = time.perf_counter()
                response = await call()
                timings.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200
            timings.sort()
            print(
                f"{name} p50 {statistics.median(timings):6.1f} ms  p99 {timings[-1]:6.1f} ms"
                f"  (page of 50 out of {len(ids):,}, label + metric filter)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrations.upgrade(url)
        secret, ids = seed(url, args.interactions)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOG_")}
        env.update(
            INTERLOG_DATABASE_URL=url,
            INTERLOG_JOURNAL_DIR=str(Path(tmp) / "journal"),
            INTERLOG_LOG_LEVEL="warning",
        )
        command = [sys.executable, "-m", "ingest", "serve", "--port", str(port), "--no-migrate"]
        server = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"{base}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            asyncio.run(measure(base, secret, ids, args.requests, args.concurrency))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
