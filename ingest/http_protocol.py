"""uvicorn's httptools protocol, writing a whole (non-streamed) response in one system call.

uvicorn writes the status line and headers when the app sends `http.response.start`, then the
body on `http.response.body`: two `send` calls, two TCP segments, and on loopback the kernel
delivers each one to the client inside the call. For a response with a Content-Length (every
non-streamed completion), this protocol holds the header block back and writes it together with
the first body message. Streamed responses (no Content-Length) are written as uvicorn does, so
a client sees the headers of an SSE stream at once. `interlog serve` passes this class to
uvicorn as `http=`.

The head of a sized response and its last body message are serialised here, with the checks
and the connection state of uvicorn's `RequestResponseCycle.send`: passing each message through
uvicorn's own code with the transport swapped for a collector took ~15 µs of CPU per message on
the gateway's critical path. Anything unusual (framing or connection headers, HEAD, the access
log, a paused or closed connection) still goes through uvicorn's code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)


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
    rest): the same limit, one timer per connection and idle period."""

    _idle_since: float | None = None
    _idle_timer: asyncio.TimerHandle | None = None

    def on_headers_complete(self) -> None:
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
