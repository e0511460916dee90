"""The capture middleware, behind a stand-in gateway on a real server, with the real journal."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, inspect, select, text

from store.catalog import create_model, create_project
from store.interactions import INTERACTION_TABLE, LABEL_TABLE
from tests.ingest.chat_double import build_chat_double, serve_in_thread

CHAT = "/api/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "say hello"}]


@dataclass
class Gateway:
    url: str
    app: Any
    journal_dir: Path


@pytest.fixture
def target(engine: Engine) -> tuple[int, int]:
    project = create_project(engine, key="proj")
    model = create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9"])
    assert project.id is not None and model.id is not None
    return project.id, model.id


@pytest.fixture
def gateway(engine: Engine, target: tuple[int, int], tmp_path: Path) -> Iterator[Gateway]:
    journal_dir = tmp_path / "journal"
    app = build_chat_double(engine, journal_dir, project_id=target[0], model_id=target[1])
    with serve_in_thread(app) as url:
        yield Gateway(url, app, journal_dir)


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(select(INTERACTION_TABLE).order_by(text("choice_index")))
        return [dict(row._mapping) for row in result]


def _wait_for_rows(engine: Engine, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(engine)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def _sse_events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def test_non_streamed_answer_is_stored_with_text_tokens_and_timings(
    gateway: Gateway, engine: Engine
) -> None:
    body = {"messages": MESSAGES, "reply": "hi", "labels": {"team": "search"}}
    response = httpx.post(gateway.url + CHAT, json=body)
    assert response.status_code == 200
    completion_id = response.json()["choices"][0]["completion_id"]
    [row] = _wait_for_rows(engine, 1)
    assert str(row["completion_id"]) == completion_id
    assert row["completion"] == "hi #0"
    assert row["finish_reason"] == "stop"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 3)
    assert row["status"] == "ok" and row["error"] is None and row["source"] == "LIVE"
    assert 0 < row["ttft_ms"] <= row["latency_ms"]
    assert row["messages"] == MESSAGES
    assert row["labels"] == {"team": "search"}
    with engine.connect() as connection:
        labels = connection.execute(select(LABEL_TABLE.c.key, LABEL_TABLE.c.value)).all()
    assert [tuple(label) for label in labels] == [("team", "search")]


def test_streamed_answer_is_stored_with_assembled_text_usage_and_ttft(
    gateway: Gateway, engine: Engine
) -> None:
    body = {
        "messages": MESSAGES,
        "stream": True,
        "reply": "the quick brown fox",
        "stream_options": {"include_usage": True},
        "delay": 0.02,
    }
    response = httpx.post(gateway.url + CHAT, json=body)
    assert _sse_events(response)[-1] == "[DONE]"
    [row] = _wait_for_rows(engine, 1)
    assert row["completion"] == "the quick brown fox"
    assert row["finish_reason"] == "stop"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 3)
    # Four chunks 20 ms apart: the first token comes well before the end.
    assert row["ttft_ms"] < row["latency_ms"] - 40


def test_stream_without_usage_gets_estimated_tokens(gateway: Gateway, engine: Engine) -> None:
    body = {"messages": MESSAGES, "stream": True, "reply": "twelve chars"}
    httpx.post(gateway.url + CHAT, json=body)
    [row] = _wait_for_rows(engine, 1)
    assert row["completion_tokens"] == 3  # ceil(12 / 4)
    assert row["prompt_tokens"] == 3  # "say hello": ceil(9 / 4)


def test_every_choice_becomes_its_own_interaction(gateway: Gateway, engine: Engine) -> None:
    response = httpx.post(gateway.url + CHAT, json={"messages": MESSAGES, "n": 2, "reply": "x"})
    ids = [choice["completion_id"] for choice in response.json()["choices"]]
    rows = _wait_for_rows(engine, 2)
    assert [str(row["completion_id"]) for row in rows] == ids
    assert [row["completion"] for row in rows] == ["x #0", "x #1"]
    assert [row["choice_index"] for row in rows] == [0, 1]


def test_upstream_error_mid_stream_is_logged_with_partial_text(
    gateway: Gateway, engine: Engine
) -> None:
    body = {"messages": MESSAGES, "stream": True, "reply": "one two three", "fail_after": 2}
    httpx.post(gateway.url + CHAT, json=body)
    [row] = _wait_for_rows(engine, 1)
    assert row["status"] == "error"
    assert row["error"] == "upstream went away"
    assert row["completion"] == "one two "


def test_client_disconnect_is_logged_as_cancelled_with_what_was_sent(
    gateway: Gateway, engine: Engine
) -> None:
    body = {"messages": MESSAGES, "stream": True, "reply": "a b c d e f g h", "delay": 0.3}
    with (
        httpx.Client() as client,
        client.stream("POST", gateway.url + CHAT, json=body) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first chunk
    [row] = _wait_for_rows(engine, 1)
    assert row["status"] == "cancelled"
    assert row["completion"].startswith("a ")
    assert row["completion"] != "a b c d e f g h"


def test_interaction_is_journaled_before_the_client_has_the_whole_response(
    engine: Engine, target: tuple[int, int], tmp_path: Path
) -> None:
    # A writer that would wait a minute: the only copy is the journal when the answer arrives.
    journal_dir = tmp_path / "journal"
    app = build_chat_double(
        engine, journal_dir, project_id=target[0], model_id=target[1], writer_interval=60
    )
    with serve_in_thread(app) as url:
        for stream in (False, True):
            response = httpx.post(url + CHAT, json={"messages": MESSAGES, "stream": stream})
            journaled = b"".join(p.read_bytes() for p in journal_dir.glob("*/seg-*.jsonl"))
            if stream:
                completion_id = response.text.split('"completion_id":"')[1].split('"')[0]
            else:
                completion_id = response.json()["choices"][0]["completion_id"]
            assert completion_id.encode() in journaled
        assert _rows(engine) == []
    # Shutdown drains the journal into the store.
    assert len(_rows(engine)) == 2


def test_ensure_written_makes_a_fresh_interaction_readable(
    engine: Engine, target: tuple[int, int], tmp_path: Path
) -> None:
    app = build_chat_double(
        engine, tmp_path / "j", project_id=target[0], model_id=target[1], writer_interval=60
    )
    with serve_in_thread(app) as url:
        response = httpx.post(url + CHAT, json={"messages": MESSAGES})
        completion_id = uuid.UUID(response.json()["choices"][0]["completion_id"])
        assert _rows(engine) == []
        writer = app.state.writer
        future = asyncio.run_coroutine_threadsafe(
            writer.ensure_written([completion_id, uuid.uuid4()]), _loop_of(writer)
        )
        future.result(timeout=10)
        assert [row["completion_id"] for row in _rows(engine)] == [completion_id]


def _loop_of(writer: Any) -> Any:
    task = writer._task
    assert task is not None
    return task.get_loop()


def test_store_false_leaves_no_trace_in_any_table_or_journal_file(
    gateway: Gateway, engine: Engine
) -> None:
    marker = f"private-{uuid.uuid4().hex}"
    body = {
        "messages": [{"role": "user", "content": marker}],
        "store": False,
        "labels": {"secret": marker},
        "reply": marker,
    }
    for stream in (False, True):
        response = httpx.post(gateway.url + CHAT, json={**body, "stream": stream})
        assert marker in response.text
    # A stored request afterwards, so the writer has certainly run past the unstored ones.
    httpx.post(gateway.url + CHAT, json={"messages": MESSAGES})
    _wait_for_rows(engine, 1)
    time.sleep(0.1)
    assert marker not in _dump_tables(engine)
    assert _rows(engine)[0]["completion"] == "hello there #0"
    assert all(marker.encode() not in path.read_bytes() for path in _files(gateway.journal_dir))
    assert gateway.app.state.telemetry.not_stored == 2


def test_secrets_never_reach_the_store_or_the_journal(
    engine: Engine, target: tuple[int, int], tmp_path: Path
) -> None:
    api_key = f"il_test_{uuid.uuid4().hex}"
    upstream_key = f"sk-upstream-{uuid.uuid4().hex}"
    journal_dir = tmp_path / "journal"
    app = build_chat_double(
        engine, journal_dir, project_id=target[0], model_id=target[1], writer_interval=60
    )
    body = {
        "messages": MESSAGES,
        "params": {"temperature": 0.2, "api_key": upstream_key, "Authorization": api_key},
    }
    headers = {"Authorization": f"Bearer {api_key}", "X-Upstream-Key": upstream_key}
    with serve_in_thread(app) as url:
        for stream in (False, True):
            httpx.post(url + CHAT, json={**body, "stream": stream}, headers=headers)
        journal_bytes = b"".join(path.read_bytes() for path in _files(journal_dir))
        assert b"temperature" in journal_bytes  # the journal holds the interactions...
        assert api_key.encode() not in journal_bytes  # ...but not the secrets
        assert upstream_key.encode() not in journal_bytes
    dump = _dump_tables(engine)
    assert "temperature" in dump
    assert api_key not in dump and upstream_key not in dump


def _files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


def _dump_tables(engine: Engine) -> str:
    """Every value of every table, as text."""
    parts: list[str] = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)
