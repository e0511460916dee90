"""Read-your-writes through the real gateway: a metric posted the moment a streamed completion
ends succeeds, although the interaction is still in the journal (the writer waits 600 s between
batches here, so only the feedback path's `ensure_written` can have stored it in time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from adaptive_sdk import Adaptive

from store.db import create_store_engine
from store.metrics import create_metric
from store.readback import find_interaction, get_interaction
from tests.servers import LiveGateway, gateway_with_demo


@pytest.fixture(scope="module")
def slow_writer_gateway(
    _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    from tests.servers import copy_sqlite_template

    workdir = tmp_path_factory.mktemp("stream-feedback")
    database_url = copy_sqlite_template(_sqlite_template, workdir)
    with gateway_with_demo(database_url, workdir, env={"INTERLOG_WRITER_INTERVAL": "600"}) as live:
        engine = create_store_engine(database_url)
        create_metric(engine, project_key=live.project_key, key="quality")
        create_metric(engine, project_key=live.project_key, key="thumbs", kind="bool")
        engine.dispose()
        yield live


def _is_stored(live: LiveGateway, completion_id: str) -> bool:
    engine = create_store_engine(live.database_url)
    try:
        return find_interaction(engine, completion_id=completion_id, project_id=None) is not None
    finally:
        engine.dispose()


def _stream_completion_id(live: LiveGateway) -> str:
    client = openai.OpenAI(base_url=live.api_url, api_key=live.api_key, max_retries=0)
    completion_ids = set()
    for chunk in client.chat.completions.create(
        model=live.project_key,
        messages=[{"role": "user", "content": "tell me four words"}],
        stream=True,
    ):
        for choice in chunk.choices:
            completion_ids.add((choice.model_extra or {})["completion_id"])
    [completion_id] = completion_ids
    assert not _is_stored(live, completion_id), "the writer stored it already: no race to test"
    return str(completion_id)


def test_sdk_metric_right_after_a_stream_succeeds(slow_writer_gateway: LiveGateway) -> None:
    live = slow_writer_gateway
    completion_id = _stream_completion_id(live)
    sdk = Adaptive(base_url=live.base_url, api_key=live.api_key)
    output = sdk.feedback.log_metric(value=True, completion_id=completion_id, feedback_key="thumbs")
    engine = create_store_engine(live.database_url)
    try:
        view = get_interaction(engine, completion_id=completion_id, project_id=None)
    finally:
        engine.dispose()
    assert view.completion and view.completion.startswith("echo:")
    assert [(s.id, s.value) for s in view.scores] == [(output.feedback_id, 1.0)]


def test_rest_metric_right_after_a_stream_succeeds(slow_writer_gateway: LiveGateway) -> None:
    live = slow_writer_gateway
    completion_id = _stream_completion_id(live)
    response = httpx.post(
        f"{live.base_url}/api/v1/feedback",
        headers={"Authorization": f"Bearer {live.api_key}"},
        json={"completion_id": completion_id, "metric": "quality", "value": 0.5},
        timeout=30,
    )
    assert response.status_code == 201, response.text
