"""Logging through the real gateway and demo model: stored text, store=false, no secrets."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI
from sqlalchemy import select

from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.interactions import ATTACHMENT_TABLE, INTERACTION_TABLE
from store.keys import create_api_key
from tests.ingest.load_driver import wait_until_stored
from tests.ingest.test_capture import _dump_tables, _files
from tests.ingest.test_ingest_api import PNG, _count
from tests.servers import demo_model, gateway


def test_gateway_logs_streams_and_answers_but_never_unstored_requests_or_secrets(
    sqlite_url: str, tmp_path: Path
) -> None:
    database_url = sqlite_url  # PostgreSQL is covered by test_capture and test_durability
    upstream_key = f"sk-upstream-{uuid.uuid4().hex}"
    marker = f"private-{uuid.uuid4().hex}"
    journal_dir = tmp_path / "journal"
    with demo_model(tmp_path / "demo") as upstream:
        engine = create_store_engine(database_url)
        create_project(engine, key="proj")
        create_model(
            engine,
            key="m1",
            upstream_urls=[upstream],
            api_key_env="INTERLOG_UPSTREAM_DEMO_KEY",
            multimodal=True,
        )
        attach_model(engine, project_key="proj", model_key="m1", default=True)
        api_key = create_api_key(engine, project_key="proj").secret
        env = {
            "INTERLOG_UPSTREAM_DEMO_KEY": upstream_key,
            "INTERLOG_JOURNAL_DIR": str(journal_dir),
            # A slow writer, so the interactions are still in the journal when we read it.
            "INTERLOG_WRITER_INTERVAL": "8",
        }
        with gateway(database_url, tmp_path, env=env) as base_url:
            client = OpenAI(base_url=f"{base_url}/api/v1", api_key=api_key)
            plain = client.chat.completions.create(
                model="proj", messages=[{"role": "user", "content": "hello plain world"}]
            )
            chunks = list(
                client.chat.completions.create(
                    model="proj",
                    messages=[{"role": "user", "content": "hello streamed world"}],
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_body={"labels": {"kind": "stream"}},
                )
            )
            image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
            with_image: Any = {"role": "user", "content": [{"type": "text", "text": marker}, image]}
            hidden = client.chat.completions.create(
                model="proj",
                messages=[with_image],
                extra_body={"store": False, "labels": {"secret": marker}},
            )
            assert marker in (hidden.choices[0].message.content or "")
            hidden_chunks = client.chat.completions.create(
                model="proj",
                messages=[{"role": "user", "content": marker}],
                stream=True,
                extra_body={"store": False, "labels": {"secret": marker}},
            )
            assert marker in "".join(
                c.choices[0].delta.content or "" for c in hidden_chunks if c.choices
            )
            ids = {uuid.UUID(plain.choices[0].completion_id)}  # type: ignore[attr-defined]
            ids |= {uuid.UUID(c.choices[0].completion_id) for c in chunks if c.choices}  # type: ignore[attr-defined]
            assert len(ids) == 2
            journal = b"".join(path.read_bytes() for path in _files(journal_dir))
            wait_until_stored(database_url, ids)
            headers = {"Authorization": f"Bearer {api_key}"}
            status = httpx.get(f"{base_url}/api/v1/status", headers=headers).json()
        with engine.connect() as connection:
            rows = {
                row.completion: row for row in connection.execute(select(INTERACTION_TABLE)).all()
            }
        dump = _dump_tables(engine)
    assert set(rows) == {"echo: hello plain world", "echo: hello streamed world"}
    streamed = rows["echo: hello streamed world"]
    assert streamed.labels == {"kind": "stream"}
    assert streamed.finish_reason == "stop"
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (3, 4)
    assert 0 < streamed.ttft_ms <= streamed.latency_ms
    assert status["not_stored"] == 2
    assert status["writer"]["written"] == 2
    assert marker not in dump
    assert _count(engine, ATTACHMENT_TABLE) == 0  # the unstored request's image is not kept
    assert upstream_key not in dump and api_key not in dump
    assert b"hello streamed world" in journal
    assert marker.encode() not in journal
    assert upstream_key.encode() not in journal and api_key.encode() not in journal
    engine.dispose()
