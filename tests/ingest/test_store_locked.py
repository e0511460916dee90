"""A SQLite store whose write lock another process holds must not stall chat: a key-cache miss
used to write the key's `last_used_at` on the request path and wait out SQLite's 30 s busy
timeout (29 s per request); now the write happens in the background (ingest/key_usage.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from store.db import create_store_engine
from store.keys import create_api_key
from tests.servers import gateway_with_demo

HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("ROLLBACK")
"""


def _last_used(database_url: str, prefix: str) -> object:
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT last_used_at FROM api_key WHERE prefix = :p"), {"p": prefix}
            ).scalar()
    finally:
        engine.dispose()


def test_a_held_write_lock_does_not_stall_chat(sqlite_url: str, tmp_path: Path) -> None:
    with gateway_with_demo(sqlite_url, tmp_path) as live:
        engine = create_store_engine(sqlite_url)
        fresh = create_api_key(engine, project_key=live.project_key)  # not in any cache yet
        engine.dispose()
        path = make_url(sqlite_url).database
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(path), "8"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            began = time.monotonic()
            answer = httpx.post(
                f"{live.base_url}/api/v1/chat/completions",
                json={"model": live.project_key, "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {fresh.secret}"},
                timeout=60,
            )
            took = time.monotonic() - began
            assert answer.status_code == 200, answer.text
            assert took < 4.0, f"chat waited {took:.1f} s for the lock"
            began = time.monotonic()  # readiness reads; it hung behind the stalled writes
            ready = httpx.get(f"{live.base_url}/readyz", timeout=60)
            assert ready.status_code == 200 and time.monotonic() - began < 4.0
            assert holder.poll() is None  # the lock was held the whole time
        finally:
            holder.wait(30)
        # Once the lock is gone, the background round records the key's use.
        deadline = time.monotonic() + 30
        while _last_used(sqlite_url, fresh.prefix) is None:
            assert time.monotonic() < deadline, "last_used_at was never written"
            time.sleep(0.5)
