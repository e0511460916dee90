"""A small HTTP/1.1 client for upstream model servers: keep-alive pool, streaming, timeouts.

The gateway sends one kind of request upstream (a JSON POST) and reads one response at a time
per connection, so it needs little of a general client. aiohttp's session did the job but took
about a third of the gateway's CPU per completion (cookies, tracing hooks, header multidicts,
several timers per request); this client is an asyncio Protocol around httptools' response
parser (the one uvicorn uses for requests) and a per-origin pool of idle connections.

- `HttpPool.post(url, body, headers, timeout, connect_timeout)` returns an `UpstreamResponse`
  once the status line and headers have arrived. Its body is read with `read()`,
  `read_limited(n)` or `iter_any()` (pieces as they arrive, with flow control), then
  `release()` returns the connection to the pool (or closes it if the body was not read to the
  end); `close()` drops the connection, which cancels the upstream's work.
- `HttpPool.request(...)` is `post` in two steps: on an idle pooled connection the request is
  written before it returns, and `await pending.response()` waits for the head, so the gateway
  does its own bookkeeping while the upstream computes.
- `ConnectError`: nothing was sent (refused, unreachable, connect timeout): another replica
  may take the request. `UpstreamIOError`: the exchange failed after sending. `TimeoutError`:
  the whole exchange took longer than `timeout`.
- A pooled connection the server closed while idle is detected when the request fails before
  any response byte; the request is then sent once more on a new connection.
- https upstreams use the system's certificate store.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

#: Idle connections older than this are closed instead of reused (servers close theirs too).
IDLE_SECONDS = 15.0
#: Body bytes buffered from a stream the client is slow to take before reading pauses.
STREAM_HIGH_WATER = 256 * 1024


class ConnectError(OSError):
    """The upstream could not be reached; no byte of the request was sent."""


class UpstreamIOError(OSError):
    """The exchange with the upstream failed after the request was sent."""


class _Origin:
    """Where a URL's requests go: one pool of connections per (scheme, host, port)."""

    __slots__ = ("host", "key", "port", "ssl")

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if scheme == "https" else None
        )
        self.key = (scheme, host, port)


class _Target:
    """A parsed request URL and the request head's fixed part."""

    __slots__ = ("head", "origin")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.origin = _Origin(parts.scheme, parts.hostname, port)
        default = (parts.scheme, port) in (("http", 80), ("https", 443))
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        host_header = host if default else f"{host}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: interlog\r\n"


