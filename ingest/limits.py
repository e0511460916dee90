"""Request hardening, as pure ASGI middleware in front of every route: bad input gets a clear 4xx.

- Body size: `Content-Length` above INTERLOG_MAX_BODY_BYTES is refused at once (413), and a body
  sent without it (chunked) is counted while it streams in and refused as soon as it passes.
- A body must arrive within INTERLOG_BODY_TIMEOUT_SECONDS (408): slow clients cannot hold a slot.
- JSON bodies: valid UTF-8 (400), no NUL characters (`\\u0000`: PostgreSQL cannot store them in
  text or jsonb, so they are refused everywhere, on both databases alike), no lone UTF-16
  surrogates, nesting at most INTERLOG_MAX_JSON_DEPTH deep.
- Labels (`labels` / `metadata` of chat completions and logged interactions): at most
  INTERLOG_MAX_LABELS pairs (`labels` and `metadata` together, as they are stored), non-empty
  keys up to INTERLOG_MAX_LABEL_KEY_LENGTH characters, values up to
  INTERLOG_MAX_LABEL_VALUE_LENGTH characters (defaults 64 / 128 / 1000: above OpenAI's 16 / 64 /
  512) and LABEL_VALUE_MAX_BYTES bytes of UTF-8 whatever the setting: what PostgreSQL's label
  index holds beside the longest key (a larger row is refused by the index for good).
- Path and query: valid UTF-8 once percent-decoded, no NUL.

Checks run on bytes with C-speed scans (regular expressions, `bytes.translate`); only bodies of
the label-carrying routes are parsed, with orjson. Errors use the REST error shape, or the
GraphQL one (`{"errors": [...]}`) on /api/graphql.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.errors import GRAPHQL_PATH, error_body, graphql_error_body
from store.settings import Settings

#: Routes whose body carries `labels` / `metadata` at the top level, checked here.
#: /api/v1/interactions/bulk checks the labels of each item itself (ingest/logged_items.py),
#: so one item over a limit gets its own error and the others are kept.
LABEL_ROUTES = frozenset(
    {"/v1/chat/completions", "/api/v1/chat/completions", "/api/v1/interactions"}
)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_KEEP = bytes(range(256)).translate(None, b'[]{}"')
_BODY_METHODS = {"POST", "PUT", "PATCH"}
#: Longest label value in bytes of UTF-8. PostgreSQL's btree index on (project_id, key, value)
#: refuses an entry over ~2,700 bytes (a third of a page; measured: a 128-character key of
#: 4-byte characters beside 2,050 bytes of random text fits, 2,400 do not), and the refusal is
#: for good. The same limit holds on SQLite, so that both stores accept the same labels.
LABEL_VALUE_MAX_BYTES = 2000


class RequestRefused(Exception):
    """A request that breaks a limit: status, code and message for the client."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def _unescaped(body: bytes) -> bytes:
    """The JSON text without escaped backslashes: every backslash left starts a real escape."""
    return body.replace(b"\\\\", b"") if b"\\" in body else body


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings ignored).

    C and numpy speed only: drop escaped backslashes and quotes, keep quotes and brackets,
    mask what lies between quotes, then the running sum of +1 / -1 per bracket. numpy is
    imported here, not at start: only bodies with more brackets than the limit get here."""
    import numpy as np

    steps_of = np.zeros(256, dtype=np.int8)
    steps_of[[ord("["), ord("{")]] = 1
    steps_of[[ord("]"), ord("}")]] = -1
    text = _unescaped(body)
    if b"\\" in text:
        text = text.replace(b'\\"', b"")
    chars = np.frombuffer(text.translate(None, _KEEP), dtype=np.uint8)
    if chars.size == 0:
        return 0
    quotes = chars == ord('"')
    outside = (np.cumsum(quotes) % 2 == 0) & ~quotes  # an even number of quotes before it
    steps = steps_of[chars] * outside
    return max(0, int(np.cumsum(steps, dtype=np.int64).max()))


def check_json_text(body: bytes, *, max_depth: int) -> None:
    """UTF-8, no NUL, no lone surrogates, bounded depth; raise RequestRefused otherwise."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"body is not valid UTF-8 ({exc.reason})"
        raise RequestRefused(400, "invalid_utf8", message) from exc
    if b"\x00" in body or (b"\\u0000" in body and b"\\u0000" in _unescaped(body)):
        raise RequestRefused(400, "null_character", "strings may not contain NUL (\\u0000)")
    if (b"\\ud" in body or b"\\uD" in body) and _SURROGATE_ESCAPE.search(body):
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "surrogate" in str(exc):
                raise RequestRefused(400, "invalid_unicode", f"invalid JSON string: {exc}") from exc
    if body.count(b"[") + body.count(b"{") > max_depth and json_depth(body) > max_depth:
        raise RequestRefused(
            400, "json_too_deep", f"JSON nests deeper than {max_depth} levels (the limit)"
        )


