"""Upstream API keys: read from the named environment variable, sent upstream, never stored."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.keys import create_api_key
from tests.servers import gateway, stored_interaction

ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "up",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


@contextmanager
def recording_upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An OpenAI-like upstream on loopback that records each request's headers."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({name.lower(): value for name, value in self.headers.items()})
            body = json.dumps(ANSWER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_key_named_on_the_model_goes_upstream_and_nowhere_else(
    sqlite_url: str, tmp_path: Path
) -> None:
    secret = f"sk-upstream-{uuid.uuid4().hex}"
    with recording_upstream() as (upstream, seen):
        engine = create_store_engine(sqlite_url)
        create_project(engine, key="proj")
        create_model(engine, key="keyed", upstream_urls=[upstream], api_key_env="UPSTREAM_KEY")
        create_model(engine, key="open", upstream_urls=[upstream])
        attach_model(engine, project_key="proj", model_key="keyed", default=True)
        attach_model(engine, project_key="proj", model_key="open")
        api_key = create_api_key(engine, project_key="proj").secret
        engine.dispose()
        journal = tmp_path / "journal"
        env = {"UPSTREAM_KEY": secret, "INTERLOG_JOURNAL_DIR": str(journal)}
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
