"""Load test: many concurrent chat requests through the real gateway, every stored one logged once.

Mixed traffic against `interlog demo-model` + `interlog serve` on SQLite: every other request is
streamed, and every request whose number is odd after halving carries `store: false`, so the four
kinds (streamed or not, stored or not) come in equal shares. It checks zero errors, stored
rows == completion ids answered to the stored requests (exactly, after the journal drained, as
/api/v1/status reports), and no row, label or id of any `store: false` request.

The size is LOAD_TEST_REQUESTS / LOAD_TEST_CLIENTS (env), modest by default so the suite stays
fast; `python -m bench load` runs it in full (20,000 requests at 100 clients).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import func, select

from store.db import create_store_engine
from store.interactions import INTERACTION_TABLE, LABEL_TABLE
from tests.servers import LiveGateway, gateway_with_demo

REQUESTS = int(os.environ.get("LOAD_TEST_REQUESTS", "2000"))
CLIENTS = int(os.environ.get("LOAD_TEST_CLIENTS", "50"))


class Outcome:
    """What the clients saw: completion ids per kind of request, and every failure."""

    def __init__(self) -> None:
        self.stored_ids: set[str] = set()
        self.unstored_ids: set[str] = set()
        self.errors: list[str] = []
        self.done = 0


def _ids_of_stream(body: bytes) -> set[str]:
    ids: set[str] = set()
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            event = orjson.loads(line[6:])
            if "error" in event:
                raise RuntimeError(f"stream error: {event['error']}")
            ids.update(choice["completion_id"] for choice in event.get("choices") or ())
    if not body.rstrip().endswith(b"data: [DONE]"):
        raise RuntimeError("stream did not end with [DONE]")
    return ids


async def _one(
    session: aiohttp.ClientSession, live: LiveGateway, run: str, number: int, outcome: Outcome
) -> None:
    stream = number % 2 == 1
    store = (number // 2) % 2 == 0
    body: dict[str, Any] = {
        "model": live.project_key,
        "messages": [{"role": "user", "content": f"load request {number}"}],
        "stream": stream,
        "store": store,
        "labels": {"load_run": run, "n": str(number)},
    }
    try:
        async with session.post(
            f"{live.base_url}/api/v1/chat/completions",
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {live.api_key}"},
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {raw[:200]!r}")
        if stream:
            ids = _ids_of_stream(raw)
        else:
            ids = {choice["completion_id"] for choice in orjson.loads(raw)["choices"]}
        if len(ids) != 1:
            raise RuntimeError(f"expected one completion id, got {ids}")
        (outcome.stored_ids if store else outcome.unstored_ids).update(ids)
    except (aiohttp.ClientError, RuntimeError, ValueError, KeyError) as exc:
        outcome.errors.append(f"request {number}: {type(exc).__name__}: {exc}")
    outcome.done += 1


async def _drive(live: LiveGateway, run: str, requests: int, clients: int) -> Outcome:
    outcome = Outcome()
    numbers = iter(range(requests))
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            for number in numbers:  # the shared iterator hands each number out once
                await _one(session, live, run, number, outcome)

        await asyncio.gather(*(client() for _ in range(clients)))
    return outcome


def _wait_for_drain(live: LiveGateway, timeout: float = 60) -> dict[str, Any]:
    """Poll /api/v1/status until the journal is empty; the last status."""
    import httpx

    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {live.api_key}"}
    while True:
        status = httpx.get(f"{live.base_url}/api/v1/status", headers=headers, timeout=10).json()
        if status["journal"]["depth"] == 0 or time.monotonic() > deadline:
            return dict(status)
        time.sleep(0.1)


@pytest.mark.load
def test_concurrent_mixed_traffic_logs_every_stored_request_once_and_no_other(
    sqlite_url: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex
    with gateway_with_demo(sqlite_url, tmp_path) as live:
        started = time.perf_counter()
        outcome = asyncio.run(_drive(live, run, REQUESTS, CLIENTS))
        elapsed = time.perf_counter() - started
        status = _wait_for_drain(live)
    assert outcome.errors == [], outcome.errors[:5]
    assert outcome.done == REQUESTS
    expected_stored = sum(1 for n in range(REQUESTS) if (n // 2) % 2 == 0)
    assert len(outcome.stored_ids) == expected_stored
    assert len(outcome.unstored_ids) == REQUESTS - expected_stored
    assert status["journal"]["depth"] == 0
    assert status["writer"]["failed"] == 0
    engine = create_store_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            ids = connection.execute(select(INTERACTION_TABLE.c.completion_id)).scalars()
            stored = {str(uuid.UUID(str(i))) for i in ids}
            labelled = connection.execute(
                select(func.count())
                .select_from(LABEL_TABLE)
                .where(LABEL_TABLE.c.key == "load_run", LABEL_TABLE.c.value == run)
            ).scalar_one()
    finally:
        engine.dispose()
    answered = {str(uuid.UUID(i)) for i in outcome.stored_ids}
    assert stored == answered  # every stored request exactly once, nothing else
    assert not stored & {str(uuid.UUID(i)) for i in outcome.unstored_ids}
    assert labelled == len(answered)
    print(
        f"\nload: {REQUESTS} requests at {CLIENTS} clients in {elapsed:.1f} s "
        f"({REQUESTS / elapsed:.0f} req/s), {len(stored)} stored, "
        f"{len(outcome.unstored_ids)} with store=false, 0 errors"
    )
