"""Chat traffic for durability tests: concurrent clients that note each fully received answer.

An answer counts as received only when its HTTP response completed (for a stream: the chunked
body ended cleanly, not just `[DONE]` seen); requests cut off by a crash are counted apart.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from store.db import create_store_engine
from store.interactions import INTERACTION_TABLE


@dataclass
class Traffic:
    """What the clients saw: ids of complete answers, and how many requests failed."""

    received: set[uuid.UUID] = field(default_factory=set)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, ids: list[str]) -> None:
        with self.lock:
            self.received.update(uuid.UUID(i) for i in ids)

    def fail(self, error: Exception) -> None:
        with self.lock:
            self.failures += 1
            if len(self.errors) < 20:
                self.errors.append(f"{type(error).__name__}: {error}")


def _completion_ids(response: httpx.Response, stream: bool) -> list[str]:
    if not stream:
        return [choice["completion_id"] for choice in response.json()["choices"]]
    ids: set[str] = set()
    for line in response.iter_lines():
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:]).get("choices") or ():
                ids.add(choice["completion_id"])
    return sorted(ids)


def chat_once(client: httpx.Client, base_url: str, key: str, number: int) -> list[str]:
    """One chat completion (every other one streamed); the completion ids of a full answer."""
    stream = number % 2 == 1
    body: dict[str, Any] = {
        "model": "proj",
        "messages": [{"role": "user", "content": f"request {number} says hello"}],
        "stream": stream,
        "labels": {"n": str(number)},
    }
    headers = {"Authorization": f"Bearer {key}"}
    with client.stream(
        "POST", f"{base_url}/api/v1/chat/completions", json=body, headers=headers
    ) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        if not stream:
            response.read()
        return _completion_ids(response, stream)


def drive(
    base_url: str, key: str, traffic: Traffic, stop: threading.Event, *, clients: int = 4
) -> list[threading.Thread]:
    """Start `clients` threads sending chat requests until `stop` is set."""
    counter = iter(range(10**9))
    counter_lock = threading.Lock()

    def run() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                with counter_lock:
                    number = next(counter)
                try:
                    traffic.note(chat_once(client, base_url, key, number))
                except (httpx.HTTPError, RuntimeError) as exc:
                    traffic.fail(exc)
                    time.sleep(0.05)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def stored_ids(database_url: str) -> list[uuid.UUID]:
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(INTERACTION_TABLE.c.completion_id)).scalars())
    finally:
        engine.dispose()


def wait_until_stored(
    database_url: str, wanted: set[uuid.UUID], timeout: float = 30.0
) -> list[uuid.UUID]:
    """Poll the store until every wanted id is there (or the time is up); returns all ids."""
    deadline = time.monotonic() + timeout
    while True:
        ids = stored_ids(database_url)
        if wanted <= set(ids) or time.monotonic() > deadline:
            return ids
        time.sleep(0.2)


def journal_bytes(journal_dir: Path) -> int:
    return sum(path.stat().st_size for path in journal_dir.rglob("seg-*.jsonl"))
