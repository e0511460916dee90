"""The real `openai` package against the gateway in front of `interlog demo-model`."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import openai
import pytest

from tests.servers import LiveGateway, demo_upstream, live_gateway

__all__ = ["demo_upstream", "live_gateway"]

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()


def _client(live: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api_url, api_key=live.api_key, max_retries=0)


def test_openai_sync_completion_has_adaptive_fields(live_gateway: LiveGateway) -> None:
    client = _client(live_gateway)
    response = client.chat.completions.create(
        model="proj/m1",
        messages=[{"role": "user", "content": "hello there"}],
        metadata={"team": "a"},
        temperature=0.1,
    )
    choice = response.choices[0]
    assert choice.message.content == "echo: hello there"
    assert choice.finish_reason == "stop"
    extra = choice.model_extra or {}
    assert uuid.UUID(extra["completion_id"]).version == 7
    assert extra["model"] == "proj/m1"
    assert (choice.message.model_extra or {})["id"] == extra["completion_id"]
    assert uuid.UUID((response.model_extra or {})["session_id"])
    assert response.model == "proj/m1"
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.prompt_tokens + 3


def test_openai_max_tokens_and_stop_pass_through(live_gateway: LiveGateway) -> None:
    client = _client(live_gateway)
    cut = client.chat.completions.create(
        model="proj/m1", messages=[{"role": "user", "content": "a b c d e"}], max_tokens=2
    )
    assert cut.choices[0].message.content == "echo: a"
    assert cut.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(
        model="proj/m1", messages=[{"role": "user", "content": "one two three"}], stop=[" two"]
    )
    assert stopped.choices[0].message.content == "echo: one"


def test_openai_unknown_parameters_reach_the_upstream(live_gateway: LiveGateway) -> None:
    client = _client(live_gateway)
    response = client.chat.completions.create(
        model="proj/m1",
        messages=[{"role": "user", "content": "[echo-request]"}],
        seed=7,
        presence_penalty=0.5,
        response_format={"type": "json_object"},
        metadata={"k": "v"},
        extra_body={"labels": {"x": "y"}, "session_id": str(uuid.uuid4())},
    )
    received = json.loads(response.choices[0].message.content or "")
    assert received["seed"] == 7
    assert received["presence_penalty"] == 0.5
    assert received["response_format"] == {"type": "json_object"}
    assert received["model"] == "m1"
    for interlog_only in ("labels", "metadata", "session_id", "store"):
        assert interlog_only not in received


def test_openai_async_completion(live_gateway: LiveGateway) -> None:
    async def call() -> str | None:
        client = openai.AsyncOpenAI(
            base_url=live_gateway.api_url, api_key=live_gateway.api_key, max_retries=0
        )
        async with client:
            response = await client.chat.completions.create(
                model="proj", messages=[{"role": "user", "content": "async hi"}]
            )
        return response.choices[0].message.content

    assert asyncio.run(call()) == "echo: async hi"


def test_openai_stream_with_usage(live_gateway: LiveGateway) -> None:
    client = _client(live_gateway)
    session_id = str(uuid.uuid4())
    stream = client.chat.completions.create(
        model="proj/m1",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"session_id": session_id},
    )
    chunks = list(stream)
    content_chunks = [chunk for chunk in chunks if chunk.choices]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in content_chunks)
    assert text == "echo: stream me please"
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    completion_ids = {(c.choices[0].model_extra or {})["completion_id"] for c in content_chunks}
    assert len(completion_ids) == 1
    assert {(c.model_extra or {})["session_id"] for c in chunks} == {session_id}
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None and usage_chunk.usage.completion_tokens == 4


def test_openai_stream_without_include_usage_has_no_usage_chunk(
    live_gateway: LiveGateway,
) -> None:
    client = _client(live_gateway)
    chunks = list(
        client.chat.completions.create(
            model="proj", messages=[{"role": "user", "content": "no usage"}], stream=True
        )
    )
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


def test_openai_vision_with_nested_image_url(live_gateway: LiveGateway) -> None:
    client = _client(live_gateway)
    response = client.chat.completions.create(
        model="proj/m1",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": PNG_URI}},
                ],
            }
        ],
    )
    assert response.choices[0].message.content == "saw 1 image. echo: what is this"


def test_openai_error_mid_stream_raises_api_error(live_gateway: LiveGateway) -> None:
    client = _client(live_gateway)
    stream = client.chat.completions.create(
        model="proj",
        messages=[{"role": "user", "content": "a b c d [fail-midstream]"}],
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIError, match="demo model failed mid-stream"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received[:2] == ["", "echo:"]


def test_openai_streaming_request_failing_before_first_byte_shows_the_message(
    live_gateway: LiveGateway,
) -> None:
    client = _client(live_gateway)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(
            model="proj/missing", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert "model 'missing' does not exist" in str(raised.value)
    assert "interlog models add missing" in str(raised.value)
