"""Tool calls are first-class: an answer's `tool_calls` (plain, or assembled from a stream's
deltas) are stored, read back over REST and GraphQL, in the DataFrame, and in the JSONL
fine-tuning export with the request's tools and earlier tool turns intact; `content: null`
stays null. The real `openai` package against a live gateway, loopback upstreams answering
with tool calls."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import httpx
import openai
import pandas as pd
from openai.types.chat import ChatCompletionChunk
from openai.types.chat import ChatCompletionMessageFunctionToolCall as FunctionCall

from store import analytics
from store.db import create_store_engine
from store.filters import Filters
from store.keys import Principal
from tests.servers import (
    LiveGateway,
    demo_upstream,
    fixed_upstream,
    live_gateway,
    routed_model,
    stored_interaction,
    streaming_upstream,
)

__all__ = ["demo_upstream", "live_gateway"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    },
    {
        "id": "call_2",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    },
]
#: A conversation that already went through one tool call: the assistant's call, the answer.
EARLIER = [
    {"role": "system", "content": "You may call tools."},
    {"role": "user", "content": "Weather in Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [{**CALLS[0], "id": "call_0"}]},
    {"role": "tool", "tool_call_id": "call_0", "content": '{"rome": "sunny"}'},
    {"role": "user", "content": "And in Paris and Oslo?"},
]


def _client(live: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api_url, api_key=live.api_key, max_retries=0)


def _tool_answer() -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": CALLS},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
    }


def _stream_events() -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return json.dumps(
            {"id": "x", "object": "chat.completion.chunk", "choices": [choice]}
        ).encode()

    def call_delta(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    head = {"role": "assistant", "content": None}
    return [
        chunk({**head, **call_delta(0, id="call_1", type="function",
                                    function={"name": "get_weather", "arguments": ""})}),
        chunk(call_delta(0, function={"arguments": '{"city": '})),
        chunk(call_delta(0, function={"arguments": '"Paris"}'})),
        chunk(call_delta(1, id="call_2", type="function",
                         function={"name": "get_weather", "arguments": '{"city": "Oslo"}'})),
        chunk({}, "tool_calls"),
        b"[DONE]",
    ]  # fmt: skip


def test_a_plain_answer_with_tool_calls_is_stored_and_read_back(live_gateway: LiveGateway) -> None:
    with fixed_upstream(_tool_answer()) as (url, _):
        model = routed_model(live_gateway, url, prefix="tools")
        response = _client(live_gateway).chat.completions.create(
            model=model,
            messages=EARLIER,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            metadata={"case": "tools-plain"},
        )
    message = response.choices[0].message
    assert message.content is None  # null stays null on the wire
    calls = [call for call in message.tool_calls or [] if isinstance(call, FunctionCall)]
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_1", "get_weather", '{"city": "Paris"}'),
        ("call_2", "get_weather", '{"city": "Oslo"}'),
    ]
    completion_id = (response.choices[0].model_extra or {})["completion_id"]
    found = stored_interaction(live_gateway.database_url, completion_id)
    assert found is not None
    row, _labels = found
    assert row.tool_calls == CALLS
    assert row.finish_reason == "tool_calls"
    assert row.messages[2]["tool_calls"][0]["id"] == "call_0"  # the earlier turns, intact
    assert row.messages[3] == EARLIER[3]

    headers = {"Authorization": f"Bearer {live_gateway.api_key}"}
    rest = httpx.get(f"{live_gateway.api_url}/interactions/{completion_id}", headers=headers)
    assert rest.status_code == 200, rest.text
    assert rest.json()["tool_calls"] == CALLS
    query = 'query($id: UUID!) { completion(project: "proj", id: $id) { completion toolCalls } }'
    graphql = httpx.post(
        f"{live_gateway.base_url}/api/graphql",
        json={"query": query, "variables": {"id": completion_id}},
        headers=headers,
    )
    assert graphql.status_code == 200, graphql.text
    assert graphql.json()["data"]["completion"]["toolCalls"] == CALLS


def test_a_streamed_answer_has_its_tool_calls_assembled(live_gateway: LiveGateway) -> None:
    with streaming_upstream(_stream_events()) as url:
        model = routed_model(live_gateway, url, prefix="toolstream")
        stream = _client(live_gateway).chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            stream=True,
        )
        chunks = [cast(ChatCompletionChunk, chunk) for chunk in stream]
    first = chunks[0].choices[0]
    assert first.delta.content is None  # null stays null beside tool calls
    completion_id = (first.model_extra or {})["completion_id"]
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or []
        if call.index == 0 and call.function is not None
    )
    assert arguments == '{"city": "Paris"}'  # what the client assembles, as the log does
    found = stored_interaction(live_gateway.database_url, completion_id)
    assert found is not None
    row, _labels = found
    assert row.tool_calls == CALLS
    assert row.finish_reason == "tool_calls"


def test_tool_calls_in_the_dataframe_and_the_jsonl_export(live_gateway: LiveGateway) -> None:
    with fixed_upstream(_tool_answer()) as (url, _):
        model = routed_model(live_gateway, url, prefix="toolexport")
        response = _client(live_gateway).chat.completions.create(
            model=model,
            messages=EARLIER,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            metadata={"case": "tools-export"},
        )
    completion_id = (response.choices[0].model_extra or {})["completion_id"]
    assert stored_interaction(live_gateway.database_url, completion_id) is not None
    headers = {"Authorization": f"Bearer {live_gateway.api_key}"}
    deadline = time.monotonic() + 30
    while True:  # the analytics store takes the new interaction within a few seconds
        export = httpx.get(
            f"{live_gateway.api_url}/interactions/export",
            params={"format": "jsonl", "label": "case=tools-export"},
            headers=headers,
        )
        assert export.status_code == 200, export.text
        if export.text or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    (line,) = [json.loads(text) for text in export.text.splitlines()]
    assert line["tools"] == [WEATHER_TOOL]
    assert line["messages"] == [
        {"role": "system", "content": "You may call tools."},
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "tool_calls": [{**CALLS[0], "id": "call_0"}]},
        {"role": "tool", "content": '{"rome": "sunny"}', "tool_call_id": "call_0"},
        {"role": "user", "content": "And in Paris and Oslo?"},
        {"role": "assistant", "tool_calls": CALLS},
    ]

    engine = create_store_engine(live_gateway.database_url)
    try:
        frame: pd.DataFrame = analytics.interactions(
            engine, Filters(labels=["case=tools-export"]), scope=Principal(is_admin=True)
        )
    finally:
        engine.dispose()
    assert json.loads(str(frame.loc[0, "tool_calls"])) == CALLS
