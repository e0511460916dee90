"""Capture: a pure-ASGI middleware that tees chat responses into interaction records.

Modelled on starlette's GZipMiddleware: it wraps `send`, forwards every message as it comes
(never buffering a stream), and parses a copy on the side: SSE events for streamed answers, the
JSON body otherwise. When the gateway has put a ChatContext at `scope["state"]["chat"]`, the
finished response becomes one InteractionRecord per choice, appended to the journal BEFORE the
final body message is forwarded: a client that received a whole response can rely on its
interaction being durable. Upstream errors and client disconnects are recorded too, with what
was produced so far. With `store: false` nothing is journaled; only a counter moves.

Timings: `latency_ms` runs from the request's arrival to the last body message; `ttft_ms` to the
first body chunk carrying completion text (for JSON answers: the first body chunk). Tokens come
from the response's `usage`; without it they are estimated as ceil(characters / 4)
(TOKEN_ESTIMATE_CHARS), and with several choices the completion tokens are shared out by length.
The middleware never raises into the request: its own failures are logged and counted.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.context import CHAT_CONTEXT_KEY, ChatContext
from ingest.journal import Journal
from ingest.telemetry import Telemetry
from ingest.upstream_answer import MAX_TOKENS
from store.ids import uuid7_str
from store.interactions import InteractionRecord

log = logging.getLogger("interlog.capture")

CHAT_PATHS = frozenset({"/api/v1/chat/completions", "/v1/chat/completions"})
TOKEN_ESTIMATE_CHARS = 4
#: Largest JSON (non-streamed) body kept aside for parsing; bigger ones are logged unparsed.
MAX_JSON_BODY = 64 * 1024 * 1024


@dataclass
class _Choice:
    index: int
    completion_id: str | None = None
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # a whole answer's
    streamed_calls: dict[int, _StreamedCall] | None = None  # a stream's, by delta index

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add_call_deltas(self, deltas: Any) -> None:
        """A stream's `delta.tool_calls`: each delta carries its call's `index`, the first one
        its `id`, `type` and `function.name`, and every one a piece of `function.arguments`."""
        if self.streamed_calls is None:
            self.streamed_calls = {}
        calls = self.streamed_calls
        for delta in deltas if isinstance(deltas, list) else ():
            if not isinstance(delta, dict):
                continue
            index = delta.get("index")
            if type(index) is not int:
                index = len(calls)
            call = calls.get(index)
            if call is None:
                call = calls[index] = _StreamedCall()
            call.add(delta)

    def calls(self) -> list[dict[str, Any]] | None:
        """The answer's tool calls as OpenAI's `message.tool_calls`, or None."""
        calls = self.streamed_calls
        if calls:
            return [calls[i].whole() for i in sorted(calls)]
        return self.tool_calls or None


@dataclass
class _StreamedCall:
    """One tool call assembled from a stream's deltas."""

    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)

    def add(self, delta: dict[str, Any]) -> None:
        if isinstance(delta.get("id"), str):
            self.id = delta["id"]
        if isinstance(delta.get("type"), str):
            self.type = delta["type"]
        function = delta.get("function")
        if isinstance(function, dict):
            name, arguments = function.get("name"), function.get("arguments")
            if isinstance(name, str) and name:
                self.name = name if self.name is None else self.name + name
            if isinstance(arguments, str):
                self.arguments.append(arguments)

    def whole(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type or "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


def estimate_tokens(text: str) -> int:
    """A rough token count for answers without `usage`: one token per 4 characters."""
    return math.ceil(len(text) / TOKEN_ESTIMATE_CHARS) if text else 0


def _message_text(messages: list[dict[str, Any]]) -> str:
    texts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "".join(texts)


class ResponseTee:
    """Reads one chat response on the side and turns it into interaction records."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.status_code = 200
        self.streamed = False
        self.first_chunk_at: float | None = None
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self.choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        self._tail = b""
        self._body = bytearray()
        self._body_overflow = False

    def on_start(self, message: Message) -> None:
        self.status_code = int(message.get("status", 200))
        for name, value in message.get("headers", ()):
            if name.lower() == b"content-type":
                self.streamed = b"text/event-stream" in value.lower()

    def on_body(self, body: bytes) -> None:
        now = time.perf_counter()
        if body and self.first_chunk_at is None:
            self.first_chunk_at = now
        if self.streamed:
            self._feed_sse(body, now)
        elif not self._body_overflow:
            if len(self._body) + len(body) > MAX_JSON_BODY:
                self._body_overflow = True
                self._body.clear()
            else:
                self._body.extend(body)

    def finish(self, answer: dict[str, Any] | None = None) -> None:
        """The response is complete; `answer` is the JSON body as the gateway built it (then
        the copy of the body need not be parsed again)."""
        self.finished_at = time.perf_counter()
        if self.streamed:
            if self._tail.strip():
                self._feed_sse(b"\n\n", self.finished_at)
        elif answer is not None and self.status_code == 200:
            self._apply_document(answer)
            self._body.clear()
        elif self._body:
            self._parse_json(bytes(self._body))
            self._body.clear()

    # -- parsing -----------------------------------------------------------------------------

    def _feed_sse(self, body: bytes, now: float) -> None:
        data = self._tail + body
        lines = data.split(b"\n")
        self._tail = lines.pop()  # incomplete line (or b"")
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if not payload or payload == b"[DONE]":
                continue
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self._apply_chunk(event, now)

    def _apply_chunk(self, event: dict[str, Any], now: float) -> None:
        if "error" in event:
            self.error = _error_text(event["error"])
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        for raw in event.get("choices") or ():
            if not isinstance(raw, dict):
                continue
            choice = self._choice(raw)
            delta = raw.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                choice.parts.append(content)
                if self.first_token_at is None:
                    self.first_token_at = now
            if isinstance(delta, dict) and delta.get("tool_calls"):
                choice.add_call_deltas(delta["tool_calls"])
                if self.first_token_at is None:
                    self.first_token_at = now
            if raw.get("finish_reason"):
                choice.finish_reason = str(raw["finish_reason"])

    def _parse_json(self, body: bytes) -> None:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            if self.status_code >= 400:
                self.error = body[:500].decode("utf-8", "replace")
            return
        if isinstance(document, dict):
            self._apply_document(document)

    def _apply_document(self, document: dict[str, Any]) -> None:
        if "error" in document:
            self.error = _error_text(document["error"])
        if isinstance(document.get("usage"), dict):
            self.usage = document["usage"]
        for raw in document.get("choices") or ():
            if not isinstance(raw, dict):
                continue
            choice = self._choice(raw)
            message = raw.get("message") or {}
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                choice.parts.append(content)
            calls = message.get("tool_calls") if isinstance(message, dict) else None
            if isinstance(calls, list):
                choice.tool_calls = [call for call in calls if isinstance(call, dict)]
            if raw.get("finish_reason"):
                choice.finish_reason = str(raw["finish_reason"])

    def _choice(self, raw: dict[str, Any]) -> _Choice:
        index = int(raw.get("index") or 0)
        choice = self.choices.get(index)
        if choice is None:
            choice = self.choices[index] = _Choice(index=index)
        if raw.get("completion_id") and choice.completion_id is None:
            choice.completion_id = str(raw["completion_id"])
        return choice

    # -- records -----------------------------------------------------------------------------

    @property
    def ttft_ms(self) -> float | None:
        first = self.first_token_at if self.streamed else self.first_chunk_at
        if first is None:
            first = self.first_chunk_at
        return None if first is None else (first - self.started) * 1000

    @property
    def latency_ms(self) -> float:
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return (end - self.started) * 1000

    def outcome(self, *, cancelled: str | None) -> tuple[str, str | None]:
        """(status, error): cancelled beats error beats ok."""
        if cancelled is not None:
            return "cancelled", cancelled
        if self.error is not None or self.status_code >= 400:
            return "error", self.error or f"HTTP {self.status_code}"
        return "ok", None

    def records(
        self, context: ChatContext, *, cancelled: str | None = None
    ) -> list[InteractionRecord]:
        status, error = self.outcome(cancelled=cancelled)
        choices = [self.choices[index] for index in sorted(self.choices)] or [_Choice(index=0)]
        prompt_tokens, completion_tokens = self._tokens(context, choices)
        base = context.record_base()
        ttft_ms, latency_ms = self.ttft_ms, self.latency_ms
        records: list[InteractionRecord] = []
        for position, choice in enumerate(choices):
            record: InteractionRecord = {
                "completion_id": choice.completion_id or uuid7_str(),
                **base,  # type: ignore[typeddict-item]
                "choice_index": choice.index,
                "replica": context.replica,
                "completion": choice.text,
                "tool_calls": choice.calls(),
                "finish_reason": _fits(choice.finish_reason, FINISH_REASON_CHARS),
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens[position],
                "ttft_ms": ttft_ms,
                "latency_ms": latency_ms,
                "status": status,
                "error": error,
            }
            if position:
                record["labels"] = dict(base["labels"])  # each record its own labels
            elif context.attachments:
                record["attachments"] = list(context.attachments)
            records.append(record)
        return records

    def _tokens(self, context: ChatContext, choices: list[_Choice]) -> tuple[int, list[int]]:
        usage = self.usage or {}
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if not _token_count(prompt):
            prompt = estimate_tokens(_message_text(context.messages))
        texts = [choice.text for choice in choices]
        if not _token_count(completion):
            return prompt, [estimate_tokens(text) for text in texts]
        if len(choices) == 1:
            return prompt, [completion]
        total_chars = sum(len(text) for text in texts) or 1
        return prompt, [round(completion * len(text) / total_chars) for text in texts]


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


class CaptureMiddleware:
    """Tee chat completion responses into the journal; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in CHAT_PATHS
        ):
            await self.app(scope, receive, send)
            return
        tee = ResponseTee(time.perf_counter())
        finished = False
        state = scope["app"].state if "app" in scope else None

        async def send_teed(message: Message) -> None:
            nonlocal finished
            kind = message["type"]
            if kind == "http.response.start":
                _safely(tee.on_start, message)
            elif kind == "http.response.body":
                _safely(tee.on_body, message.get("body", b""))
                if not message.get("more_body", False) and not finished:
                    finished = True
                    context = (scope.get("state") or {}).get(CHAT_CONTEXT_KEY)
                    _safely(tee.finish, getattr(context, "answer", None))
                    await _record(scope, state, tee, cancelled=None, wait=True, observe=False)
                    try:
                        await send(message)
                    finally:
                        _observe(state, context, tee, cancelled=None)  # after the last byte
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_teed)
        except BaseException as exc:
            if not finished:
                finished = True
                reason = "client disconnected" if _is_disconnect(exc) else f"{exc!r}"
                _safely(tee.finish)
                await _record(scope, state, tee, cancelled=reason, wait=False)
            raise
        if not finished:
            # The app returned without a final body message: the client went away.
            _safely(tee.finish)
            await _record(scope, state, tee, cancelled="client disconnected", wait=False)


