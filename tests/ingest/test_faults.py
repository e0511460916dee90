"""Fault suite (issue 21): a real gateway under chat load through kill -9, a 30 s PostgreSQL
outage and records the store refuses; afterwards every answer a client fully received is in the
store exactly once. Each scenario prints delivered / stored / missing / duplicates.

The gateway helpers (subprocess gateway, throwaway PostgreSQL cluster) are test_durability's.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from ingest.journal import Journal
from store.catalog import get_project
from store.db import create_store_engine
from store.ids import uuid7
from tests.ingest.load_driver import Traffic, drive, stored_ids, wait_until_stored
from tests.ingest.test_durability import (
    _gateway,
    _pg_start,
    _pg_stop,
    _throwaway_postgres,
    _wait_for_answers,
)
from tests.servers import REPO_ROOT, demo_model, seed_project
from tests.support import free_port, interlog_process, wait_for_http

KILLS = 3
OUTAGE_SECONDS = 30.0


def _backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


@contextmanager
def _gateway_on(
    port: int, database_url: str, workdir: Path, journal_dir: Path, name: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """test_durability's gateway, on a given port: restarted there, clients keep sending."""
    settings = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(journal_dir),
        "INTERLOG_LOG_LEVEL": "warning",
        **env,
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    log = workdir / f"gateway-{name}.log"
    with interlog_process(args, env=settings, cwd=REPO_ROOT, log=log) as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process, timeout=90)
        yield process