class UpstreamResponse:
    """Status and headers of an upstream response; the body is read with the methods below."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    # -- fed by the connection ---------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > STREAM_HIGH_WATER:
            self._connection.pause_reading()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if self._complete or self._error is not None:
            return
        if error is None:
            self._complete = True
        else:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the gateway -----------------------------------------------------------------

    async def _next(self) -> bytes | None:
        """The next body piece, or None at the end of the body."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return None
            self._waiter = self._connection._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered <= STREAM_HIGH_WATER // 4:
            self._connection.resume_reading()
        return data

    async def iter_any(self) -> AsyncIterator[bytes]:
        while (data := await self._next()) is not None:
            yield data

    async def read(self) -> bytes:
        if self._complete and self._error is None:
            # The whole body is here (a JSON answer usually arrives with its head): no waiting.
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._buffered = 0
            self._connection.resume_reading()
            return data
        return b"".join([piece async for piece in self.iter_any()])

    async def read_limited(self, limit: int) -> bytes:
        """At most `limit` bytes of the body (for error messages)."""
        pieces: list[bytes] = []
        size = 0
        while size < limit and (data := await self._next()) is not None:
            pieces.append(data)
            size += len(data)
        return b"".join(pieces)[:limit]

    def release(self) -> None:
        """Done with the response: the connection goes back to the pool if the body was read."""
        if self._released:
            return
        self._released = True
        if self._complete and self._error is None and not self._chunks:
            self._connection.finished()
        else:
            self._connection.close()

    def close(self) -> None:
        """Drop the connection now (the upstream sees the client go away)."""
        self._released = True
        self._connection.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an origin, one exchange at a time."""

    def __init__(self, pool: HttpPool, origin: _Origin) -> None:
        self._pool = pool
        self.origin = origin
        self._loop = asyncio.get_running_loop()  # once: each lookup is a getpid() on 3.11
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        self._headers_ready: asyncio.Future[None] | None = None
        self._received = False
        self._sized = False
        self._keep_alive = True
        #: The exchange's deadline (loop time) and its timeout in seconds; None when idle.
        self._deadline: float | None = None
        self._timeout = 0.0
        #: One timer per connection, re-armed lazily (see `_check_deadline`).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.idle_since = 0.0
        self.closed = False
        self._paused = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamIOError(f"the upstream sent invalid HTTP: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        response = self.response
        if response is not None and response.status and not self._sized and exc is None:
            response._finish()  # a body delimited by the end of the connection
            return
        self._fail(
            UpstreamIOError(f"the upstream closed the connection{f': {exc}' if exc else ''}")
        )

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        key = name.decode("latin-1").lower()
        if key in ("content-length", "transfer-encoding"):
            self._sized = True
        self.response.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        if self.response.status in (204, 304):
            self._sized = True
        if self._headers_ready is not None and not self._headers_ready.done():
            self._headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        self._deadline = None
        if self.response is not None:
            self.response._finish()

    # -- the exchange ------------------------------------------------------------------------

    def send(self, request: bytes, timeout: float | None) -> None:
        """Write a request now; `head()` waits for the response head."""
        assert self.transport is not None
        self.response = UpstreamResponse(self)
        self._headers_ready = self._loop.create_future()
        self._received = False
        self._sized = False
        if timeout is not None:
            self._set_deadline(timeout)
        self.transport.write(request)

    async def head(self) -> UpstreamResponse:
        """The response of the request sent, once its status line and headers arrived."""
        assert self._headers_ready is not None and self.response is not None
        try:
            await self._headers_ready
        except BaseException:
            self.close()
            raise
        return self.response

    async def exchange(self, request: bytes, timeout: float | None) -> UpstreamResponse:
        """Send a request; return once the response head arrived."""
        self.send(request, timeout)
        return await self.head()

    def _set_deadline(self, timeout: float) -> None:
        """Time the exchange out after `timeout` seconds.

        A timer per exchange (`call_later`, then `cancel` when the body is in) was measurable
        per completion; the connection's one timer is kept instead: it is armed again only
        when it would fire after the new deadline, and when it fires early (a deadline that has
        since moved on) it re-arms itself for what is left."""
        deadline = self._loop.time() + timeout
        self._deadline, self._timeout = deadline, timeout
        if self._timer is None or self._timer_at > deadline:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._check_deadline)
        self._timer_at = when

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None or self.closed:
            return  # no exchange running: armed again by the next one
        if self._loop.time() < self._deadline:
            self._arm(self._deadline)
            return
        self._deadline = None
        self._fail(TimeoutError(f"the upstream did not answer within {self._timeout:g} s"))
        self.close()

    def _fail(self, error: BaseException) -> None:
        if self._headers_ready is not None and not self._headers_ready.done():
            self._headers_ready.set_exception(error)
        if self.response is not None:
            self.response._finish(error)

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def received_anything(self) -> bool:
        return self._received

    def finished(self) -> None:
        """The response was read to its end: keep the connection for the next request."""
        self._deadline = None
        self.response = None
        self._headers_ready = None
        if self._keep_alive and not self.closed and not self._paused:
            self.idle_since = time.monotonic()
            self._pool.put_back(self)
        else:
            self.close()

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def abandon(self) -> None:
        """Close with a request in flight whose head nobody will await."""
        if self._headers_ready is not None:
            self._headers_ready.cancel()
        self.close()

    def close(self) -> None:
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class HttpPool:
    """Keep-alive connections to upstream origins, shared by every request of the process."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._closed = False

    def put_back(self, connection: _Connection) -> None:
        if self._closed:
            connection.close()
            return
        self._idle.setdefault(connection.origin.key, []).append(connection)

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin.key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: _Origin, connect_timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl else None,
                )
        except TimeoutError as exc:
            raise ConnectError(f"connect to {origin.host}:{origin.port} timed out") from exc
        except OSError as exc:
            raise ConnectError(f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
        return protocol

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 1024:
                self._targets.clear()
            target = self._targets[url] = _Target(url)
        return target

    def request(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        timeout: float | None,
        connect_timeout: float | None,
    ) -> PendingPost:
        """Start a POST: on an idle pooled connection it is written at once (before this
        returns), so the caller can do other work while the upstream computes; awaiting the
        PendingPost connects first if no connection was idle, and gives the response head."""
        if self._closed:
            raise RuntimeError("the upstream pool is closed")
        target = self._target(url)
        lines = [target.head]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        request = "".join(lines).encode("latin-1") + body
        pending = PendingPost(self, target.origin, request, timeout, connect_timeout)
        connection = self._idle_connection(target.origin)
        if connection is not None:
            connection.send(request, timeout)
            pending.sent_on = connection
        return pending

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        timeout: float | None,
        connect_timeout: float | None,
    ) -> UpstreamResponse:
        """POST `body` to `url`; the response once its head arrived (module docstring)."""
        pending = self.request(url, body, headers, timeout=timeout, connect_timeout=connect_timeout)
        return await pending.response()

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def idle_count(self) -> int:
        return sum(len(idle) for idle in self._idle.values())


class PendingPost:
    """A POST started by `HttpPool.request`; `response()` gives its response head."""

    def __init__(
        self,
        pool: HttpPool,
        origin: _Origin,
        request: bytes,
        timeout: float | None,
        connect_timeout: float | None,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._request = request
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._started = time.monotonic()
        #: The pooled connection the request was written on, if one was idle.
        self.sent_on: _Connection | None = None

    async def response(self) -> UpstreamResponse:
        connection = self.sent_on
        if connection is not None:
            try:
                return await connection.head()
            except UpstreamIOError:
                if connection.received_anything:
                    raise
                # The server closed the idle connection as we reused it: send on a new one.
        connection = await self._pool._connect(self._origin, self._connect_timeout)
        timeout = self._timeout
        if timeout is not None:  # what is left of it after a failed reuse and the connect
            timeout = max(0.001, timeout - (time.monotonic() - self._started))
        self.sent_on = connection
        return await connection.exchange(self._request, timeout)

    def cancel(self) -> None:
        """Give up on the request (never awaited): its connection is closed, not reused."""
        if self.sent_on is not None:
            self.sent_on.abandon()
