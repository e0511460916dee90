"""The uvicorn protocol of `interlog serve`: a sized response in one write, a stream at once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from uvicorn.protocols.http.flow_control import FlowControl

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


def _cycle(transport: RecordingTransport, *, keep_alive: bool = True) -> CoalescingCycle:
    scope = {"type": "http", "method": "POST", "path": "/", "http_version": "1.1"}
    return CoalescingCycle(
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
