"""uvicorn's httptools protocol, writing a whole (non-streamed) response in one system call.

uvicorn writes the status line and headers when the app sends `http.response.start`, then the
body on `http.response.body`: two `send` calls, two TCP segments, and on loopback the kernel
delivers each one to the client inside the call. For a response with a Content-Length (every
non-streamed completion), this protocol holds the header block back and writes it together with
the first body message. Streamed responses (no Content-Length) are written as uvicorn does, so
a client sees the headers of an SSE stream at once. `interlog serve` passes this class to
uvicorn as `http=`.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


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


def _has_content_length(message: Any) -> bool:
    return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))


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

    async def send(self, message: Any) -> None:
        if self._held is None:
            if (
                message["type"] != "http.response.start"
                or self.response_started
                or self.disconnected
                or self.flow.write_paused
                or not _has_content_length(message)
            ):
                await super().send(message)
                return
            self._held = b"".join((await self._serialise(message)).parts)
            return
        held, self._held = self._held, None
        collector = await self._serialise(message)
        if not self.disconnected:
            self.transport.write(held + b"".join(collector.parts))
        if collector.closed:
            self.transport.close()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with CoalescingCycle for every request."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = CoalescingCycle
