"""Upstream API keys: read from the named environment variable, sent upstream, never stored."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.keys import create_api_key
from tests.servers import chat_answer, fixed_upstream, gateway, stored_interaction


def test_the_key_named_on_the_model_goes_upstream_and_nowhere_else(
    sqlite_url: str, tmp_path: Path
) -> None:
    secret = f"sk-upstream-{uuid.uuid4().hex}"
    with fixed_upstream(chat_answer("hi")) as (upstream, seen):
        engine = create_store_engine(sqlite_url)
        create_project(engine, key="proj")
        create_model(
            engine, key="keyed", upstream_urls=[upstream], api_key_env="INTERLOG_UPSTREAM_KEY"
        )
        create_model(engine, key="open", upstream_urls=[upstream])
        attach_model(engine, project_key="proj", model_key="keyed", default=True)
        attach_model(engine, project_key="proj", model_key="open")
        api_key = create_api_key(engine, project_key="proj").secret
        engine.dispose()
        journal = tmp_path / "journal"
        env = {"INTERLOG_UPSTREAM_KEY": secret, "INTERLOG_JOURNAL_DIR": str(journal)}
        with gateway(sqlite_url, tmp_path, env=env) as base_url:
            ids = []
            for model in ("proj", "proj/open"):
                answer = httpx.post(
                    f"{base_url}/api/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=10,
                )
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["choices"][0]["completion_id"])
            rows = [stored_interaction(sqlite_url, completion_id) for completion_id in ids]
            database = Path(sqlite_url.removeprefix("sqlite:///"))
            # Every file the gateway wrote: store, its WAL, journal segments, logs.
            files = {*tmp_path.rglob("*"), *database.parent.glob(database.name + "*")}
            written = b"".join(path.read_bytes() for path in files if path.is_file())
    assert seen[0].get("authorization") == f"Bearer {secret}"
    assert "authorization" not in seen[1]  # a model without a key sends none
    assert api_key not in json.dumps(seen)  # the client's Interlog key never goes upstream
    assert all(row is not None for row in rows)
    assert len(written) > 10_000 and b"proj" in written  # the scan sees the store
    assert secret.encode() not in written
