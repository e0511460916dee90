"""The hand-written check of everyday items agrees with pydantic's judgement of the schema.

`plain_item` may only accept what ITEM_ADAPTER accepts, and must give the same values; anything
it declines goes to pydantic. Hypothesis mixes valid values, near misses and wrong types.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.errors import BadRequest, Unprocessable
from ingest.logged_items import ITEM_ADAPTER, MAX_TOKENS, plain_item, prepare_item
from store.ids import uuid7_text_at
from store.keys import Principal
from store.logged_interactions import CatalogNames
from store.settings import Settings

MISSING = object()
UUID_TEXT = "0b6c1a4e-8f3d-4a5b-9c7d-1e2f3a4b5c6d"
WRONG = [MISSING, None, True, 1, -1, 1.5, "", "x", [], {}, [1], {"a": 1}]
REQUIRED = ("model_service", "messages", "completion")

#: Per field: values pydantic accepts, then near misses and spellings it may or may not accept.
FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "model_service": (["m1"], []),
    "project": (["p", None], []),
    "messages": (
        [
            [{"role": "user", "content": "q"}],
            [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}],
            [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
        ],
        [[], [{"role": "user"}, "not a message"]],
    ),
    "completion": (["a", ""], []),
    "feedbacks": ([[], None, [{"metric": "m", "value": 1}]], [[{"value": 1}]]),
    "user": (["u", "u" * 256, None], ["u" * 257]),
    "session_id": (
        [UUID_TEXT, None],
        [
            UUID_TEXT.upper(),
            UUID_TEXT.replace("-", ""),
            "{" + UUID_TEXT + "}",
            UUID_TEXT[:-1] + "g",
            UUID_TEXT.replace("-", "")[:32] + "----",
        ],
    ),
    "completion_id": ([UUID_TEXT, None], [UUID_TEXT.upper(), "nope"]),
    "created_at": (
        ["2024-02-21T09:51:03Z", "2024-02-21T09:51:03.123456+05:30", None],
        [
            "2024-02-21T09:51:03.1-00:00",
            "2024-02-21T09:51:03",
            "2024-02-21",
            "2024-02-30T09:51:03Z",
            "2024-02-21T24:00:00Z",
            "2024-02-21T09:51:03.1234567Z",
            "2024-02-21 09:51:03Z",
            "2024-02-21t09:51:03z",
            "2024-02-21T09:51:03+24:00",
            "2024-02-21T09:51:03+23:59",
            1708509063,
            "0000-01-01T00:00:00Z",
            "٢٠٢٤-02-21T09:51:03Z",
        ],
    ),
    "labels": ([{"k": "v"}, {}, None], [{"k": 1}, {"k": None}]),
    "finish_reason": (["stop", "s" * 64, None], ["s" * 65]),
    "prompt_tokens": ([0, 20, MAX_TOKENS, None], [MAX_TOKENS + 1, -1, 2.0, 2.5, "5", False]),
    "completion_tokens": ([6, None], [2**40]),
    "latency_ms": ([0, 12, 12.5, None], [-0.5, "1", False, 10**15, 1e300]),
    "ttft_ms": ([0.0, 3, None], [-1]),
    "unknown_extra": (["ignored"], []),
}


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    """A valid item, then up to three fields changed to a near miss or a wrong type."""
    item: dict[str, Any] = {}
    for name, (good, _) in FIELDS.items():
        choices = good if name in REQUIRED else [MISSING, *good]
        item[name] = draw(st.sampled_from(choices))
    for name in draw(st.lists(st.sampled_from(list(FIELDS)), max_size=3)):
        item[name] = draw(st.sampled_from(FIELDS[name][1] + WRONG))
    return {name: value for name, value in item.items() if value is not MISSING}


def _same(name: str, plain: Any, judged: Any) -> bool:
    if name in ("session_id", "completion_id") and isinstance(plain, str):
        return uuid.UUID(plain) == judged
    if name in ("latency_ms", "ttft_ms") and plain is not None:
        return type(plain) is float and plain == judged
    return bool(plain == judged)


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(item=items())
def test_plain_items_are_exactly_what_pydantic_accepts(item: dict[str, Any]) -> None:
    try:
        judged: Any = ITEM_ADAPTER.validate_python(copy.deepcopy(item))
    except ValidationError:
        judged = None
    plain = plain_item(copy.deepcopy(item))
    if plain is None:
        return  # pydantic decides
    assert judged is not None, f"accepted what pydantic refuses: {item}"
    for name in FIELDS.keys() - {"unknown_extra"}:  # extra keys are ignored either way
        if name in judged or name in plain:
            assert name in judged and name in plain, name
            assert _same(name, plain[name], judged[name]), (name, plain[name], judged[name])  # type: ignore[literal-required]


def test_everyday_items_take_the_plain_path() -> None:
    item = {
        "model_service": "m1",
        "messages": [{"role": "user", "content": "q"}],
        "completion": "a",
        "session_id": UUID_TEXT,
        "created_at": "2024-02-21T09:51:03Z",
        "labels": {"team": "a"},
        "prompt_tokens": 20,
        "latency_ms": 12,
    }
    plain = plain_item(item)
    assert plain is not None
    assert plain["created_at"] == datetime(2024, 2, 21, 9, 51, 3, tzinfo=UTC)
    assert plain["latency_ms"] == 12.0 and type(plain["latency_ms"]) is float


def test_bad_items_get_pydantics_message() -> None:
    names = CatalogNames(projects={"p": 1}, models={"m1": 1})
    principal = Principal(is_admin=False, project_id=1, project_key="p")
    item: dict[str, Any] = {"model_service": "m1", "messages": [], "completion": "a"}
    with pytest.raises(Unprocessable) as raised:
        prepare_item(item, principal=principal, names=names)
    assert raised.value.param == "messages" and "at least 1" in raised.value.message
    # Token counts are INTEGER columns: too big is refused here, not by the database.
    too_many = {"model_service": "m1", "messages": [{}], "completion": "a", "prompt_tokens": 2**31}
    with pytest.raises(Unprocessable) as raised:
        prepare_item(too_many, principal=principal, names=names)
    assert raised.value.param == "prompt_tokens"


def test_new_ids_are_uuid7_carrying_the_time() -> None:
    moment = datetime(2024, 2, 21, 9, 51, 3, 250000, tzinfo=UTC)
    ids = {uuid7_text_at(moment) for _ in range(5000)}
    assert len(ids) == 5000
    for text in list(ids)[:50]:
        value = uuid.UUID(text)
        assert str(value) == text and value.version == 7 and value.variant == uuid.RFC_4122
        assert value.int >> 80 == int(moment.timestamp() * 1000)


def test_label_limits_apply_per_item_when_settings_are_given() -> None:
    names = CatalogNames(projects={"p": 1}, models={"m1": 1})
    principal = Principal(is_admin=False, project_id=1, project_key="p")
    settings = Settings(max_labels=2, max_label_key_length=8, max_label_value_length=8)
    base = {"model_service": "m1", "messages": [{"role": "user"}], "completion": "a"}
    context: dict[str, Any] = {"principal": principal, "names": names, "settings": settings}
    assert prepare_item({**base, "labels": {"a": "1", "b": "2"}}, **context)[0]["labels"]
    for labels, code in (
        ({"a": "1", "b": "2", "c": "3"}, "too_many_labels"),
        ({"k" * 9: "v"}, "label_too_long"),
        ({"k": "v" * 9}, "label_too_long"),
    ):
        with pytest.raises(BadRequest) as raised:
            prepare_item({**base, "labels": labels}, **context)
        assert (raised.value.code, raised.value.param) == (code, "labels")
