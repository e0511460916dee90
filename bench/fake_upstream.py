"""A fast fake OpenAI upstream for the benchmarks: a raw ASGI app (no framework) under uvicorn.

`POST .../chat/completions` answers a fixed completion (with `usage`) at once, or, with
`"stream": true`, a short SSE stream: a role chunk, STREAM_WORDS content chunks, a finish chunk,
a usage chunk when `stream_options.include_usage` is true, then `[DONE]`. `GET .../models`
lists one model (the health check); `GET /stats` counts the completions asked for. Everything
else is 404. It does as little work as an upstream can, so the benchmark measures the proxy.

    python -m bench.fake_upstream --port 8100
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

STREAM_WORDS = 8
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_STATS = {"completions": 0}
_USAGE = {"prompt_tokens": 5, "completion_tokens": STREAM_WORDS, "total_tokens": 5 + STREAM_WORDS}


def _completion(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hello " * STREAM_WORDS},
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
        }
    )


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point (http only; lifespan events are acknowledged)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path: str = scope["path"]
    if scope["method"] == "GET" and path == "/stats":
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": orjson.dumps(_STATS)})
        return
    if scope["method"] == "GET" and path.endswith("/models"):
        models = {"object": "list", "data": [{"id": "demo", "object": "model"}]}
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": orjson.dumps(models)})
        return
    if scope["method"] != "POST" or not path.endswith("/chat/completions"):
        await send({"type": "http.response.start", "status": 404, "headers": _JSON})
        await send({"type": "http.response.body", "body": b'{"error": "not found"}'})
        return
    request = orjson.loads(await _read_body(receive) or b"{}")
    _STATS["completions"] += 1
    model = str(request.get("model") or "demo")
    if not request.get("stream"):
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": _completion(model)})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {"content": "hello "}) for _ in range(STREAM_WORDS)]
    chunks.append(_chunk(model, {}, "stop"))
    if (request.get("stream_options") or {}).get("include_usage"):
        usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": []}
        chunks.append(
            b"data: " + orjson.dumps({**usage, "model": model, "usage": _USAGE}) + b"\n\n"
        )
    chunks.append(b"data: [DONE]\n\n")
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        "bench.fake_upstream:app",
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