def check_labels(labels: Any, *, where: str, settings: Settings) -> None:
    """Label count and key/value lengths within the documented limits."""
    if not isinstance(labels, dict):
        return
    if len(labels) > settings.max_labels:
        raise RequestRefused(
            400, "too_many_labels",
            f"{where}: {len(labels)} labels, at most {settings.max_labels} are accepted", where,
        )  # fmt: skip
    for key, value in labels.items():
        if not key.strip():
            raise RequestRefused(
                400, "empty_label_key", f"{where}: a label key may not be empty", where
            )
        if len(key) > settings.max_label_key_length:
            raise RequestRefused(
                400, "label_too_long",
                f"{where}: label key {key[:32]!r}... is longer than "
                f"{settings.max_label_key_length} characters", where,
            )  # fmt: skip
        if isinstance(value, str) and len(value) > settings.max_label_value_length:
            raise RequestRefused(
                400, "label_too_long",
                f"{where}: value of label {key[:64]!r} is longer than "
                f"{settings.max_label_value_length} characters", where,
            )  # fmt: skip
        if isinstance(value, str) and len(value.encode("utf-8")) > LABEL_VALUE_MAX_BYTES:
            raise RequestRefused(
                400, "label_too_long",
                f"{where}: value of label {key[:64]!r} is longer than "
                f"{LABEL_VALUE_MAX_BYTES} bytes of UTF-8", where,
            )  # fmt: skip


def _label_maps(body: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(body, dict):
        yield "labels", body.get("labels")
        yield "metadata", body.get("metadata")


def check_body(path: str, body: bytes, settings: Settings) -> None:
    """Every check of a JSON request body."""
    check_json_text(body, max_depth=settings.max_json_depth)
    if path not in LABEL_ROUTES or (b'"labels"' not in body and b'"metadata"' not in body):
        return
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # the route reports malformed JSON in its own words
    maps = dict(_label_maps(parsed))
    for where, labels in maps.items():
        check_labels(labels, where=where, settings=settings)
    labels, metadata = maps.get("labels"), maps.get("metadata")
    if isinstance(labels, dict) and isinstance(metadata, dict):  # stored as one map
        check_labels({**metadata, **labels}, where="labels", settings=settings)


def check_target(scope: Scope) -> None:
    """Path and query string: valid UTF-8 after percent-decoding, and no NUL."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    query = scope.get("query_string", b"")
    if not query and raw_path.isascii() and b"%" not in raw_path and b"\x00" not in raw_path:
        return  # the common case (every chat completion): nothing to decode
    for part, name in ((raw_path, "path"), (query, "query")):
        decoded = unquote_to_bytes(part)
        if b"\x00" in decoded:
            raise RequestRefused(400, "null_character", f"the {name} may not contain NUL", name)
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestRefused(
                400, "invalid_utf8", f"the {name} is not valid UTF-8", name
            ) from exc


class LimitsMiddleware:
    """Enforce the limits above before any route (and before the capture middleware) runs."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._deadlines = BodyDeadlines()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_target(scope)
            if scope["method"] not in _BODY_METHODS:
                await self.app(scope, receive, send)
                return
            body = await self._read_body(scope, receive)
            if body:  # whatever the Content-Type says: every route reads its body as JSON
                check_body(scope["path"], body, self.settings)
        except RequestRefused as refused:
            await _refuse(scope, send, refused)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestRefused(413, "request_too_large", f"body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        seconds = self.settings.body_timeout_seconds
        task = self._deadlines.start(seconds)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise RequestRefused(
                        413, "request_too_large", f"body is larger than {limit} bytes"
                    )
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if not self._deadlines.expired(task):
                raise
            raise RequestRefused(
                408, "request_timeout", f"the body did not arrive within {seconds:g} s"
            ) from None
        finally:
            self._deadlines.finish(task)
        return b"".join(chunks)


class BodyDeadlines:
    """Cancels body reads that run past their deadline, with one loop timer for all requests.

    `asyncio.timeout` per request arms and cancels a loop timer each time (~8 µs, a fifth of
    the limits step of a chat completion); here a request only enters and leaves a dict, and
    the timer runs when the earliest deadline passes (at most once per timeout period when no
    body is late)."""

    def __init__(self) -> None:
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def start(self, seconds: float) -> asyncio.Task[Any]:
        """The current task, cancelled if it has not called `finish` within `seconds`."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        deadline = loop.time() + seconds
        self._deadlines[task] = deadline
        if self._timer is None or self._timer_loop is not loop or deadline < self._timer_at:
            self._arm(loop, deadline)
        return task

    def finish(self, task: asyncio.Task[Any]) -> None:
        self._deadlines.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether `task` was cancelled for its deadline (that cancellation is then undone)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0  # also cancelled from elsewhere: that one stands

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire, loop)
        self._timer_at, self._timer_loop = when, loop

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for task, deadline in list(self._deadlines.items()):
            if task.get_loop() is not loop:  # left over from an event loop that has ended
                del self._deadlines[task]
            elif deadline <= now:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            self._arm(loop, min(self._deadlines.values()))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replayed


async def _refuse(scope: Scope, send: Send, refused: RequestRefused) -> None:
    error_type = "invalid_request_error"
    if scope["path"] == GRAPHQL_PATH:
        payload = graphql_error_body(refused.message, error_type, refused.code)
    else:
        payload = error_body(refused.message, error_type, refused.code, refused.param)
    content = orjson.dumps(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    if refused.status in (408, 413):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
