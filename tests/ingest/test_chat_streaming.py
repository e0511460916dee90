"""Streaming through the gateway: chunk shape, no buffering, and cancellation on disconnect."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

from tests.servers import (
    LiveGateway,
    demo_upstream,
    gateway,
    live_gateway,
    seed_project,
    stored_interaction,
)

__all__ = ["demo_upstream", "live_gateway"]


def _stream_request(live: LiveGateway, text: str, **extra: object) -> dict[str, object]:
    return {
        "model": "proj",
        "stream": True,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def _headers(live: LiveGateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.api_key}"}


def test_every_chunk_has_the_fields_both_clients_require(live_gateway: LiveGateway) -> None:
    session_id = str(uuid.uuid4())
    body = _stream_request(
        live_gateway, "a b", n=2, session_id=session_id, stream_options={"include_usage": True}
    )
    response = httpx.post(
        f"{live_gateway.api_url}/chat/completions", json=body, headers=_headers(live_gateway)
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    raw_events = response.text.split("\n\n")
    assert raw_events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in raw_events[:-2]]
    ids: dict[int, set[str]] = {0: set(), 1: set()}
    for chunk in chunks:
        assert {"id", "created", "session_id", "model", "choices"} <= chunk.keys()
        assert chunk["session_id"] == session_id
        for choice in chunk["choices"]:
            delta = choice["delta"]
            assert isinstance(delta["content"], str) and delta["role"] == "assistant"
            assert delta["id"] == choice["completion_id"]
            ids[choice["index"]].add(choice["completion_id"])
    assert all(len(found) == 1 for found in ids.values())
    assert ids[0] != ids[1]  # one completion id per choice
    finishing = [c for chunk in chunks for c in chunk["choices"] if c["finish_reason"]]
    assert len(finishing) == 2  # one per choice, never with a bare `delta: {}`
    assert all(choice["delta"]["content"] == "" for choice in finishing)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_chunks_are_forwarded_as_they_arrive(live_gateway: LiveGateway) -> None:
    # The demo model waits 0.3 s between chunks; a buffering proxy would deliver them together.
    body = _stream_request(live_gateway, "one two three four [chunk-delay=0.3]")
    arrivals = []
    start = time.monotonic()
    with httpx.stream(
        "POST",
        f"{live_gateway.api_url}/chat/completions",
        json=body,
        headers=_headers(live_gateway),
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > 1.0
    assert arrivals[1] < arrivals[-1] - 0.8


def test_client_disconnect_cancels_the_upstream_request(live_gateway: LiveGateway) -> None:
    stats_url = live_gateway.upstream_url.removesuffix("/v1") + "/demo/stats"
    before = httpx.get(stats_url).json()["abandoned_streams"]
    words = " ".join(f"w{i}" for i in range(60))
    body = _stream_request(live_gateway, f"{words} [chunk-delay=0.1]")
    with httpx.stream(
        "POST",
        f"{live_gateway.api_url}/chat/completions",
        json=body,
        headers=_headers(live_gateway),
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # hang up after the first chunk
    deadline = time.monotonic() + 5
    stats = httpx.get(stats_url).json()
    while stats["abandoned_streams"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = httpx.get(stats_url).json()
    assert stats["abandoned_streams"] == before + 1
    assert stats["open_streams"] == 0


def test_gateway_on_postgresql_answers_and_logs(
    postgres_url: str, demo_upstream: str, tmp_path: Path
) -> None:
    api_key, project_key, _ = seed_project(postgres_url, upstream_urls=[demo_upstream])
    with gateway(postgres_url, tmp_path) as base_url:
        response = httpx.post(
            f"{base_url}/api/v1/chat/completions",
            json={"model": project_key, "messages": [{"role": "user", "content": "on pg"}]},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["message"]["content"] == "echo: on pg"
        found = stored_interaction(postgres_url, choice["completion_id"])
    assert found is not None and found[0].completion == "echo: on pg"
