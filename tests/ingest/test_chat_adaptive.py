"""The real `adaptive-sdk` against the gateway in front of `interlog demo-model`."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from adaptive_sdk import Adaptive, AsyncAdaptive

from tests.servers import LiveGateway, demo_upstream, live_gateway, stored_interaction

__all__ = ["demo_upstream", "live_gateway"]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.fixture
def adaptive(live_gateway: LiveGateway) -> Iterator[Adaptive]:
    client = Adaptive(base_url=live_gateway.base_url, api_key=live_gateway.api_key)
    client.set_default_project("proj")
    yield client
    client.close()


def test_sdk_sync_call_with_labels_session_and_user_is_logged(
    adaptive: Adaptive, live_gateway: LiveGateway
) -> None:
    session_id = uuid.uuid4()
    user = uuid.uuid4()
    response = adaptive.chat.create(
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        model="m1",
        labels={"team": "a", "env": "test"},
        session_id=session_id,
        user=user,
        temperature=0.2,
        max_tokens=16,
    )
    choice = response.choices[0]
    assert choice.message.content == "echo: hello"
    assert choice.model == "proj/m1"
    assert response.session_id == session_id
    found = stored_interaction(live_gateway.database_url, choice.completion_id)
    assert found is not None, "the interaction was not logged"
    row, labels = found
    assert labels == {"team": "a", "env": "test"}
    assert row.session_id == session_id
    assert row.user_id == str(user)
    assert row.completion == "echo: hello"
    assert row.params["temperature"] == 0.2
    assert row.replica == live_gateway.upstream_url


def test_sdk_store_false_answers_but_logs_nothing(
    adaptive: Adaptive, live_gateway: LiveGateway
) -> None:
    response = adaptive.chat.create(messages=[{"role": "user", "content": "secret"}], store=False)
    assert response.choices[0].message.content == "echo: secret"
    completion_id = response.choices[0].completion_id
    assert stored_interaction(live_gateway.database_url, completion_id, wait=1.0) is None


def test_sdk_streaming_with_usage(adaptive: Adaptive) -> None:
    chunks = list(
        adaptive.chat.create(
            messages=[{"role": "user", "content": "stream me please"}],
            stream=True,
            stream_include_usage=True,
        )
    )
    text = "".join(chunk.choices[0].delta.content for chunk in chunks if chunk.choices)
    assert text == "echo: stream me please"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert len({chunk.session_id for chunk in chunks}) == 1


def test_sdk_async_call_and_stream(live_gateway: LiveGateway) -> None:
    async def run() -> tuple[str, str]:
        client = AsyncAdaptive(base_url=live_gateway.base_url, api_key=live_gateway.api_key)
        try:
            response = await client.chat.create(
                messages=[{"role": "user", "content": "async"}], project="proj"
            )
            stream = await client.chat.create(
                messages=[{"role": "user", "content": "async stream"}], project="proj", stream=True
            )
            parts = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
        finally:
            await client.close()
        return response.choices[0].message.content, "".join(parts)

    assert asyncio.run(run()) == ("echo: async", "echo: async stream")


@pytest.mark.parametrize(
    "image_part",
    [
        {"type": "image_url", "image_url": PNG_URI},
        {"type": "image_url", "image_url": {"url": PNG_URI}},
    ],
    ids=["flat", "nested"],
)
def test_sdk_vision_in_both_forms_is_logged_as_an_attachment(
    adaptive: Adaptive, live_gateway: LiveGateway, image_part: dict[str, Any]
) -> None:
    content = [{"type": "text", "text": "what is this"}, image_part]
    response = adaptive.chat.create(messages=[{"role": "user", "content": content}])
    assert response.choices[0].message.content == "saw 1 image. echo: what is this"
    found = stored_interaction(live_gateway.database_url, response.choices[0].completion_id)
    assert found is not None
    logged_part = found[0].messages[0]["content"][1]
    assert logged_part["image_url"]["url"].startswith("attachment://sha256/")


def test_sdk_streaming_request_failing_before_first_byte_shows_the_message(
    adaptive: Adaptive,
) -> None:
    from loguru import logger
    from pydantic import ValidationError

    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        with pytest.raises(ValidationError):
            list(
                adaptive.chat.create(
                    messages=[{"role": "user", "content": "x"}], model="missing", stream=True
                )
            )
    finally:
        logger.remove(sink)
    shown = "\n".join(warnings)
    assert "Interlog error 404 not_found: model 'missing' does not exist" in shown
    assert "interlog models add missing" in shown


def test_sdk_non_streaming_error_shows_the_message(adaptive: Adaptive) -> None:
    with pytest.raises(Exception, match="Client error 404") as raised:
        adaptive.chat.create(messages=[{"role": "user", "content": "x"}], model="m9")
    assert "`interlog models add m9 --upstream URL`" in str(raised.value)
