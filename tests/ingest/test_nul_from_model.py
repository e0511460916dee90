"""A model that writes U+0000: the client gets it as sent, and the interaction is stored.

Clients cannot send NUL (ingest/limits.py refuses it), but upstream models do emit it. PostgreSQL
cannot hold it in text or jsonb and refused the writer's whole COPY, so the interaction was set
aside in the journal's rejected file instead of the store. Now it is stored, as U+FFFD there.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.servers import chat_answer, fixed_upstream, gateway, seed_project, stored_interaction

TEXT = "before\x00after"


def test_a_completion_with_nul_reaches_the_client_and_the_store(
    database_url: str, tmp_path: Path
) -> None:
    with fixed_upstream(chat_answer(TEXT)) as (upstream, _):
        api_key, project, _ = seed_project(database_url, upstream_urls=[upstream])
        with gateway(database_url, tmp_path) as base_url:
            headers = {"Authorization": f"Bearer {api_key}"}
            body = {"model": project, "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(f"{base_url}/api/v1/chat/completions", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            [choice] = answer.json()["choices"]
            assert choice["message"]["content"] == TEXT  # the answer is not altered

            stored = stored_interaction(database_url, choice["completion_id"])
            status = httpx.get(f"{base_url}/api/v1/status", headers=headers).json()
    assert stored is not None, f"not stored; writer: {status.get('writer')}"
    row, _ = stored
    kept = "\x00" if database_url.startswith("sqlite") else "\ufffd"
    assert row.completion == TEXT.replace("\x00", kept)
    assert status["writer"]["failed"] == 0
