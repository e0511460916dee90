"""`interlog demo-model`: a tiny deterministic OpenAI-compatible server (not a language model).

It answers `POST /v1/chat/completions` (and `/chat/completions`) with text derived from the last
user message, so a new user sees traffic at once and tests have a predictable upstream:

* The answer is `echo: <words of the last user message>`; when the request carries images it
  starts with `saw N images. `. A "token" is a whitespace-separated word.
* `max_tokens` cuts the answer to that many words (finish_reason `length`); `stop` cuts it before
  the first stop string (finish_reason `stop`); `n` gives n identical choices; usage counts words
  (prompt = words of every text part of every message).
* Streaming sends one chunk per word (role first, then content), a final chunk with
  finish_reason, a usage chunk when `stream_options.include_usage` is true, then `[DONE]`.
* Controls, as magic phrases in the last user message or as request headers:
  `[delay=S]` / `X-Demo-Delay: S` wait S seconds before answering;
  `[chunk-delay=S]` / `X-Demo-Chunk-Delay: S` wait S seconds between stream chunks;
  `[fail=CODE]` / `X-Demo-Fail: CODE` answer HTTP CODE with an OpenAI error body;
  `[fail-midstream]` breaks a stream with an error event after two words;
  `[echo-request]` answers with the JSON of the request body it received;
  `[whoami]` answers `I am NAME` (the `--name` of this server).
* `GET /demo/stats` counts requests, streams still open, and streams whose client went away.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
from aiohttp import web

_PHRASE = re.compile(r"\[(delay|chunk-delay|fail)=([0-9.]+)\]")
_FLAGS = ("[fail-midstream]", "[echo-request]", "[whoami]")


def _text_of(content: Any) -> tuple[str, int]:
    """The text of a message's content and the number of images in it."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts, images = [], 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            images += 1
    return " ".join(texts), images


def _controls(text: str, headers: Any) -> dict[str, Any]:
    controls: dict[str, Any] = {flag: flag in text for flag in _FLAGS}
    for name, value in _PHRASE.findall(text):
        controls[name] = float(value)
    for name in ("delay", "chunk-delay", "fail"):
        header = headers.get(f"X-Demo-{name.title()}")
        if header:
            controls[name] = float(header)
    return controls


def compose_answer(body: dict[str, Any], name: str, controls: dict[str, Any]) -> tuple[str, int]:
    """The full answer text (before max_tokens/stop) and the prompt's word count."""
    messages = body.get("messages") or []
    prompt_words, images, last_user = 0, 0, ""
    for message in messages:
        text, count = _text_of(message.get("content"))
        prompt_words += len(text.split())
        images += count
        if message.get("role") == "user":
            last_user = text
    if controls["[echo-request]"]:
        return orjson.dumps(body).decode(), prompt_words
    if controls["[whoami]"]:
        return f"I am {name}", prompt_words
    words = _PHRASE.sub("", last_user)
    for flag in _FLAGS:
        words = words.replace(flag, "")
    answer = "echo: " + " ".join(words.split())
    if images:
        answer = f"saw {images} image{'s' if images != 1 else ''}. {answer}"
    return answer, prompt_words


def limit_answer(answer: str, body: dict[str, Any]) -> tuple[list[str], str]:
    """Apply `stop` and `max_tokens`: the words to send and the finish reason."""
    finish = "stop"
    stop = body.get("stop")
    for marker in [stop] if isinstance(stop, str) else stop or []:
        if marker and marker in answer:
            answer = answer[: answer.index(marker)]
    words = answer.split(" ") if answer else []
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(max_tokens, int) and len(words) > max_tokens:
        words, finish = words[:max_tokens], "length"
    return words, finish


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "demo_error", "param": None, "code": status}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _chunk(base: dict[str, Any], choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"


class DemoModel:
    """The request handlers; `name` identifies the server (e.g. one replica among several)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counter = 0
        self.open_streams = 0
        self.abandoned_streams = 0

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "`messages` must be a list")
        last_text = ""
        for message in body["messages"]:
            if isinstance(message, dict) and message.get("role") == "user":
                last_text = _text_of(message.get("content"))[0]
        controls = _controls(last_text, request.headers)
        if controls.get("delay"):
            await asyncio.sleep(controls["delay"])
        if controls.get("fail"):
            status = int(controls["fail"])
            return _error(status, f"demo model told to fail with {status}")
        answer, prompt_tokens = compose_answer(body, self.name, controls)
        words, finish = limit_answer(answer, body)
        self.counter += 1
        base = {
            "id": f"demo-{self.counter}",
            "created": int(time.time()),
            "model": body.get("model") or self.name,
        }
        choices = max(1, int(body.get("n") or 1))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words) * choices,
            "total_tokens": prompt_tokens + len(words) * choices,
        }
        if body.get("stream"):
            return await self._stream(request, body, base, words, finish, choices, usage, controls)
        message = {"role": "assistant", "content": " ".join(words)}
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [
                {"index": i, "message": message, "finish_reason": finish} for i in range(choices)
            ],
            "usage": usage,
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        base: dict[str, Any],
        words: list[str],
        finish: str,
        choices: int,
        usage: dict[str, int],
        controls: dict[str, Any],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.open_streams += 1
        try:
            await self._send_chunks(response, body, base, words, finish, choices, usage, controls)
        except (ConnectionResetError, asyncio.CancelledError):
            self.abandoned_streams += 1
            raise
        finally:
            self.open_streams -= 1
        return response

    async def _send_chunks(
        self,
        response: web.StreamResponse,
        body: dict[str, Any],
        base: dict[str, Any],
        words: list[str],
        finish: str,
        choices: int,
        usage: dict[str, int],
        controls: dict[str, Any],
    ) -> None:
        base = {**base, "object": "chat.completion.chunk"}
        pause = controls.get("chunk-delay") or 0.0
        deltas: list[dict[str, str]] = [{"role": "assistant", "content": ""}] + [
            {"content": word if i == 0 else " " + word} for i, word in enumerate(words)
        ]
        for position, delta in enumerate(deltas):
            if controls["[fail-midstream]"] and position == 3:
                error = {"message": "demo model failed mid-stream", "type": "demo_error"}
                await response.write(b"data: " + orjson.dumps({"error": error}) + b"\n\n")
                return
            items: list[dict[str, Any]] = [
                {"index": i, "delta": delta, "finish_reason": None} for i in range(choices)
            ]
            await response.write(_chunk(base, items))
            if pause:
                await asyncio.sleep(pause)
        items = [{"index": i, "delta": {}, "finish_reason": finish} for i in range(choices)]
        await response.write(_chunk(base, items))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_chunk(base, [], usage=usage))
        await response.write(b"data: [DONE]\n\n")

    async def stats(self, _request: web.Request) -> web.Response:
        data = {
            "requests": self.counter,
            "open_streams": self.open_streams,
            "abandoned_streams": self.abandoned_streams,
        }
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def models(self, _request: web.Request) -> web.Response:
        data = {"object": "list", "data": [{"id": self.name, "object": "model"}]}
        return web.Response(body=orjson.dumps(data), content_type="application/json")


def create_demo_app(name: str = "demo") -> web.Application:
    """The demo model's aiohttp application."""
    demo = DemoModel(name)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/demo/stats", demo.stats)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", demo.chat)
        app.router.add_get(f"{prefix}/models", demo.models)
    return app


def run_demo_model(*, host: str, port: int, name: str) -> None:
    """Serve the demo model until interrupted."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    print(f"demo model {name!r} on http://{host}:{port}/v1", flush=True)
    web.run_app(create_demo_app(name), host=host, port=port, print=None, access_log=None)
