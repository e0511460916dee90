"""Every error of the chat endpoint has the right status and the one REST error shape."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest

from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.keys import create_api_key
from tests.servers import LiveGateway, demo_upstream, fixed_upstream, live_gateway
from tests.support import free_port

__all__ = ["demo_upstream", "live_gateway"]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Setup(NamedTuple):
    live: LiveGateway
    other_key: str  # a key of project "other"
    client: httpx.Client


@pytest.fixture(scope="module")
def setup(live_gateway: LiveGateway) -> Iterator[Setup]:
    engine = create_store_engine(live_gateway.database_url)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    create_model(engine, key="textonly", upstream_urls=[live_gateway.upstream_url])
    create_model(engine, key="alldead", upstream_urls=[dead])
    create_model(engine, key="slow", upstream_urls=[live_gateway.upstream_url], timeout=0.5)
    create_model(engine, key="unattached", upstream_urls=[live_gateway.upstream_url])
    for key in ("textonly", "alldead", "slow"):
        attach_model(engine, project_key="proj", model_key=key)
    create_project(engine, key="other")
    create_project(engine, key="empty")
    other_key = create_api_key(engine, project_key="other").secret
    engine.dispose()
    with httpx.Client(timeout=30) as client:
        yield Setup(live_gateway, other_key, client)


def post(
    setup: Setup,
    body: Any,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = {"Authorization": f"Bearer {key or setup.live.api_key}", **(headers or {})}
    if key == "":
        del all_headers["Authorization"]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return setup.client.post(
        f"{setup.live.base_url}/api/v1/chat/completions",
        content=content,
        headers={"Content-Type": "application/json", **all_headers},
    )


def message(text: str = "hi", *, model: str = "proj", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def image_message(url: Any, *, model: str = "proj") -> dict[str, Any]:
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": url}]
    return {"model": model, "messages": [{"role": "user", "content": parts}]}


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    for fragment in fragments:
        assert fragment in body["error"]["message"]


def test_body_that_is_not_json_is_400(setup: Setup) -> None:
    assert_error(post(setup, b"{not json"), 400, "bad_request", "not valid JSON")


def test_missing_api_key_is_401(setup: Setup) -> None:
    response = post(setup, message(), key="")
    assert_error(response, 401, "invalid_api_key", "missing API key")
    assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_api_key_is_401(setup: Setup) -> None:
    assert_error(post(setup, message(), key="il_00000000_nope"), 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("model", "fragments"),
    [
        ("nosuch", ["project 'nosuch' not found", "`interlog projects create nosuch`"]),
        ("proj/ghost", ["model 'ghost' does not exist", "`interlog models add ghost"]),
        (
            "proj/unattached",
            ["not attached to project 'proj'", "`interlog models attach proj unattached`"],
        ),
    ],
)
def test_unknown_project_or_model_is_404_saying_how_to_fix_it(
    setup: Setup, model: str, fragments: list[str]
) -> None:
    # The admin key sees every project, so the message is about the project itself.
    engine = create_store_engine(setup.live.database_url)
    admin = create_api_key(engine, admin=True).secret
    engine.dispose()
    assert_error(post(setup, message(model=model), key=admin), 404, "not_found", *fragments)


def test_project_without_default_model_is_404(setup: Setup) -> None:
    engine = create_store_engine(setup.live.database_url)
    key = create_api_key(engine, project_key="empty").secret
    engine.dispose()
    response = post(setup, message(model="empty"), key=key)
    assert_error(response, 404, "not_found", "`interlog models attach empty MODEL --default`")


def test_another_projects_key_is_404(setup: Setup) -> None:
    response = post(setup, message(model="proj"), key=setup.other_key)
    assert_error(response, 404, "not_found", "project proj not found")


def test_body_larger_than_the_limit_is_413(setup: Setup) -> None:
    huge = message("x" * (16 * 1024 * 1024 + 10))
    assert_error(post(setup, huge), 413, "request_too_large")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "proj"}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        (message(max_tokens=-1), "max_tokens"),
        (message(session_id="not-a-uuid"), "session_id"),
        (message(labels={"k": 1}), "labels.k"),
        # `stream` and `include_usage` are JSON booleans: "yes", 1 or "true" were taken as true
        # by validation but as false by the handler (the stream was parsed as JSON: a 502).
        (message(stream="yes"), "stream"),
        (message(stream=1), "stream"),
        (message(stream="true"), "stream"),
        (
            message(stream=True, stream_options={"include_usage": "yes"}),
            "stream_options.include_usage",
        ),
    ],
)
def test_body_not_matching_the_schema_is_422(
    setup: Setup, body: dict[str, Any], param: str
) -> None:
    response = post(setup, body)
    assert_error(response, 422, "validation_error")
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("data:image/png;base64,!!!notbase64", "not valid base64"),
        ("data:image/bmp;base64," + base64.b64encode(b"BM....").decode(), "unsupported image type"),
        ("data:image/jpeg;base64," + base64.b64encode(PNG).decode(), "is a image/png image"),
        ("data:image/png;base64," + base64.b64encode(b"hello").decode(), "is not an image"),
        ("ftp://example.org/cat.png", "data: URI or an http(s) URL"),
        ({"detail": "high"}, "image_url must be"),
    ],
)
def test_bad_image_is_400_naming_the_problem(setup: Setup, url: Any, fragment: str) -> None:
    assert_error(post(setup, image_message(url)), 400, "bad_request", fragment)


def test_image_over_10_mb_is_400(setup: Setup) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert_error(post(setup, image_message(url)), 400, "bad_request", "larger than 10 MB")


def test_image_to_a_text_only_model_is_400(setup: Setup) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    response = post(setup, image_message(url, model="proj/textonly"))
    assert_error(response, 400, "bad_request", "not marked multimodal")


def test_upstream_rejecting_the_request_is_400_with_its_message(setup: Setup) -> None:
    response = post(setup, message("[fail=400]"))
    assert_error(response, 400, "bad_request", "demo model told to fail with 400")
    assert response.json()["error"]["message"].endswith("told to fail with 400")  # not 400.0


def test_upstream_failure_is_502(setup: Setup) -> None:
    assert_error(post(setup, message("[fail=500]")), 502, "upstream_error", "answered 500")


def test_no_reachable_replica_is_502(setup: Setup) -> None:
    response = post(setup, message(model="proj/alldead"))
    assert_error(response, 502, "upstream_error", "no replica of model alldead")


def test_upstream_timeout_is_504(setup: Setup) -> None:
    start = time.monotonic()
    response = post(setup, message("[delay=3]", model="proj/slow"))
    assert_error(response, 504, "upstream_timeout", "did not answer")
    assert time.monotonic() - start < 2.5


def test_streaming_error_for_an_sse_client_is_an_sse_error_body(setup: Setup) -> None:
    response = post(
        setup,
        message("x", model="proj/ghost", stream=True),
        headers={"Accept": "text/event-stream"},
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert events[0].startswith("Interlog error 404 not_found: model 'ghost' does not exist")
    assert json.loads(events[1])["error"]["code"] == "not_found"


def test_streaming_timeout_mid_stream_ends_with_an_error_event(setup: Setup) -> None:
    response = post(setup, message("a b c d e f [chunk-delay=0.2]", model="proj/slow", stream=True))
    assert response.status_code == 200
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1] == "[DONE]"  # after the error event, as every stream ends
    last = json.loads(events[-2])
    assert last["error"]["code"] == "upstream_timeout"


def test_an_upstream_200_carrying_an_error_is_502_and_logged_as_an_error(
    setup: Setup,
) -> None:
    """It was logged as an ok interaction with an empty completion."""
    from sqlalchemy import select

    from store.interactions import INTERACTION_TABLE

    with fixed_upstream({"error": {"message": "model overloaded", "code": 503}}) as (url, _):
        engine = create_store_engine(setup.live.database_url)
        create_model(engine, key="errs200", upstream_urls=[url])
        attach_model(engine, project_key="proj", model_key="errs200")
        deadline = time.monotonic() + 20
        response = post(setup, message("hello there", model="proj/errs200"))
        while response.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.5)  # the gateway caches the project's routes for 2 s
            response = post(setup, message("hello there", model="proj/errs200"))
        assert_error(response, 502, "upstream_error", "answered 200 with an error")
        assert "model overloaded" in response.json()["error"]["message"]
        table = INTERACTION_TABLE
        deadline = time.monotonic() + 20
        while True:
            with engine.connect() as connection:
                row = connection.execute(
                    select(table.c.status, table.c.error, table.c.completion).where(
                        table.c.error.like("%model overloaded%")
                    )
                ).first()
            if row is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        engine.dispose()
    assert row is not None, "the failed call was not logged"
    assert row.status == "error" and not row.completion
