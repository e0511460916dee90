"""The uvicorn protocol of `interlog serve`: a sized response in one write, a stream at once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from ingest.http_protocol import CoalescingCycle
from tests.servers import LiveGateway, demo_upstream, live_gateway

__all__ = ["demo_upstream", "live_gateway"]


class RecordingTransport(asyncio.Transport):
    """The socket side of one connection: what uvicorn writes, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(
    transport: RecordingTransport,
    *,
    keep_alive: bool = True,
    cycle_class: type[RequestResponseCycle] = CoalescingCycle,
) -> Any:
    scope = {"type": "http", "method": "POST", "path": "/", "http_version": "1.1"}
    return cycle_class(
        scope=scope,  # type: ignore[arg-type]
        transport=transport,
        flow=FlowControl(transport),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


def _send(cycle: CoalescingCycle, *messages: dict[str, Any]) -> None:
    async def run() -> None:
        for message in messages:
            await cycle.send(message)

    asyncio.run(run())


def test_a_sized_response_is_one_write_with_head_and_body() -> None:
    transport = RecordingTransport()
    cycle = _cycle(transport)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    _send(
        cycle,
        {"type": "http.response.start", "status": 200, "headers": headers},
        {"type": "http.response.body", "body": b"{}"},
    )
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"content-length: 2\r\n\r\n{}")
    assert cycle.response_complete and not transport.closed


def test_the_single_write_is_what_uvicorn_writes_in_two() -> None:
    """Same bytes and end state as uvicorn's own send (server headers included)."""
    headers = [(b"Content-Type", b"application/json"), (b"content-length", b"2")]
    messages: list[dict[str, Any]] = [
        {"type": "http.response.start", "status": 404, "headers": headers},
        {"type": "http.response.body", "body": b"{}"},
    ]
    written: list[bytes] = []
    for cycle_class in (CoalescingCycle, RequestResponseCycle):
        transport = RecordingTransport()
        cycle = _cycle(transport, cycle_class=cycle_class)
        cycle.default_headers = [(b"server", b"uvicorn"), (b"date", b"today")]
        completed: list[bool] = []
        cycle.on_response = lambda completed=completed: completed.append(True)
        _send(cycle, *messages)
        assert cycle.response_complete and completed == [True]
        assert cycle.message_event.is_set()
        written.append(b"".join(transport.writes))
    assert written[0] == written[1]


def test_a_body_shorter_than_its_content_length_is_refused_as_uvicorn_does() -> None:
    transport = RecordingTransport()
    cycle = _cycle(transport)
    headers = [(b"content-length", b"5")]
    with pytest.raises(RuntimeError, match="shorter than Content-Length"):
        _send(
            cycle,
            {"type": "http.response.start", "status": 200, "headers": headers},
            {"type": "http.response.body", "body": b"{}"},
        )
    assert transport.writes == [] and not cycle.response_complete


def test_connection_close_still_closes_after_the_single_write() -> None:
    transport = RecordingTransport()
    cycle = _cycle(transport, keep_alive=False)
    _send(
        cycle,
        {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"1")]},
        {"type": "http.response.body", "body": b"x"},
    )
    assert len(transport.writes) == 1 and b"connection: close" in transport.writes[0]
    assert transport.closed


def test_a_stream_sends_its_head_at_once_and_each_chunk_as_it_comes() -> None:
    transport = RecordingTransport()
    cycle = _cycle(transport)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x", b"y")]}
    _send(cycle, start)
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n")
    _send(cycle, {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    assert len(transport.writes) == 2
    _send(cycle, {"type": "http.response.body", "body": b"", "more_body": False})
    assert transport.writes[-1] == b"0\r\n\r\n" and cycle.response_complete


def test_a_sized_body_in_several_messages_keeps_every_byte() -> None:
    transport = RecordingTransport()
    cycle = _cycle(transport)
    _send(
        cycle,
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]},
        {"type": "http.response.body", "body": b"abc", "more_body": True},
        {"type": "http.response.body", "body": b"def"},
    )
    assert len(transport.writes) == 2
    assert b"".join(transport.writes).endswith(b"\r\n\r\nabcdef")


def test_the_gateway_answers_through_it(live_gateway: LiveGateway) -> None:
    headers = {"Authorization": f"Bearer {live_gateway.api_key}"}
    body = {"model": live_gateway.project_key, "messages": [{"role": "user", "content": "hi"}]}
    url = f"{live_gateway.base_url}/api/v1/chat/completions"
    with httpx.Client(timeout=10) as client:  # one keep-alive connection for several answers
        for _ in range(3):
            answer = client.post(url, json=body, headers=headers)
            assert answer.status_code == 200
            assert int(answer.headers["content-length"]) == len(answer.content)
            assert answer.json()["choices"][0]["message"]["content"]
        with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as sse:
            assert sse.headers["content-type"].startswith("text/event-stream")
            assert b"data: [DONE]" in b"".join(sse.iter_bytes())


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def test_keep_alive_closes_an_idle_connection_but_not_a_busy_one() -> None:
    """One timer per connection (not one per request) still closes after the idle limit."""
    import uvicorn

    from ingest.http_protocol import CoalescingHttpToolsProtocol

    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

    async def main() -> None:
        config = uvicorn.Config(
            _hello, host="127.0.0.1", port=0, http=CoalescingHttpToolsProtocol,
            timeout_keep_alive=0.3, log_level="warning", lifespan="off",  # type: ignore[arg-type]
        )  # fmt: skip
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(6):  # busy for 0.6 s, twice the idle limit: stays open
                writer.write(request)
                assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
                await asyncio.sleep(0.1)
            started = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(reader.read(), 2) == b""  # idle: closed by the server
            assert 0.15 < asyncio.get_running_loop().time() - started < 1.0
        finally:
            writer.close()
            server.should_exit = True
            await serving

    asyncio.run(main())
