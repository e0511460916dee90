"""uvicorn's httptools protocol, writing a whole (non-streamed) response in one system call.

uvicorn writes the status line and headers when the app sends `http.response.start`, then the
body on `http.response.body`: two `send` calls, two TCP segments, and on loopback the kernel
delivers each one to the client inside the call. For a response with a Content-Length (every
non-streamed completion), this protocol holds the header block back and writes it together with
the first body message. Streamed responses (no Content-Length) are written as uvicorn does, so
a client sees the headers of an SSE stream at once. `interlog serve` passes this class to
uvicorn as `http=`.

uvicorn has no limit on the time a client takes to send a request's line and headers: a
connection that sent "GET / HTTP/1.1\r\nHost: x\r\n" and then nothing was held for good (its
keep-alive timer is cancelled by any byte, and a new connection has none). Here a request's
headers must arrive within INTERLOG_HEADER_TIMEOUT_SECONDS of its first byte (408, then the
connection is closed), and a new connection that sends nothing in that time is closed.

The head of a sized response and its last body message are serialised here, with the checks
and the connection state of uvicorn's `RequestResponseCycle.send`: passing each message through
uvicorn's own code with the transport swapped for a collector took ~15 µs of CPU per message on
the gateway's critical path. Anything unusual (framing or connection headers, HEAD, the access
log, a paused or closed connection) still goes through uvicorn's code.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from ingest.errors import error_body
from store.settings import get_settings


@lru_cache(maxsize=1)
def header_timeout() -> float:
    """INTERLOG_HEADER_TIMEOUT_SECONDS of this process."""
    return get_settings().header_timeout_seconds


class _Collector:
    """Stands in for the transport while uvicorn serialises a message."""

    __slots__ = ("closed", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True


class CoalescingCycle(RequestResponseCycle):
    """A request/response cycle that sends the head of a sized response with its body."""

    _held: bytes | None = None

    async def _serialise(self, message: Any) -> _Collector:
        real, collector = self.transport, _Collector()
        self.transport = collector  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = real
        return collector

    def _sized_head(self, message: Any) -> bytes | None:
        """The head uvicorn would write for a sized response, with the state it would set; None
        when uvicorn's own code must handle the message (no Content-Length, framing or
        connection headers, a header it refuses, access log, HEAD)."""
        if self.access_log or self.scope["method"] == "HEAD":
            return None
        content = [STATUS_LINE[message["status"]]]
        for name, value in self.default_headers:
            content += (name, b": ", value, b"\r\n")
        length = None
        for name, value in message.get("headers", ()):
            if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                return None  # uvicorn raises its error
            name = name.lower()
            if name == b"content-length" and length is None:
                length = int(value.decode())
            elif name in (b"transfer-encoding", b"connection"):
                return None
            content += (name, b": ", value, b"\r\n")
        if length is None:
            return None
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        self.response_started = True
        self.waiting_for_100_continue = False
        self.chunked_encoding = False
        self.expected_content_length = length
        return b"".join(content)

    async def send(self, message: Any) -> None:
        if self._held is None:
            if (
                message["type"] != "http.response.start"
                or self.response_started
                or self.disconnected
                or self.flow.write_paused
            ):
                await super().send(message)
                return
            self._held = self._sized_head(message)
            if self._held is None:
                await super().send(message)
            return
        held, self._held = self._held, None
        if (
            message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and not self.disconnected
            and not self.flow.write_paused
        ):
            self._send_last(held, message.get("body", b""))
            return
        collector = await self._serialise(message)
        if not self.disconnected:
            self.transport.write(held + b"".join(collector.parts))
        if collector.closed:
            self.transport.close()

    def _send_last(self, head: bytes, body: bytes) -> None:
        """A whole sized body after its held head: one write, then what uvicorn does at the end
        of a response."""
        if len(body) != self.expected_content_length:
            longer = len(body) > self.expected_content_length
            raise RuntimeError(
                f"Response content {'longer' if longer else 'shorter'} than Content-Length"
            )
        self.expected_content_length = 0
        if not self.disconnected:
            self.transport.write(head + body)
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with CoalescingCycle for every request, and one keep-alive
    timer per connection.

    uvicorn arms a keep-alive timer (`loop.call_later`) after every response and cancels it when
    the next request arrives: a timer made and dropped per request. Here the timer is armed
    when a connection first goes idle and, when it fires, closes the connection only if it has
    been idle for `timeout_keep_alive` since its last response (else it is armed again for the
    rest): the same limit, one timer per connection and idle period.

    The header timeout works the same way: a deadline set when the connection opens and when a
    request's first byte arrives (httptools' on_message_begin), cleared when its headers are
    complete, and one timer per connection that, when it fires, acts only if the deadline has
    passed (else it is armed again for the rest)."""

    _idle_since: float | None = None
    _idle_timer: asyncio.TimerHandle | None = None
    _header_deadline: float | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _in_headers = False  # a request has begun and its headers are not complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._await_headers()

    def _await_headers(self) -> None:
        timeout = header_timeout()
        self._header_deadline = self.loop.time() + timeout
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(timeout, self._header_check)

    def _header_check(self) -> None:
        self._header_timer = None
        if self._header_deadline is None:
            return  # headers complete: armed again when the next request begins
        remaining = self._header_deadline - self.loop.time()
        if remaining > 0:
            self._header_timer = self.loop.call_later(remaining, self._header_check)
            return
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self._in_headers and (self.cycle is None or self.cycle.response_complete):
            self._send_408()  # not while an earlier (pipelined) response is being written
        self.transport.close()

    def _send_408(self) -> None:
        body = orjson.dumps(
            error_body(
                f"the request headers did not arrive within {header_timeout():g} s",
                "invalid_request_error",
                "request_timeout",
            )
        )
        content = [STATUS_LINE[408]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        content += (
            b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        )
        self.transport.write(b"".join(content))

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_deadline = None
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = CoalescingCycle

    def on_response_complete(self) -> None:
        # uvicorn's on_response_complete, with the keep-alive timer below.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_check)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when data arrives: the connection is busy, not idle.
        self._idle_since = None
        super()._unset_keepalive_if_required()

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._idle_since is None:
            return  # busy: armed again when it next goes idle
        remaining = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self._idle_timer = self.loop.call_later(remaining, self._idle_check)
            return
        self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
