"""A tiny stand-in for the chat gateway, to test the capture middleware on its own.

It sets `request.state.chat` like the gateway does and answers in the gateway's wire format
(OpenAI + Adaptive union; SSE for streams). The request body steers it: `reply` (text), `n`,
`stream`, `stream_options.include_usage`, `store`, `labels`, `fail_after` (chunks before an
in-stream error), `delay` (seconds between chunks), `params` (passed into the context).
It runs under a real uvicorn server on loopback, with the real journal and writer.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ingest.capture import CaptureMiddleware
from ingest.context import ChatContext
from ingest.journal import Journal
from ingest.telemetry import Telemetry
from ingest.writer import JournalWriter
from store.ids import uuid7
from tests.support import free_port


def _chunks(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


async def _chat(request: Request) -> Response:
    body = await request.json()
    project_id, model_id = request.app.state.target
    context = ChatContext(
        request_id=f"req-{uuid.uuid4().hex[:8]}",
        project_id=project_id,
        project_key="proj",
        model_id=model_id,
        model_key="m1",
        session_id=uuid.UUID(body["session_id"]) if body.get("session_id") else uuid7(),
        stream=bool(body.get("stream")),
        store=body.get("store", True),
        labels=body.get("labels") or {},
        messages=body["messages"],
        params=body.get("params") or {},
    )
    request.state.chat = context
    reply = str(body.get("reply", "hello there"))
    ids = [str(uuid7()) for _ in range(int(body.get("n", 1)))]
    base = {"id": "chatcmpl-double", "created": int(time.time()), "object": "chat.completion"}
    base["session_id"] = str(context.session_id)
    usage = {
        "prompt_tokens": 7,
        "completion_tokens": 3 * len(ids),
        "total_tokens": 7 + 3 * len(ids),
    }
    if not context.stream:
        choices = [
            {
                "index": i,
                "completion_id": cid,
                "model": "proj/m1",
                "finish_reason": "stop",
                "message": {"id": cid, "role": "assistant", "content": f"{reply} #{i}"},
            }
            for i, cid in enumerate(ids)
        ]
        return JSONResponse({**base, "usage": usage, "choices": choices})

    async def events() -> AsyncIterator[bytes]:
        pieces = _chunks(reply)
        for number, piece in enumerate(pieces):
            if body.get("fail_after") is not None and number == body["fail_after"]:
                error = {"message": "upstream went away", "type": "upstream_error"}
                yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
                yield b"data: [DONE]\n\n"
                return
            last = number == len(pieces) - 1
            choices = [
                {
                    "index": i,
                    "completion_id": cid,
                    "delta": {"id": cid, "role": "assistant", "content": piece},
                    **({"finish_reason": "stop"} if last else {}),
                }
                for i, cid in enumerate(ids)
            ]
            yield b"data: " + orjson.dumps({**base, "choices": choices}) + b"\n\n"
            if body.get("delay"):
                await asyncio.sleep(float(body["delay"]))
        if (body.get("stream_options") or {}).get("include_usage"):
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def build_chat_double(
    engine: Engine,
    journal_dir: Path,
    *,
    project_id: int,
    model_id: int | None,
    writer_interval: float = 0.02,
    fsync: Any = "batch",
) -> Starlette:
    """The double as an ASGI app, with journal and writer started by its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        journal = Journal(journal_dir, fsync=fsync)
        journal.open()
        writer = JournalWriter(journal, engine, interval=writer_interval)
        app.state.journal = journal
        app.state.writer = writer
        await writer.start()
        try:
            yield
        finally:
            await writer.stop()

    app = Starlette(
        routes=[Route("/api/v1/chat/completions", _chat, methods=["POST"])],
        middleware=[Middleware(CaptureMiddleware)],
        lifespan=lifespan,
    )
    app.state.telemetry = Telemetry()
    app.state.target = (project_id, model_id)
    return app


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
