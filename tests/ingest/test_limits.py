"""Request hardening: body size (declared, streamed), JSON text checks, labels, path, query."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.limits import RequestRefused, check_json_text, json_depth
from tests.ingest.admin_harness import ADMIN_KEY
from tests.support import free_port, interlog_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": [[1, 2], {"b": "[[[[\\\\"}]}') == 3
    assert json_depth(b'["\\"[[[", "]]"]') == 1
    assert json_depth(b'"plain"') == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"a": "\xff\xfe"}', "invalid_utf8"),
        (b'{"a": "x\\u0000y"}', "null_character"),
        (b'{"a": "\\ud800"}', "invalid_unicode"),
        (b"[" * 65 + b"]" * 65, "json_too_deep"),
    ],
)
def test_bad_json_text_is_refused_with_a_code(body: bytes, code: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        check_json_text(body, max_depth=64)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_escaped_backslash_before_u0000_and_paired_surrogates_are_fine() -> None:
    check_json_text(b'{"a": "C:\\\\u0000", "b": "\\ud83d\\ude00"}', max_depth=64)
    check_json_text(b"[" * 64 + b"]" * 64, max_depth=64)


@pytest.fixture(scope="module")
def server(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real gateway process with a small body limit and a short body timeout."""
    import shutil

    workdir = tmp_path_factory.mktemp("limits")
    shutil.copyfile(_sqlite_template, workdir / "interlog.db")
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": f"sqlite:///{workdir / 'interlog.db'}",
        "INTERLOG_JOURNAL_DIR": str(workdir / "journal"),
        "INTERLOG_ADMIN_KEY": ADMIN_KEY,
        "INTERLOG_MAX_BODY_BYTES": "4096",
        "INTERLOG_BODY_TIMEOUT_SECONDS": "1",
        "INTERLOG_LOG_LEVEL": "warning",
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    with interlog_process(args, env=env, cwd=REPO_ROOT, log=workdir / "server.log") as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        yield f"http://127.0.0.1:{port}"


def _admin(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def test_a_declared_body_over_the_limit_is_413(server: str) -> None:
    with _admin(server) as http:
        response = http.post("/api/v1/admin/projects", content=b"{" + b" " * 5000 + b"}")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_chunked_body_over_the_limit_is_413_while_it_streams(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    with _admin(server) as http:
        response = http.post(
            "/api/v1/admin/projects", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_body_that_never_finishes_is_408(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/admin/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100\r\nAuthorization: Bearer " + ADMIN_KEY.encode() + b"\r\n\r\n{"
        )
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after answering
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer


def test_nul_in_a_json_string_is_400_and_nothing_is_stored(server: str) -> None:
    with _admin(server) as http:
        response = http.post("/api/v1/admin/projects", json={"key": "a\u0000b"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "null_character"
        assert http.get("/api/v1/admin/projects").json()["data"] == []


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_bodies_are_checked_whatever_their_content_type(
    server: str, content_type: str | None
) -> None:
    """`curl -d` sends form-urlencoded, and the chat and ingest routes read any body as JSON:
    the checks must not depend on the header."""
    body = orjson.dumps({"model": "p", "messages": [{"role": "user", "content": "a\u0000b"}]})
    headers = {"content-type": content_type} if content_type else {}
    with _admin(server) as http:
        response = http.post("/api/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "null_character"


def test_nul_or_invalid_utf8_in_the_path_or_query_is_400(server: str) -> None:
    with _admin(server) as http:
        assert http.get("/api/v1/admin/projects/a%00b").json()["error"]["param"] == "path"
        assert http.get("/api/v1/admin/keys?project=%ff").json()["error"]["code"] == "invalid_utf8"


def test_labels_beyond_the_limits_are_400_and_openai_limits_pass(server: str) -> None:
    openai_sized = {f"k{i:02d}" + "x" * 60: "v" * 512 for i in range(16)}
    too_many = {f"k{i}": "v" for i in range(65)}
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        accepted = http.post(
            "/api/v1/chat/completions",
            json={"model": "nope", "messages": [], "metadata": openai_sized},
        )
        assert accepted.status_code != 400 or "label" not in accepted.text
        refused = http.post(
            "/api/v1/chat/completions",
            json={"model": "nope", "messages": [], "labels": too_many},
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "too_many_labels"
        long_key = http.post("/api/v1/interactions", json={"labels": {"k" * 129: "v"}})
        assert long_key.status_code == 400
        assert long_key.json()["error"]["param"] == "labels"
        assert long_key.json()["error"]["code"] == "label_too_long"


def test_label_gaps_are_closed(server: str) -> None:
    """labels + metadata count together (they are stored as one map), an empty key is refused,
    and a value is at most 2,000 bytes of UTF-8 (PostgreSQL's label index refuses larger ones
    for good) even when it is within the character limit."""
    half = {f"l{i}": "v" for i in range(40)}
    other_half = {f"m{i}": "v" for i in range(40)}
    wide = "\u4e2d" * 700  # 700 characters, 2,100 bytes of UTF-8
    cases = [
        ("/api/v1/chat/completions", {"labels": half, "metadata": other_half}, "too_many_labels"),
        ("/api/v1/chat/completions", {"labels": {"": "v"}}, "empty_label_key"),
        ("/api/v1/interactions", {"labels": {"  ": "v"}}, "empty_label_key"),
        ("/api/v1/chat/completions", {"metadata": {"k": wide}}, "label_too_long"),
        ("/api/v1/interactions", {"labels": {"k": wide}}, "label_too_long"),
    ]
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        for path, body, code in cases:
            response = http.post(path, json={"model": "nope", "messages": [], **body})
            assert response.status_code == 400, (path, body.keys(), response.text)
            assert response.json()["error"]["code"] == code
        same_key = {"labels": {f"k{i}": "v" for i in range(40)}}
        same_key["metadata"] = dict(same_key["labels"])  # 40 distinct labels once merged
        response = http.post(
            "/api/v1/chat/completions", json={"model": "nope", "messages": [], **same_key}
        )
        assert response.status_code != 400 or "label" not in response.text


def test_graphql_refusals_come_in_the_graphql_shape(server: str) -> None:
    with _admin(server) as http:
        response = http.post("/api/graphql", json={"query": "{ metrics { key } }", "x": "\u0000"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "null_character"
