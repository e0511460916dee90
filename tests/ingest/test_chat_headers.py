"""Labels and session from headers (X-Interlog-Labels, X-Interlog-Session-Id), for clients that
keep `metadata` to themselves: the real langchain-openai and openai packages against a live
gateway, and the stored rows."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from sqlmodel import Session, select

from store.db import create_store_engine
from store.models import Interaction
from tests.servers import LiveGateway, demo_upstream, live_gateway, stored_interaction

__all__ = ["demo_upstream", "live_gateway"]


def _stored_in_session(live: LiveGateway, session_id: uuid.UUID) -> tuple[Any, dict[str, str]]:
    """The one interaction of SESSION_ID, with its labels, once written."""
    engine = create_store_engine(live.database_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            with Session(engine) as session:
                row = session.exec(
                    select(Interaction).where(Interaction.session_id == session_id)
                ).first()
            if row is not None:
                break
            assert time.monotonic() < deadline, f"nothing stored in session {session_id}"
            time.sleep(0.1)
    finally:
        engine.dispose()
    found = stored_interaction(live.database_url, str(row.completion_id))
    assert found is not None
    return found


def test_langchain_default_headers_label_the_interaction(live_gateway: LiveGateway) -> None:
    """ChatOpenAI never sends model_kwargs' metadata; its default_headers reach the log."""
    session_id = uuid.uuid4()
    chat = ChatOpenAI(
        model="proj/m1",
        base_url=live_gateway.api_url,
        api_key=live_gateway.api_key,
        max_retries=0,
        default_headers={
            "X-Interlog-Labels": json.dumps({"team": "search", "app": "lc"}),
            "X-Interlog-Session-Id": str(session_id),
        },
    )
    answer = chat.invoke("hello there")
    assert answer.content == "echo: hello there"
    row, labels = _stored_in_session(live_gateway, session_id)
    assert labels == {"team": "search", "app": "lc"}
    assert row.session_id == session_id

    # Per call, in the body (README): merged over the client's header labels.
    per_call = uuid.uuid4()
    chat.invoke("again", extra_body={"labels": {"step": "draft"}, "session_id": str(per_call)})
    _row, labels = _stored_in_session(live_gateway, per_call)
    assert labels == {"team": "search", "app": "lc", "step": "draft"}


def test_body_labels_win_over_header_labels(live_gateway: LiveGateway) -> None:
    client = openai.OpenAI(base_url=live_gateway.api_url, api_key=live_gateway.api_key)
    body_session = uuid.uuid4()
    response = client.chat.completions.create(
        model="proj/m1",
        messages=[{"role": "user", "content": "hi"}],
        metadata={"team": "from-metadata", "tier": "gold"},
        extra_body={"labels": {"tier": "from-labels"}, "session_id": str(body_session)},
        extra_headers={
            "X-Interlog-Labels": json.dumps({"team": "from-header", "env": "prod"}),
            "X-Interlog-Session-Id": str(uuid.uuid4()),  # the body's session_id wins
        },
    )
    completion_id = (response.choices[0].model_extra or {})["completion_id"]
    found = stored_interaction(live_gateway.database_url, completion_id)
    assert found is not None
    row, labels = found
    assert labels == {"team": "from-metadata", "tier": "from-labels", "env": "prod"}
    assert row.session_id == body_session


@pytest.mark.parametrize(
    ("headers", "param", "fragment"),
    [
        ({"X-Interlog-Labels": "team=a"}, "X-Interlog-Labels", "JSON object of strings"),
        ({"X-Interlog-Labels": '{"n": 1}'}, "X-Interlog-Labels", "JSON object of strings"),
        ({"X-Interlog-Labels": '["a"]'}, "X-Interlog-Labels", "JSON object of strings"),
        ({"X-Interlog-Labels": '{"": "a"}'}, "X-Interlog-Labels", "may not be empty"),
        (
            {"X-Interlog-Labels": json.dumps({f"k{i}": "v" for i in range(200)})},
            "X-Interlog-Labels",
            "labels, at most",
        ),
        ({"X-Interlog-Session-Id": "not-a-uuid"}, "X-Interlog-Session-Id", "must be a UUID"),
    ],
)
def test_a_malformed_header_is_a_400_naming_it(
    live_gateway: LiveGateway, headers: dict[str, str], param: str, fragment: str
) -> None:
    response = httpx.post(
        f"{live_gateway.api_url}/chat/completions",
        json={"model": "proj/m1", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {live_gateway.api_key}", **headers},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert fragment in error["message"]
