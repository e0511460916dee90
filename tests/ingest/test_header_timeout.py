"""Request headers must arrive within INTERLOG_HEADER_TIMEOUT_SECONDS of a request's first byte
(408, connection closed), against a real `interlog serve` on loopback with raw sockets; slow but
timely headers and keep-alive reuse still work."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.ingest.admin_harness import ADMIN_KEY
from tests.support import free_port, interlog_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 2.0  # the server's header timeout in these tests (uvicorn's keep-alive is 5 s)
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def address(
    _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    workdir = tmp_path_factory.mktemp("header-timeout")
    shutil.copyfile(_sqlite_template, workdir / "interlog.db")
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": f"sqlite:///{workdir / 'interlog.db'}",
        "INTERLOG_JOURNAL_DIR": str(workdir / "journal"),
        "INTERLOG_ADMIN_KEY": ADMIN_KEY,
        "INTERLOG_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "INTERLOG_LOG_LEVEL": "warning",
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    with interlog_process(args, env=env, cwd=REPO_ROOT, log=workdir / "server.log") as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120, process=process)
        yield "127.0.0.1", port


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer


def _read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed inside a body"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_partial_headers_get_408_and_the_connection_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        answer = _read_all(sock)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in answer.lower()
    body = orjson.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "request_timeout"
    assert TIMEOUT - 0.2 <= elapsed < 25, elapsed


def test_headers_trickled_line_by_line_still_time_out(address: tuple[str, int]) -> None:
    """Each byte cancelled uvicorn's keep-alive timer: a client sending a header line every
    half second held the connection for good. The deadline counts from the first byte."""
    with socket.create_connection(address, timeout=0.5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer, sent = b"", 0
        while not answer and time.monotonic() - started < 30:  # far past the limit
            with contextlib.suppress(TimeoutError):  # a line every half second
                answer = sock.recv(4096)
            if not answer:
                sock.sendall(f"X-Slow-{sent}: y\r\n".encode())
                sent += 1
        elapsed = time.monotonic() - started
        sock.settimeout(30)
        answer += _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert sent >= 3 and TIMEOUT - 0.2 <= elapsed < 25, (sent, elapsed)


def test_a_connection_that_sends_nothing_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=30) as sock:
        started = time.monotonic()
        answer = _read_all(sock)
        elapsed = time.monotonic() - started
    assert answer == b""  # closed without a response: no request was begun
    assert TIMEOUT - 0.2 <= elapsed < 25, elapsed


def test_slow_but_timely_headers_are_answered(address: tuple[str, int]) -> None:
    """Headers sent in pieces over about a third of the limit are served as usual."""
    pieces = [b"GET /healthz HT", b"TP/1.1\r\nHo", b"st: x\r\nX-A: b\r\n", b"\r\n"]
    with socket.create_connection(address, timeout=30) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(TIMEOUT / 3 / len(pieces))
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_keep_alive_reuse_is_unaffected(address: tuple[str, int]) -> None:
    """Several requests on one connection, with an idle pause longer than the header timeout
    (but shorter than uvicorn's 5 s keep-alive) between two of them: the header deadline
    starts at a request's first byte, not when the connection last went idle."""
    with socket.create_connection(address, timeout=30) as sock:
        for _ in range(3):
            sock.sendall(REQUEST)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(TIMEOUT + 1.0)
        sock.sendall(REQUEST)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # then nothing: 408
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
