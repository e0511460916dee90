"""The upstream HTTP client against raw HTTP servers on loopback: framing, pooling, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ingest.upstream_http import ConnectError, HttpPool, UpstreamIOError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/chat/completions"


def _answer_each(answer: Callable[[bytes], Awaitable[bytes]]) -> Handler:
    """A handler that answers each request on its connection until the client closes it."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(await answer(request))
            await writer.drain()
        writer.close()

    return handler


def _post(pool: HttpPool, url: str, body: bytes = b"{}", timeout: float = 5.0) -> Awaitable[bytes]:
    async def run() -> bytes:
        response = await pool.post(
            url, body, {"Content-Type": "application/json"}, timeout=timeout, connect_timeout=2
        )
        data = await response.read()
        response.release()
        return data

    return run()


def test_keep_alive_reuses_one_connection_and_sends_a_proper_request() -> None:
    requests: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                requests.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            await writer.drain()
        writer.close()

    async def main() -> list[bytes]:
        server, url = await _serve(handler)
        pool = HttpPool()
        answers = [await _post(pool, url, b'{"n": %d}' % n) for n in range(3)]
        pool.close()
        server.close()
        return answers

    assert asyncio.run(main()) == [b"hello"] * 3
    assert connections == 1
    first = requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in first and b"\r\nContent-Length: 8\r\n" in first
    assert first.endswith(b'\r\n\r\n{"n": 0}')


def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nno length, ends with the connection")
        await writer.drain()
        writer.close()

    async def main() -> tuple[list[bytes], bytes]:
        server, url = await _serve(chunked)
        other, other_url = await _serve(until_close)
        pool = HttpPool()
        response = await pool.post(url, b"{}", {}, timeout=5, connect_timeout=2)
        pieces = [piece async for piece in response.iter_any()]
        response.release()
        whole = await _post(pool, other_url)
        pool.close()
        server.close()
        other.close()
        return pieces, whole

    pieces, whole = asyncio.run(main())
    assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\n" and len(pieces) == 2
    assert whole == b"no length, ends with the connection"


def test_a_pooled_connection_closed_by_the_server_is_replaced() -> None:
    connections = 0

    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # an idle keep-alive connection the server gives up

    async def main() -> list[bytes]:
        server, url = await _serve(one_answer_then_close)
        pool = HttpPool()
        first = await _post(pool, url)
        await asyncio.sleep(0.2)
        second = await _post(pool, url)
        pool.close()
        server.close()
        return [first, second]

    assert asyncio.run(main()) == [b"ok", b"ok"]
    assert connections == 2


def test_refused_connection_is_a_connect_error_and_a_slow_upstream_times_out() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()
        await asyncio.sleep(5)

    async def main() -> None:
        server, url = await _serve(slow)
        closed, closed_url = await _serve(slow)
        closed.close()
        await closed.wait_closed()
        pool = HttpPool()
        with pytest.raises(ConnectError):
            await _post(pool, closed_url)
        with pytest.raises(TimeoutError):
            await _post(pool, url, timeout=0.3)  # the head came, the body never finishes
        assert pool.idle_count() == 0  # a timed-out connection is never reused
        pool.close()
        server.close()

    asyncio.run(main())


def test_a_connection_lost_mid_body_is_an_error_not_a_short_answer() -> None:
    async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, url = await _serve(dies)
        pool = HttpPool()
        with pytest.raises(UpstreamIOError):
            await _post(pool, url)
        pool.close()
        server.close()

    asyncio.run(main())


def test_a_large_stream_read_slowly_arrives_complete() -> None:
    size = 4 * 1024 * 1024

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()

    async def main() -> int:
        server, url = await _serve(big)
        pool = HttpPool()
        response = await pool.post(url, b"{}", {}, timeout=20, connect_timeout=2)
        received = 0
        async for piece in response.iter_any():
            received += len(piece)
            await asyncio.sleep(0)  # a slow reader: the client pauses and resumes the socket
        response.release()
        assert pool.idle_count() == 1  # read to the end: the connection is kept
        pool.close()
        server.close()
        return received

    assert asyncio.run(main()) == size


def test_a_request_on_a_connection_the_server_drops_unanswered_is_sent_again() -> None:
    served: list[int] = []

    async def drops_second_request(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        number = len(served) + 1
        served.append(number)
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % number)
        await writer.drain()
        await _read_request(reader)  # the reused connection: closed without an answer
        writer.close()

    async def main() -> list[bytes]:
        server, url = await _serve(drops_second_request)
        pool = HttpPool()
        answers = [await _post(pool, url), await _post(pool, url)]
        pool.close()
        server.close()
        return answers

    assert asyncio.run(main()) == [b"1", b"2"]
    assert served == [1, 2]


def test_a_request_on_an_idle_connection_is_written_before_it_is_awaited() -> None:
    """HttpPool.request sends at once on a pooled connection, so the gateway can do its own
    bookkeeping while the upstream computes; an abandoned request closes its connection."""
    arrived = asyncio.Event()

    async def answer(_request: bytes) -> bytes:
        arrived.set()
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def main() -> None:
        server, url = await _serve(_answer_each(answer))
        pool = HttpPool()
        try:
            assert await _post(pool, url) == b"ok"  # leaves one idle connection
            arrived.clear()
            pending = pool.request(url, b"{}", {}, timeout=5, connect_timeout=2)
            assert pending.sent_on is not None
            await asyncio.wait_for(arrived.wait(), 2)  # the server has it; nobody awaited yet
            response = await pending.response()
            assert await response.read() == b"ok"
            response.release()
            assert pool.idle_count() == 1

            abandoned = pool.request(url, b"{}", {}, timeout=5, connect_timeout=2)
            abandoned.cancel()
            assert pool.idle_count() == 0
            assert await _post(pool, url) == b"ok"  # a new connection takes over
        finally:
            pool.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_the_timeout_follows_each_exchange_on_a_reused_connection() -> None:
    """One timer per connection: a later exchange gets its own full timeout, and a shorter
    timeout than the previous exchange's still fires on time."""

    async def answer(request: bytes) -> bytes:
        if request.endswith(b"never"):
            await asyncio.sleep(10)
        if request.endswith(b"slow"):
            await asyncio.sleep(0.25)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def main() -> None:
        server, url = await _serve(_answer_each(answer))
        pool = HttpPool()
        loop = asyncio.get_running_loop()
        try:
            assert await _post(pool, url, b"fast", timeout=0.4) == b"ok"
            await asyncio.sleep(0.2)
            # 0.2 + 0.25 s after the first exchange began: past its deadline, not this one's.
            assert await _post(pool, url, b"slow", timeout=0.4) == b"ok"
            assert pool.idle_count() == 1
            assert await _post(pool, url, b"fast", timeout=30) == b"ok"
            started = loop.time()
            with pytest.raises(TimeoutError):
                await _post(pool, url, b"never", timeout=0.3)  # shorter than the last one
            assert loop.time() - started < 2
        finally:
            pool.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
