"""A model that writes U+0000: the client gets it as sent, and the interaction is stored.

Clients cannot send NUL (ingest/limits.py refuses it), but upstream models do emit it. PostgreSQL
cannot hold it in text or jsonb and refused the writer's whole COPY, so the interaction was set
aside in the journal's rejected file instead of the store. Now it is stored, as U+FFFD there.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.servers import gateway, seed_project, stored_interaction

TEXT = "before\x00after"


@contextmanager
def nul_upstream() -> Iterator[str]:
    """An OpenAI-like upstream on loopback whose every answer holds a NUL character."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            answer = {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "up",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": TEXT},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
            body = json.dumps(answer).encode()  # the NUL goes out as the escape \u0000
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
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_completion_with_nul_reaches_the_client_and_the_store(
    database_url: str, tmp_path: Path
) -> None:
    with nul_upstream() as upstream:
        api_key, project, _ = seed_project(database_url, upstream_urls=[upstream])
        with gateway(database_url, tmp_path) as base_url:
            headers = {"Authorization": f"Bearer {api_key}"}
            body = {"model": project, "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(f"{base_url}/api/v1/chat/completions", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            [choice] = answer.json()["choices"]
            assert choice["message"]["content"] == TEXT  # the answer is not altered

            stored = stored_interaction(database_url, choice["completion_id"])
            status = httpx.get(f"{base_url}/api/v1/status", headers=headers).json()
    assert stored is not None, f"not stored; writer: {status.get('writer')}"
    row, _ = stored
    kept = "\x00" if database_url.startswith("sqlite") else "\ufffd"
    assert row.completion == TEXT.replace("\x00", kept)
    assert status["writer"]["failed"] == 0
