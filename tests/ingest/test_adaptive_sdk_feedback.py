"""The real adaptive-sdk against a live server: feedback keys, log_metric, log_preference,
interactions.list (every filter, grouped by model) and interactions.get, over GraphQL and REST."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from adaptive_sdk import Adaptive, AsyncAdaptive
from adaptive_sdk.error_handling import AdaptiveEntityNotFoundError

from store.catalog import get_model
from store.readback import get_interaction
from tests.ingest.feedback_harness import (
    ADMIN_KEY,
    LiveStore,
    SeededProject,
    live_store,
    new_project,
)
from tests.interaction_seeds import log_interaction, minutes_ago

__all__ = ["live_store"]


_CLIENTS: dict[tuple[str, str], Adaptive] = {}


def _sdk(live: LiveStore, seeded: SeededProject) -> Adaptive:
    """One SDK client per project and server (building a client takes a noticeable moment)."""
    if (live.base_url, seeded.key) not in _CLIENTS:
        sdk = Adaptive(base_url=live.base_url, api_key=seeded.secret)
        sdk.set_default_project(seeded.key)
        _CLIENTS[(live.base_url, seeded.key)] = sdk
    return _CLIENTS[(live.base_url, seeded.key)]


def test_register_get_and_list_feedback_keys(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    sdk = _sdk(live_store, seeded)
    created = sdk.feedback.register_key(
        seeded.key, "latency", kind="scalar", scoring_type="lower_is_better",
        description="seconds to answer",
    )  # fmt: skip
    assert (created.key, created.kind.value, created.scoring_type.value) == (
        "latency", "SCALAR", "LOWER_IS_BETTER",
    )  # fmt: skip
    assert created.description == "seconds to answer"
    assert created.has_direct_scores is False
    described = sdk.feedback.get_key(seeded.key, "thumbs")
    assert described is not None and described.kind.value == "BOOL"
    assert sdk.feedback.get_key(seeded.key, "nope") is None
    listed = sdk.feedback.list_keys()
    assert sorted(m.key or "" for m in listed) == ["latency", "quality", "thumbs"]
    assert {p.key for m in listed for p in m.projects} == {seeded.key}
    with pytest.raises(Exception, match="already exists"):
        sdk.feedback.register_key(seeded.key, "latency", kind="bool")


@pytest.mark.parametrize(
    ("metric", "value", "stored"),
    [("quality", 0.75, 0.75), ("quality", 4, 4.0), ("thumbs", True, 1.0), ("thumbs", False, 0.0)],
)
def test_log_metric_stores_floats_ints_and_bools_with_details(
    live_store: LiveStore, metric: str, value: Any, stored: float
) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project)
    output = _sdk(live_store, seeded).feedback.log_metric(
        value=value, completion_id=str(completion_id), feedback_key=metric, details="good answer"
    )
    view = get_interaction(live_store.engine, completion_id=completion_id, project_id=seeded.id)
    assert [(s.id, s.value, s.details) for s in view.scores] == [
        (output.feedback_id, stored, "good answer")
    ]


def test_log_metric_of_the_wrong_kind_or_unknown_key_fails(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = str(log_interaction(live_store.engine, seeded.project))
    sdk = _sdk(live_store, seeded)
    with pytest.raises(Exception, match="bool metric"):
        sdk.feedback.log_metric(value=0.5, completion_id=completion_id, feedback_key="thumbs")
    with pytest.raises(AdaptiveEntityNotFoundError):
        sdk.feedback.log_metric(value=1, completion_id=completion_id, feedback_key="unknown")


def test_log_metric_on_unknown_or_foreign_completion_is_entity_not_found(
    live_store: LiveStore,
) -> None:
    mine, theirs = new_project(live_store), new_project(live_store)
    foreign = log_interaction(live_store.engine, theirs.project)
    sdk = _sdk(live_store, mine)
    for completion_id in (uuid.uuid4(), foreign):
        with pytest.raises(AdaptiveEntityNotFoundError):
            sdk.feedback.log_metric(value=1, completion_id=completion_id, feedback_key="quality")
    view = get_interaction(live_store.engine, completion_id=foreign, project_id=theirs.id)
    assert view.scores == []


def test_async_client_logs_metrics_and_reads_back(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    completion_id = log_interaction(live_store.engine, seeded.project, labels={"k": "v"})

    async def scenario() -> tuple[Any, Any]:
        sdk = AsyncAdaptive(base_url=live_store.base_url, api_key=seeded.secret)
        sdk.set_default_project(seeded.key)
        output = await sdk.feedback.log_metric(
            value=1, completion_id=str(completion_id), feedback_key="thumbs"
        )
        return output, await sdk.interactions.get(str(completion_id))

    output, interaction = asyncio.run(scenario())
    assert interaction is not None
    assert [(s.id, s.value) for s in interaction.direct_scores] == [(str(output.feedback_id), 1.0)]
    assert [(label.key, label.value) for label in interaction.labels] == [("k", "v")]


def test_log_preference_between_two_completion_ids(live_store: LiveStore) -> None:
    seeded = new_project(live_store)
    first = log_interaction(live_store.engine, seeded.project)
    second = log_interaction(live_store.engine, seeded.project)
    sdk = _sdk(live_store, seeded)
    output = sdk.feedback.log_preference(
        "quality", preferred_completion=str(first), other_completion=str(second)
    )
    interaction = sdk.interactions.get(str(second))
    assert interaction is not None
    [comparison] = interaction.comparison_scores
    assert comparison.id == str(output.comparison_id)
    assert comparison.prefered_completion is not None
    assert comparison.prefered_completion.id == str(first)
    assert comparison.metric is not None and comparison.metric.key == "quality"


def test_log_preference_between_two_texts(live_store: LiveStore) -> None:
    seeded = new_project(live_store, models=("m1", "m2"))
    sdk = _sdk(live_store, seeded)
    output = sdk.feedback.log_preference(
        "quality",
        preferred_completion={"text": "A", "model": "m1"},
        other_completion={"text": "B", "model": "m2"},
        messages=[{"role": "user", "content": "q"}],
    )
    listed = sdk.interactions.list(filters={"models": ["m2"]})
    [interaction] = listed.nodes
    assert interaction.completion == "B" and interaction.source.value == "OFFLINE"
    assert [c.id for c in interaction.comparison_scores] == [str(output.comparison_id)]
    assert [(m.role, m.content) for m in interaction.chat_messages] == [("user", "q")]


@pytest.fixture(scope="module")
def history(live_store: LiveStore) -> tuple[SeededProject, dict[str, uuid.UUID], uuid.UUID]:
    seeded = new_project(live_store, models=("m1", "m2"))
    m1, m2 = get_model(live_store.engine, key="m1").id, get_model(live_store.engine, key="m2").id
    session = uuid.uuid4()
    ids = {
        "old": log_interaction(
            live_store.engine, seeded.project, model_id=m1, labels={"team": "a"},
            created_at=minutes_ago(120), user_id="alice",
        ),
        "mid": log_interaction(
            live_store.engine, seeded.project, model_id=m2, labels={"team": "b"},
            created_at=minutes_ago(60), session_id=session,
        ),
        "new": log_interaction(
            live_store.engine, seeded.project, model_id=m1, labels={"env": "prod"},
            created_at=minutes_ago(1), session_id=session,
        ),
    }  # fmt: skip
    sdk = _sdk(live_store, seeded)
    for name, value in (("old", 0.2), ("mid", 0.9), ("new", 0.4)):
        sdk.feedback.log_metric(value=value, completion_id=ids[name], feedback_key="quality")
    return seeded, ids, session


def _ms(minutes: float) -> int:
    return int(minutes_ago(minutes).timestamp() * 1000)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (None, ["new", "mid", "old"]),
        ({"models": ["m1"]}, ["new", "old"]),
        ({"timerange": {"from_": "T-90", "to": "T-10"}}, ["mid"]),
        ({"labels": [{"key": "team", "value": ["a", "b"]}]}, ["mid", "old"]),
        ({"labels": [{"key": "env"}]}, ["new"]),
        ({"labels": [{"key": "team", "value": ["b"]}], "models": ["m2"]}, ["mid"]),
        # The SDK's own input model drops `userId` before sending (README, known limitations):
        # the server receives an empty condition, which matches everything.
        ({"user_id": "alice"}, ["new", "mid", "old"]),
    ],
)
def test_interactions_list_filters(
    live_store: LiveStore,
    history: tuple[SeededProject, dict[str, uuid.UUID], uuid.UUID],
    filters: Any,
    expected: list[str],
) -> None:
    seeded, ids, _ = history
    if filters and "timerange" in filters:
        filters = {"timerange": {"from_": _ms(90), "to": _ms(10)}}
    listed = _sdk(live_store, seeded).interactions.list(filters=filters)
    assert [node.id for node in listed.nodes] == [str(ids[name]) for name in expected]
    assert listed.total_count == len(expected)


def test_interactions_list_by_session_completion_and_order(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID], uuid.UUID]
) -> None:
    seeded, ids, session = history
    sdk = _sdk(live_store, seeded)
    by_session = sdk.interactions.list(filters={"session_id": str(session)})
    assert [n.id for n in by_session.nodes] == [str(ids["new"]), str(ids["mid"])]
    by_id = sdk.interactions.list(filters={"completion_id": str(ids["old"])})
    assert [n.id for n in by_id.nodes] == [str(ids["old"])]
    ascending = sdk.interactions.list(order=[{"field": "created_at", "order": "ASC"}])
    assert [n.id for n in ascending.nodes] == [str(ids[n]) for n in ("old", "mid", "new")]


def test_interactions_list_pages_with_cursor(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID], uuid.UUID]
) -> None:
    seeded, ids, _ = history
    sdk = _sdk(live_store, seeded)
    first = sdk.interactions.list(page={"first": 2})
    assert first.page_info.has_next_page and first.page_info.end_cursor
    rest = sdk.interactions.list(page={"first": 2, "after": first.page_info.end_cursor})
    assert not rest.page_info.has_next_page
    assert [n.id for n in first.nodes + rest.nodes] == [str(ids[n]) for n in ("new", "mid", "old")]


def test_interactions_list_grouped_by_model_has_score_stats(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID], uuid.UUID]
) -> None:
    seeded, ids, _ = history
    grouped = _sdk(live_store, seeded).interactions.list(group_by="model")
    assert grouped.group_by.value == "MODEL"
    by_key = {node.key: node for node in grouped.nodes}
    assert {key: node.count for key, node in by_key.items()} == {"m1": 2, "m2": 1}
    [stats] = by_key["m1"].direct_scores_stats
    assert stats.metric.key == "quality" and stats.scores == 2
    assert stats.average == pytest.approx(0.3) and stats.stddev == pytest.approx(0.1)
    assert (stats.min, stats.max, stats.sum) == (pytest.approx(0.2), 0.4, pytest.approx(0.6))
    assert [n.id for n in by_key["m1"].completions.nodes] == [str(ids["new"]), str(ids["old"])]


def test_interactions_get_returns_the_interaction_or_none(
    live_store: LiveStore, history: tuple[SeededProject, dict[str, uuid.UUID], uuid.UUID]
) -> None:
    seeded, ids, _ = history
    sdk = _sdk(live_store, seeded)
    interaction = sdk.interactions.get(str(ids["mid"]))
    assert interaction is not None
    assert interaction.model is not None and interaction.model.key == "m2"
    assert [(s.metric.key if s.metric else None, s.value) for s in interaction.direct_scores] == [
        ("quality", 0.9)
    ]
    assert interaction.metadata.usage is not None
    assert interaction.metadata.usage.total_tokens == 5
    assert sdk.interactions.get(str(uuid.uuid4())) is None
    other = new_project(live_store)
    assert _sdk(live_store, other).interactions.get(str(ids["mid"]), project=other.key) is None
    with pytest.raises(AdaptiveEntityNotFoundError):
        _sdk(live_store, other).interactions.get(str(ids["mid"]), project=seeded.key)


def test_admin_key_lists_every_projects_metrics(live_store: LiveStore) -> None:
    first, second = new_project(live_store), new_project(live_store)
    sdk = Adaptive(base_url=live_store.base_url, api_key=ADMIN_KEY)
    projects = {p.key for m in sdk.feedback.list_keys() for p in m.projects}
    assert {first.key, second.key} <= projects