def _status(url: str, key: str) -> dict[str, Any]:
    response = httpx.get(
        url + "/api/v1/status", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@contextmanager
def _load(url: str, key: str, traffic: Traffic, clients: int) -> Iterator[None]:
    """Chat clients sending until the block ends."""
    stop = threading.Event()
    threads = drive(url, key, traffic, stop, clients=clients)
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def _assert_stored_once(
    scenario: str, database_url: str, delivered: set[uuid.UUID], timeout: float = 90.0
) -> None:
    """Wait for the writer, print the counts, then: 0 missing, 0 duplicates."""
    counts = Counter(wait_until_stored(database_url, delivered, timeout=timeout))
    stored = sum(1 for ident in delivered if counts[ident])
    missing = len(delivered) - stored
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    print(
        f"\n[{scenario}] delivered={len(delivered)} stored={stored} "
        f"missing={missing} duplicates={duplicates}"
    )
    assert missing == 0, f"{missing} of {len(delivered)} delivered answers not stored"
    assert duplicates == 0


# -- 1. kill -9, three times, under load ------------------------------------------------------


def test_three_kill_9s_under_load_lose_and_duplicate_nothing(
    database_url: str, tmp_path: Path
) -> None:
    backend = _backend(database_url)
    journal_dir = tmp_path / "journal"
    port = free_port()  # every gateway on the same port: the clients keep sending to it
    url = f"http://127.0.0.1:{port}"
    slow_writer = {"INTERLOG_WRITER_INTERVAL": "1.0"}  # the journal holds answers at each kill
    journal_only: list[int] = []  # per kill: delivered answers not yet in the store
    with demo_model(tmp_path) as upstream:
        key, _, _ = seed_project(database_url, upstream_urls=[upstream])
        traffic = Traffic()
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            for kill in range(KILLS):
                with _gateway_on(
                    port, database_url, tmp_path, journal_dir, f"kill-{kill}", **slow_writer
                ) as process:
                    if not threads:
                        threads = drive(url, key, traffic, stop, clients=4)
                    _wait_for_answers(traffic, len(traffic.received) + 15)
                    if kill:
                        # It claimed the journal of the one killed before it; it dies after its
                        # writer stored some of that (so replays overlap what is stored) while
                        # the next batch is still only in its journal.
                        _wait_for(
                            "a write after the restart",
                            lambda: _status(url, key)["writer"]["written"] > 0,
                        )
                        assert _status(url, key)["journal"]["replayed"] >= journal_only[-1]
                        _wait_for_answers(traffic, len(traffic.received) + 10)
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                journal_only.append(len(traffic.received - set(stored_ids(database_url))))
            # The clients have kept sending while no gateway answered; a last one serves them.
            with _gateway_on(port, database_url, tmp_path, journal_dir, "after"):
                _wait_for_answers(traffic, len(traffic.received) + 10)
                assert _status(url, key)["journal"]["replayed"] >= journal_only[-1]
                stop.set()
                for thread in threads:
                    thread.join(timeout=15)
                print(
                    f"\n[kill-9 {backend}] delivered answers only journaled at each kill:", end=""
                )
                print(f" {journal_only}; failed requests {traffic.failures}")
                _assert_stored_once(f"kill-9 x{KILLS} {backend}", database_url, traffic.received)
        finally:
            stop.set()
    assert sum(journal_only) > 0, "the kills should leave answers only in the journal"
    # Everything was replayed and stored: after the clean stop no journal directory is left.
    assert [p.name for p in journal_dir.iterdir() if p.is_dir()] == []


# -- 2. PostgreSQL stopped for 30 s under load ------------------------------------------------


def test_a_thirty_second_database_outage_under_load_loses_nothing(tmp_path: Path) -> None:
    import migrations

    with _throwaway_postgres(tmp_path) as (pg_ctl, pg_port, data):
        _pg_start(pg_ctl, pg_port, data)
        database_url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/postgres"
        migrations.upgrade(database_url)
        with demo_model(tmp_path) as upstream:
            key, _, _ = seed_project(database_url, upstream_urls=[upstream])
            traffic = Traffic()
            journal_dir = tmp_path / "journal"
            with (
                _gateway(database_url, tmp_path, journal_dir, "outage") as (url, _),
                _load(url, key, traffic, clients=3),
            ):
                _wait_for_answers(traffic, 5)
                _pg_stop(pg_ctl, data)
                stopped = time.monotonic()
                before, failures_before = len(traffic.received), traffic.failures
                # Keys and routes are cached, and kept while the store is away once their TTL
                # passes: answers keep coming through the whole outage (counted every 5 s).
                counts = [before]
                while (elapsed := time.monotonic() - stopped) < OUTAGE_SECONDS:
                    time.sleep(min(5.0, OUTAGE_SECONDS - elapsed))
                    counts.append(len(traffic.received))
                away = _status(url, key)
                _pg_start(pg_ctl, pg_port, data)
                _wait_for_answers(traffic, len(traffic.received) + 3)
                _wait_for(
                    "the writer to catch up",
                    lambda: _status(url, key)["writer"]["written"] >= counts[-1],
                )
                back = _status(url, key)
            per_window = [b - a for a, b in itertools.pairwise(counts)]
            print(
                f"\n[outage postgres] answers per 5 s of the outage {per_window}; journal depth "
                f"{away['journal']['depth']} at its end; writer after: {back['writer']}"
            )
            assert traffic.failures == failures_before, traffic.errors
            assert all(n > 0 for n in per_window), per_window
            assert away["journal"]["depth"] > 0
            assert back["writer"]["retried"] >= 1 and back["writer"]["last_error"]
            assert back["writer"]["failed"] == 0
            _assert_stored_once("outage 30 s postgres", database_url, traffic.received)
            # The gateway stopped cleanly after the catch-up: its journal was emptied.
            assert [p.name for p in journal_dir.iterdir() if p.is_dir()] == []


def test_the_writer_backs_off_through_an_outage_with_a_full_batch_waiting(
    tmp_path: Path,
) -> None:
    """The writer part of the outage above, in process: a store that refuses connections, a
    journal over one batch, and appends (each waking the writer, as capture does) for 5 s. New
    traffic used to end every back-off (463 retries in a 30 s outage, not ~12)."""
    from ingest.writer import JournalWriter

    away = create_store_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    journal = Journal(tmp_path / "journal", fsync="never")
    journal.open()
    writer = JournalWriter(journal, away, batch_size=50, interval=0.05)

    async def outage() -> None:
        await writer.start()
        journal.append_nowait([_record(1, n) for n in range(60)])
        started = time.monotonic()
        while time.monotonic() - started < 5.0:
            journal.append_nowait([_record(1, 0)])
            if journal.depth >= writer.batch_size:
                writer.wake()  # what ingest/capture.py does after each append
            await asyncio.sleep(0.02)
        await writer.stop(drain_timeout=0.5)

    try:
        asyncio.run(outage())
    finally:
        away.dispose()
    print(f"\n[writer backoff] {writer.stats.retried} retries in 5 s of outage")
    # Backing off 0.1, 0.2, 0.4 ... 5 s: about 6 attempts in 5 s (not one per append: ~250).
    assert writer.stats.retried <= 15


# -- 3. poison records in a dead process's journal --------------------------------------------


def _record(project_id: int, n: int, **changes: Any) -> dict[str, Any]:
    """A journal record as the capture middleware writes it."""
    return {
        "completion_id": str(uuid7()),
        "project_id": project_id,
        "session_id": str(uuid.uuid4()),
        "created_at": "2026-01-01T00:00:00+00:00",
        "labels": {"orphan": str(n)},
        "messages": [{"role": "user", "content": f"orphan question {n}"}],
        "params": {},
        "completion": f"orphan answer {n}",
        "finish_reason": "stop",
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "status": "ok",
        **changes,
    }


def _poison(backend: str, project_id: int) -> dict[str, tuple[dict[str, Any], str]]:
    """Records the store refuses for good, each with (a pattern of) the reason it gives.

    Checked against the writer's insert: there is no foreign key on interaction.project_id
    and the token columns are 64-bit on PostgreSQL, so neither an unknown project nor 2**31
    tokens is refused; a missing session id and a token count past 2**63-1 are, on both."""
    poison = {
        "no_session": (
            _record(project_id, -1, session_id=None),
            r"NOT NULL constraint failed|NotNullViolation",
        ),
        "tokens_past_int64": (
            _record(project_id, -2, prompt_tokens=2**63),
            r"OverflowError",
        ),
    }
    if backend == "postgres":
        # An index row past a btree page: (project_id, key, value) with a 3,200-char value.
        poison["label_too_long"] = (
            _record(project_id, -3, labels={"big": secrets.token_hex(1600)}),
            r"ProgramLimitExceeded",
        )
    return poison


def _dead_process_journal(
    journal_dir: Path, good: list[dict[str, Any]], bad: list[dict[str, Any]]
) -> None:
    """A journal directory as a process that died before its writer stored anything leaves
    it: written by the real Journal class, closed without draining, its lock free."""
    journal = Journal(journal_dir, fsync="entry")
    journal.open()
    records = list(good)
    for index, record in enumerate(bad):  # spread among the good ones
        records.insert(1 + index * (len(records) // len(bad)), record)
    for record in records:
        journal.append_nowait([record])
    journal.close()  # keeps the directory (entries pending) and releases its lock
    assert journal.directory is not None and journal.directory.is_dir()


def _rejected_records(journal_dir: Path) -> dict[str, str]:
    """completion_id -> reason, of every record in the rejected files."""
    rejected: dict[str, str] = {}
    for path in journal_dir.glob("rejected-*.jsonl"):
        for line in path.read_bytes().splitlines():
            entry = orjson.loads(line)
            rejected[entry["record"]["completion_id"]] = entry["error"]
    return rejected


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=30).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_poison_records_are_set_aside_without_stalling_logging(
    database_url: str, tmp_path: Path
) -> None:
    backend = _backend(database_url)
    journal_dir = tmp_path / "journal"
    with demo_model(tmp_path) as upstream:
        key, project_key, _ = seed_project(database_url, upstream_urls=[upstream])
        engine = create_store_engine(database_url)
        try:
            project_id = get_project(engine, key=project_key).id
        finally:
            engine.dispose()
        assert project_id is not None
        good = [_record(project_id, n) for n in range(20)]
        poison = _poison(backend, project_id)
        _dead_process_journal(journal_dir, good, [record for record, _ in poison.values()])
        traffic = Traffic()
        # The writer's first batch waits 2 s: the dead process's records meet live ones in it.
        slow_writer = {"INTERLOG_WRITER_INTERVAL": "2.0"}
        with _gateway(database_url, tmp_path, journal_dir, "poison", **slow_writer) as (url, _):
            with _load(url, key, traffic, clients=2):
                _wait_for_answers(traffic, 20)
                _wait_for(
                    "the poison records to be set aside",
                    lambda: _status(url, key)["writer"]["failed"] >= len(poison),
                )
                _wait_for_answers(traffic, len(traffic.received) + 20)  # logging goes on
            _wait_for("the journal to drain", lambda: _status(url, key)["journal"]["depth"] == 0)
            status = _status(url, key)
            failed_metric = _metric(url, "interlog_interactions_failed_total")
        log = (tmp_path / "gateway-poison.log").read_text()
        first_split = re.search(r"batch of (\d+) refused", log)
        assert first_split, log[-2000:]
        delivered = traffic.received | {uuid.UUID(record["completion_id"]) for record in good}
        _assert_stored_once(f"poison {backend}", database_url, delivered)
    print(
        f"[poison {backend}] rejected={status['writer']['failed']} of {len(poison)} poison "
        f"records; replayed={status['journal']['replayed']}; live answers={len(traffic.received)}"
        f"; first refused batch held {first_split.group(1)} records"
    )
    assert traffic.failures == 0, traffic.errors
    assert status["journal"]["replayed"] == len(good) + len(poison)
    assert status["writer"]["failed"] == len(poison), status["writer"]
    assert status["journal"]["rejected"] == len(poison), status["journal"]
    assert failed_metric == len(poison)
    assert int(first_split.group(1)) > len(good) + len(poison)  # live records were in it too
    stored = set(stored_ids(database_url))
    rejected = _rejected_records(journal_dir)
    assert len(rejected) == len(poison), rejected
    for name, (record, reason) in poison.items():
        assert uuid.UUID(record["completion_id"]) not in stored, name
        assert re.search(reason, rejected[record["completion_id"]]), (name, rejected)
    # Every entry was stored or set aside: after the clean stop no journal directory is left.
    assert [p.name for p in journal_dir.iterdir() if p.is_dir()] == []
