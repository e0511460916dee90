"""The servers a benchmark runs: fake upstream, Interlog gateways, a scratch PostgreSQL database.

Every server is a subprocess in its own session, started on a free loopback port and always
stopped by its PID (SIGTERM, then SIGKILL) when its `with` block ends, also on Ctrl-C or an
error. `stop_on_sigterm()` turns a SIGTERM of the benchmark itself into the same clean exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import (  # noqa: E402
    free_port,
    interlog_env,
    stop_process_group,
    wait_for_http,
)

PG_SERVER = os.environ.get(
    "INTERLOG_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def stop_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit so every `with` block below stops its server."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@contextmanager
def process(
    command: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run COMMAND in its own session; always stopped by PID afterwards."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=interlog_env(env or {}),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield child
        finally:
            stop_process_group(child)


def wait_or_explain(url: str, child: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Wait until URL answers; if the server dies or hangs, fail with the end of its log."""
    try:
        wait_for_http(url, timeout=timeout, process=child)
    except (RuntimeError, TimeoutError) as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise RuntimeError(f"{exc}\n--- {log.name} ---\n{tail}") from exc


@contextmanager
def fake_upstream(workdir: Path) -> Iterator[str]:
    """The raw ASGI fake upstream; yields its OpenAI base URL `http://127.0.0.1:P/v1`."""
    port = free_port()
    log = workdir / f"upstream-{port}.log"
    command = [sys.executable, "-m", "bench.fake_upstream", "--port", str(port)]
    with process(command, log=log) as child:
        wait_or_explain(f"http://127.0.0.1:{port}/v1/models", child, log, 30)
        yield f"http://127.0.0.1:{port}/v1"


class Gateway:
    """A running `interlog serve`: where it listens, its PID, its store and a project key."""

    def __init__(self, base_url: str, pid: int, database_url: str, key: str) -> None:
        self.base_url = base_url
        self.pid = pid
        self.database_url = database_url
        self.key = key

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/api/v1/chat/completions"


def seed_store(database_url: str, upstream: str) -> str:
    """Migrate, create project `bench` with default model `demo` on UPSTREAM; a project key."""
    import migrations
    from store.catalog import attach_model, create_model, create_project
    from store.db import create_store_engine
    from store.keys import create_api_key

    migrations.upgrade(database_url)
    engine = create_store_engine(database_url)
    try:
        create_project(engine, key="bench")
        create_model(engine, key="demo", upstream_urls=[upstream])
        attach_model(engine, project_key="bench", model_key="demo", default=True)
        return create_api_key(engine, project_key="bench").secret
    finally:
        engine.dispose()


@contextmanager
def interlog_gateway(
    database_url: str, upstream: str, workdir: Path, *, fsync: str = "batch", workers: int = 1
) -> Iterator[Gateway]:
    """A seeded store and `interlog serve` (WORKERS processes, logging on) in front of UPSTREAM."""
    key = seed_store(database_url, upstream)
    port = free_port()
    name = make_url(database_url).get_backend_name()
    env = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(workdir / f"journal-{name}-{port}"),
        "INTERLOG_JOURNAL_FSYNC": fsync,
        "INTERLOG_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "ingest", "serve", "--port", str(port), "--no-migrate"]
    command += ["--workers", str(workers)]
    log = workdir / f"gateway-{name}-{port}.log"
    with process(command, log=log, env=env) as child:
        base = f"http://127.0.0.1:{port}"
        wait_or_explain(f"{base}/healthz", child, log, 60)
        yield Gateway(base, child.pid, database_url, key)


def _pg_conninfo(url: str) -> str:
    parsed = make_url(url)
    return (
        f"host={parsed.host or '127.0.0.1'} port={parsed.port or 5432} "
        f"user={parsed.username or 'postgres'} dbname={parsed.database or 'postgres'}"
        + (f" password={parsed.password}" if parsed.password else "")
    )


@contextmanager
def postgres_database() -> Iterator[str]:
    """A scratch database on the local PostgreSQL server, dropped afterwards; yields its URL."""
    name = f"interlog_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_pg_conninfo(PG_SERVER), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_pg_conninfo(PG_SERVER), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def postgres_available() -> str | None:
    """None when the local PostgreSQL server answers, else the reason it cannot be used."""
    try:
        psycopg.connect(_pg_conninfo(PG_SERVER), connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable: {str(exc).strip()[:120]}"
    return None


def count_interactions(database_url: str) -> int:
    from store.db import create_store_engine
    from store.interactions import INTERACTION_TABLE

    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            statement = select(func.count()).select_from(INTERACTION_TABLE)
            return int(connection.execute(statement).scalar_one())
    finally:
        engine.dispose()


def journal_status(gateway: Gateway) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {gateway.key}"}
    response = httpx.get(f"{gateway.base_url}/api/v1/status", headers=headers, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def drain_and_count(gateway: Gateway, *, expected: int | None = None, timeout: float = 120) -> int:
    """Rows in the store once the gateway has journaled and written what it received.

    Requests still in flight when the load generator stopped are journaled a moment later, so
    "the journal is empty" is not enough: wait until the count reaches EXPECTED (when given),
    or else until the journal is empty and the count has not moved for a second.
    """
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while True:
        depth = journal_status(gateway)["journal"]["depth"]
        count = count_interactions(gateway.database_url)
        now = time.monotonic()
        if count != last:
            last, stable_since = count, now
        if depth == 0 and (count == expected or now - stable_since >= 1.0):
            return count
        if now > deadline:
            return count
        time.sleep(0.1)