def _is_disconnect(exc: BaseException) -> bool:
    name = type(exc).__name__
    return isinstance(exc, OSError) or name in ("ClientDisconnect", "CancelledError")


def _safely(function: Any, *args: Any) -> None:
    try:
        function(*args)
    except Exception:
        log.exception("capture: cannot parse a chat response")


def _observe(state: Any, context: Any, tee: ResponseTee, *, cancelled: str | None) -> None:
    """Count a finished chat completion in the service telemetry (never raises)."""
    telemetry: Telemetry | None = getattr(state, "telemetry", None)
    if telemetry is None or not isinstance(context, ChatContext):
        return
    try:
        status, _ = tee.outcome(cancelled=cancelled)
        telemetry.observe_chat(status, tee.latency_ms / 1000, tee.ttft_ms)
        if not context.store:
            telemetry.not_stored += 1
    except Exception:
        log.exception("capture: cannot count a chat completion")


async def _record(
    scope: Scope,
    state: Any,
    tee: ResponseTee,
    *,
    cancelled: str | None,
    wait: bool,
    observe: bool = True,
) -> None:
    """Journal the interaction (unless store=false); never raises into the request.

    With `observe` it is also counted in the telemetry; the final body message of a
    response counts it after that message is sent instead (off the latency path)."""
    telemetry: Telemetry | None = getattr(state, "telemetry", None)
    try:
        context = (scope.get("state") or {}).get(CHAT_CONTEXT_KEY)
        if not isinstance(context, ChatContext):
            return  # refused before routing (auth, validation): not an interaction
        if observe:
            _observe(state, context, tee, cancelled=cancelled)
        if not context.store:
            return
        journal: Journal | None = getattr(state, "journal", None)
        if journal is None:
            raise RuntimeError("no journal on app.state: interaction not logged")
        records = tee.records(context, cancelled=cancelled)
        if wait:
            await journal.append(records)
        else:
            journal.append_nowait(records)
        writer = getattr(state, "writer", None)
        if writer is not None and journal.depth >= writer.batch_size:
            writer.wake()
    except Exception:
        if telemetry is not None:
            telemetry.capture_errors += 1
        log.exception("capture: cannot journal a chat interaction")


#: The store's finish_reason column (store.models.Interaction).
FINISH_REASON_CHARS = 64


def _fits(text: str | None, limit: int) -> str | None:
    """TEXT cut to LIMIT characters, the cut marked with "…": an upstream's string longer than
    its column is kept that way, never a row the store refuses after the answer was delivered."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _token_count(value: Any) -> TypeGuard[int]:
    """Whether an upstream's token count can be stored as it is (else it is estimated)."""
    return type(value) is int and 0 <= value <= MAX_TOKENS
