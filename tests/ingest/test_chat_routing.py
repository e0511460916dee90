"""Routing through a real gateway: default and explicit model, A/B weights, stickiness, replicas."""

from __future__ import annotations

import random
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from store.abtests import create_ab_test
from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.keys import create_api_key
from tests.servers import copy_sqlite_template, demo_model, gateway, stored_interaction


class Routed(NamedTuple):
    base_url: str
    key: str  # project "proj"
    ab_key: str  # project "abp" (A/B test alpha 3 : beta 1, no default)
    admin_key: str
    client: httpx.Client
    database_url: str


@pytest.fixture(scope="module")
def routed(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    workdir = tmp_path_factory.mktemp("routing")
    database_url = copy_sqlite_template(_sqlite_template, workdir)
    with ExitStack() as stack:
        alpha = stack.enter_context(demo_model(workdir, name="alpha"))
        beta = stack.enter_context(demo_model(workdir, name="beta"))
        # A port held bound but never listening: connections are refused, and no other server
        # of the suite can take it meanwhile (a port only chosen free was, once).
        held = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        held.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{held.getsockname()[1]}/v1"
        engine = create_store_engine(database_url)
        for project in ("proj", "abp", "nodefault"):
            create_project(engine, key=project)
        models: dict[str, tuple[list[str], dict[str, Any]]] = {
            "m1": ([alpha], {"multimodal": True}),
            "m2": ([beta], {}),
            "lonely": ([alpha], {}),
            "replicated": ([alpha, beta], {}),
            "halfdead": ([dead, alpha], {}),
            "alldead": ([dead], {}),
            "slow": ([alpha], {"timeout": 0.5}),
        }
        for key, (urls, options) in models.items():
            create_model(engine, key=key, upstream_urls=urls, **options)
        attach_model(engine, project_key="proj", model_key="m1", default=True)
        for key in ("m2", "replicated", "halfdead", "alldead", "slow"):
            attach_model(engine, project_key="proj", model_key=key)
        attach_model(engine, project_key="abp", model_key="m1")
        attach_model(engine, project_key="abp", model_key="m2")
        attach_model(engine, project_key="nodefault", model_key="m1")
        create_ab_test(
            engine,
            project_key="abp",
            key="alpha-vs-beta",
            variants=[{"model": "m1", "weight": 3}, {"model": "m2", "weight": 1}],
        )
        keys = Routed(
            client=stack.enter_context(httpx.Client(timeout=30)),
            database_url=database_url,
            base_url="",
            key=create_api_key(engine, project_key="proj").secret,
            ab_key=create_api_key(engine, project_key="abp").secret,
            admin_key=create_api_key(engine, admin=True).secret,
        )
        engine.dispose()
        # Many requests here: the journal need not fsync each one (logging is still on).
        env = {"INTERLOG_MAX_BODY_BYTES": str(12 * 1024 * 1024), "INTERLOG_JOURNAL_FSYNC": "never"}
        base_url = stack.enter_context(gateway(database_url, workdir, env=env))
        yield keys._replace(base_url=base_url)


def chat(
    routed: Routed, model: str, text: str = "[whoami]", *, key: str | None = None, **extra: Any
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    headers = {"Authorization": f"Bearer {key or routed.key}"}
    return routed.client.post(
        f"{routed.base_url}/api/v1/chat/completions", json=body, headers=headers
    )


def answer_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_project_alone_routes_to_the_default_model(routed: Routed) -> None:
    response = chat(routed, "proj")
    assert answer_of(response) == "I am alpha"
    assert response.json()["model"] == "proj/m1"


def test_explicit_model_routes_to_that_model(routed: Routed) -> None:
    response = chat(routed, "proj/m2")
    assert answer_of(response) == "I am beta"
    assert response.json()["choices"][0]["model"] == "proj/m2"


def test_admin_key_may_use_any_project(routed: Routed) -> None:
    assert answer_of(chat(routed, "abp/m2", key=routed.admin_key)) == "I am beta"


def test_ab_test_shares_traffic_by_weight(routed: Routed) -> None:
    # Fixed session ids (so the test is deterministic) and many of them: the split must be
    # close to the 3:1 weights (binomial sd at n=400 is 2.2 points; we allow 8).
    rng = random.Random(1234)
    counts: Counter[str] = Counter()
    client = routed.client
    if True:
        for _ in range(400):
            body = {
                "model": "abp",
                "messages": [{"role": "user", "content": "[whoami]"}],
                "session_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            }
            response = client.post(
                f"{routed.base_url}/api/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {routed.ab_key}"},
            )
            counts[answer_of(response)] += 1
    share = counts["I am alpha"] / 400
    assert counts.keys() == {"I am alpha", "I am beta"}
    assert 0.67 <= share <= 0.83, counts


def test_the_ab_test_and_variant_are_logged_with_the_interaction(routed: Routed) -> None:
    response = chat(routed, "abp", key=routed.ab_key, labels={"case": "ab"})
    answer = answer_of(response)
    found = stored_interaction(routed.database_url, response.json()["choices"][0]["completion_id"])
    assert found is not None
    row, labels = found
    assert row.ab_test_id is not None
    assert row.ab_variant == {"I am alpha": "m1", "I am beta": "m2"}[answer]
    assert labels == {"case": "ab"}


def test_ab_variant_is_sticky_per_session(routed: Routed) -> None:
    for _ in range(5):
        session_id = str(uuid.uuid4())
        answers = {
            answer_of(chat(routed, "abp", key=routed.ab_key, session_id=session_id))
            for _ in range(8)
        }
        assert len(answers) == 1


def test_requests_without_session_spread_over_replicas(routed: Routed) -> None:
    answers = Counter(answer_of(chat(routed, "proj/replicated")) for _ in range(20))
    assert answers["I am alpha"] >= 5 and answers["I am beta"] >= 5


def test_a_session_always_reaches_the_same_replica(routed: Routed) -> None:
    seen = set()
    for _ in range(12):
        session_id = str(uuid.uuid4())
        answers = {
            answer_of(chat(routed, "proj/replicated", session_id=session_id)) for _ in range(6)
        }
        assert len(answers) == 1
        seen |= answers
    assert seen == {"I am alpha", "I am beta"}  # and sessions do use both replicas


def test_a_replica_that_refuses_the_connection_is_skipped(routed: Routed) -> None:
    for index in range(6):
        extra = {"session_id": str(uuid.uuid4())} if index % 2 else {}
        assert answer_of(chat(routed, "proj/halfdead", **extra)) == "I am alpha"
    streamed = chat(routed, "proj/halfdead", "hi", stream=True)
    assert streamed.status_code == 200
    assert streamed.text.endswith("data: [DONE]\n\n")
