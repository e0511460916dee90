"""Upstream answers that break the chat schema: a 502 naming what is wrong (not a 500), a stream
that ends with its error event and [DONE] (not a cut connection), each logged with that
message; an upstream string longer than its column is stored cut and marked. Loopback upstreams
answering each case; the real `openai` package and raw HTTP as clients."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from ingest.upstream_answer import chunk_problem, completion_problem
from tests.servers import (
    LiveGateway,
    demo_upstream,
    fixed_upstream,
    live_gateway,
    logged_row,
    routed_model,
    streaming_upstream,
)

__all__ = ["demo_upstream", "live_gateway"]


def _completion(**overrides: Any) -> dict[str, Any]:
    answer = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return {**answer, **overrides}


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        (_completion(choices="oops"), "choices is a string ('oops'), not a list"),
        (_completion(choices=[None]), "choices[0] is null"),
        (_completion(choices=[{"message": "hi"}]), "choices[0].message is a string"),
        (_completion(usage={"prompt_tokens": "12"}), "usage.prompt_tokens is a string"),
        (_completion(usage={"completion_tokens": 1e20}), "usage.completion_tokens is a number"),
        (_completion(usage={"prompt_tokens": 2**31}), "outside 0..2147483647"),
        (_completion(usage=[1, 2]), "usage is a list"),
    ],
)
def test_a_completion_off_the_schema_is_a_502_naming_it(
    live_gateway: LiveGateway, answer: dict[str, Any], named: str
) -> None:
    with fixed_upstream(answer) as (url, _):
        model = routed_model(live_gateway, url, prefix="bad")
        client = openai.OpenAI(
            base_url=live_gateway.api_url, api_key=live_gateway.api_key, max_retries=0
        )
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 502
    error = refused.value.response.json()["error"]
    assert error["code"] == "upstream_bad_answer"
    assert "does not match the chat schema" in error["message"] and named in error["message"]
    row = logged_row(live_gateway.database_url, "error", named)
    assert row is not None and row.status == "error"
    # The connection stays usable: the next request on it is answered.
    again = client.chat.completions.create(
        model="proj/m1", messages=[{"role": "user", "content": "still there?"}]
    )
    assert again.choices[0].message.content == "echo: still there?"


def _chunk(**fields: Any) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion.chunk", **fields}).encode()


def test_a_stream_chunk_off_the_schema_ends_the_stream_with_its_error_and_done(
    live_gateway: LiveGateway,
) -> None:
    good = _chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}])
    bad = _chunk(choices=[{"index": 0, "delta": "lo"}])
    with streaming_upstream([good, bad, b"[DONE]"]) as url:
        model = routed_model(live_gateway, url, prefix="badstream")
        response = httpx.post(
            f"{live_gateway.api_url}/chat/completions",
            json={"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {live_gateway.api_key}"},
        )
        client = openai.OpenAI(
            base_url=live_gateway.api_url, api_key=live_gateway.api_key, max_retries=0
        )
        stream = client.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "x"}]
        )
        seen: list[str | None] = []
        with pytest.raises(openai.APIError, match="does not match the chat schema"):
            for chunk in stream:
                seen.extend(choice.delta.content for choice in chunk.choices)
    assert seen == ["Hel"]  # what was delivered before the bad chunk
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "Hel"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "upstream_bad_answer"
    assert "choices[0].delta is a string" in error["message"]
    assert events[-1] == "[DONE]"
    row = logged_row(live_gateway.database_url, "error", "choices[0].delta is a string")
    assert row is not None and row.status == "error" and row.completion == "Hel"


def test_a_finish_reason_longer_than_its_column_is_stored_cut_and_marked(
    live_gateway: LiveGateway,
) -> None:
    reason = "stop_because_" + "x" * 100
    answer = _completion(
        choices=[
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": reason}
        ]
    )
    with fixed_upstream(answer) as (url, _):
        model = routed_model(live_gateway, url, prefix="longreason")
        client = openai.OpenAI(
            base_url=live_gateway.api_url, api_key=live_gateway.api_key, max_retries=0
        )
        delivered = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}]
        )
    assert delivered.choices[0].finish_reason == reason  # the client gets what the model said
    row = logged_row(live_gateway.database_url, "finish_reason", "stop_because_")
    assert row is not None and row.status == "ok"
    assert row.finish_reason == reason[:63] + "…"


def test_schema_checks_accept_what_servers_send() -> None:
    assert completion_problem(_completion()) is None
    assert completion_problem(_completion(usage=None, choices=[])) is None
    parts = [{"index": 0, "message": {"content": [{"type": "text", "text": "hi"}]}}]
    assert completion_problem(_completion(choices=parts)) is None
    assert chunk_problem({"choices": [], "usage": {"prompt_tokens": 5}}) is None
    assert chunk_problem({"choices": [{"index": 0, "delta": {}, "finish_reason": None}]}) is None
    assert chunk_problem({"choices": [{"index": True}]}) is not None
