"""Metric definitions, metric values and comparisons in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, func, select

from store.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    ValueOutOfRangeError,
)
from store.feedback import (
    METRIC_VALUE_LIMIT,
    TextCompletion,
    add_comparison,
    add_metric_value,
    add_metric_values,
    add_metric_values_bulk,
    add_text_comparison,
    check_metric_values,
    coerce_value,
    missing_completions,
)
from store.metrics import create_metric, get_metric, list_metrics
from store.models import Comparison, Interaction, Metric, MetricValue
from store.readback import get_interaction
from tests.interaction_seeds import log_interaction, seed_project


def _count(engine: Engine, table: type) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_metric_definitions_are_per_project(engine: Engine) -> None:
    first = seed_project(engine, "p1")
    second = seed_project(engine, "p2", models=())
    create_metric(engine, project_key="p1", key="latency", kind="SCALAR", scoring="LOWER_IS_BETTER")
    assert [m.key for m in list_metrics(engine, project_id=first.id)] == [
        "latency",
        "quality",
        "thumbs",
    ]
    assert [m.key for m in list_metrics(engine, project_id=second.id)] == ["quality", "thumbs"]
    assert first.id is not None
    latency = get_metric(engine, project_id=first.id, id_or_key="latency")
    assert (latency.kind, latency.scoring, latency.name) == ("scalar", "lower_is_better", "latency")
    assert get_metric(engine, project_id=first.id, id_or_key=str(latency.id)).key == "latency"


def test_metric_definition_refuses_bad_kind_duplicates_and_bad_keys(engine: Engine) -> None:
    seed_project(engine, "p1")
    with pytest.raises(InvalidInputError, match="scalar' or 'bool"):
        create_metric(engine, project_key="p1", key="x", kind="float")
    with pytest.raises(InvalidInputError, match="lower_is_better"):
        create_metric(engine, project_key="p1", key="x", scoring="sideways")
    with pytest.raises(InvalidInputError, match="invalid metric key"):
        create_metric(engine, project_key="p1", key="has space")
    with pytest.raises(AlreadyExistsError):
        create_metric(engine, project_key="p1", key="quality")
    with pytest.raises(NotFoundError, match="project nope"):
        create_metric(engine, project_key="nope", key="x")


def test_unknown_metric_message_says_how_to_register_it(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    assert project.id is not None
    completion_id = log_interaction(engine, project)
    with pytest.raises(NotFoundError) as caught:
        add_metric_value(
            engine, project_id=project.id, completion_id=completion_id, metric="helpful", value=1
        )
    assert "interlog metrics create p1 helpful --kind scalar|bool" in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        ("scalar", 0.75, 0.75),
        ("scalar", 3, 3.0),
        ("scalar", -2.5, -2.5),
        ("bool", True, 1.0),
        ("bool", False, 0.0),
        ("bool", 1, 1.0),
        ("bool", 0, 0.0),
    ],
)
def test_value_is_coerced_by_the_metric_kind(kind: str, value: object, stored: float) -> None:
    assert coerce_value(Metric(key="m", name="m", kind=kind, project_id=1), value) == stored


@pytest.mark.parametrize(
    ("kind", "value"),
    [("scalar", True), ("scalar", "0.5"), ("scalar", None), ("scalar", float("nan")),
     ("bool", 2), ("bool", 0.5), ("bool", "true")],
)  # fmt: skip
def test_value_of_the_wrong_kind_is_refused(kind: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=r"metric m is a|must be finite"):
        coerce_value(Metric(key="m", name="m", kind=kind, project_id=1), value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [("scalar", 1e13), ("scalar", -1e13), ("scalar", 1e308), ("scalar", -1e308),
     ("scalar", 10**12 + 1), ("scalar", 10**400), ("scalar", float("inf")),
     ("scalar", float("-inf")), ("scalar", float("nan")), ("bool", float("nan"))],
)  # fmt: skip
def test_value_not_finite_or_out_of_range_is_refused(kind: str, value: object) -> None:
    with pytest.raises(ValueOutOfRangeError, match=r"metric m: value .*(out of range|finite)"):
        coerce_value(Metric(key="m", name="m", kind=kind, project_id=1), value)


@pytest.mark.parametrize("value", [METRIC_VALUE_LIMIT, -METRIC_VALUE_LIMIT, 10**12, -(10**12)])
def test_value_at_the_limit_is_kept_exactly(value: float) -> None:
    metric = Metric(key="m", name="m", kind="scalar", project_id=1)
    assert coerce_value(metric, value) == float(value)


def test_out_of_range_value_fails_only_its_own_bulk_item(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    assert project.id is not None
    completion_id = log_interaction(engine, project)
    values = [1e12, 1e13, -1e308, -1e12]
    items = [{"metric": "quality", "value": v, "completion_id": completion_id} for v in values]
    results = add_metric_values_bulk(engine, project_id=project.id, values=items)
    assert [type(r.error).__name__ if r.error else None for r in results] == [
        None, "ValueOutOfRangeError", "ValueOutOfRangeError", None,
    ]  # fmt: skip
    with pytest.raises(ValueOutOfRangeError):  # all or nothing: nothing more is stored
        add_metric_values(engine, project_id=project.id, values=items)
    with engine.connect() as connection:
        stored = connection.execute(select(MetricValue.value)).scalars().all()  # type: ignore[call-overload]
    assert sorted(stored) == [-1e12, 1e12]


def test_metric_values_are_stored_with_details_and_user(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    assert project.id is not None
    completion_id = log_interaction(engine, project)
    stored = []
    for metric, value in (("quality", 0.75), ("quality", 3), ("thumbs", True), ("thumbs", 0)):
        feedback_id = add_metric_value(
            engine, project_id=project.id, completion_id=completion_id, metric=metric,
            value=value, details="why", user_id="u1",
        )  # fmt: skip
        stored.append((feedback_id, metric, float(value), "why", "u1"))
    view = get_interaction(engine, completion_id=completion_id, project_id=project.id)
    assert [(s.id, s.metric_key, s.value, s.details, s.user_id) for s in view.scores] == stored
    with pytest.raises(InvalidInputError, match="metric thumbs is a bool metric"):
        add_metric_value(
            engine, project_id=project.id, completion_id=completion_id, metric="thumbs", value=0.5
        )
    assert _count(engine, MetricValue) == 4


def test_metric_value_for_unknown_or_foreign_completion_names_it(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    other = seed_project(engine, "p2", models=())
    assert project.id is not None
    foreign = log_interaction(engine, other)
    unknown = uuid.uuid4()
    for completion_id in (foreign, unknown):
        with pytest.raises(NotFoundError, match=f"completion {completion_id} not found"):
            add_metric_value(
                engine,
                project_id=project.id,
                completion_id=completion_id,
                metric="quality",
                value=1,
            )
    assert missing_completions(
        engine, project_id=project.id, completion_ids=[foreign, unknown]
    ) == [
        foreign,
        unknown,
    ]


def test_client_supplied_id_makes_resubmission_idempotent(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    assert project.id is not None
    completion_id = log_interaction(engine, project)
    kwargs = {"project_id": project.id, "completion_id": completion_id, "metric": "quality"}
    first = add_metric_value(engine, value=0.5, feedback_id="client-key-1", **kwargs)  # type: ignore[arg-type]
    again = add_metric_value(engine, value=0.5, feedback_id="client-key-1", **kwargs)  # type: ignore[arg-type]
    assert first == again
    assert _count(engine, MetricValue) == 1
    with pytest.raises(AlreadyExistsError, match="different value"):
        add_metric_value(engine, value=0.9, feedback_id="client-key-1", **kwargs)  # type: ignore[arg-type]
    given = uuid.uuid4()
    assert add_metric_value(engine, value=0.1, feedback_id=given, **kwargs) == given  # type: ignore[arg-type]
    assert _count(engine, MetricValue) == 2


def test_add_metric_values_is_all_or_nothing(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    assert project.id is not None
    completion_id = log_interaction(engine, project)
    good = {"metric": "quality", "value": 1, "completion_id": str(completion_id)}
    bad = {"metric": "thumbs", "value": 7, "completion_id": str(completion_id)}
    with pytest.raises(InvalidInputError):
        add_metric_values(engine, project_id=project.id, values=[good, bad])
    assert _count(engine, MetricValue) == 0
    ids = add_metric_values(
        engine,
        project_id=project.id,
        values=[{"metric": "quality", "value": 2}, {"metric": "thumbs", "value": True}],
        completion_id=completion_id,
    )
    assert len(set(ids)) == 2 and _count(engine, MetricValue) == 2


def test_check_metric_values_validates_without_a_completion(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    assert project.id is not None
    check_metric_values(engine, project_id=project.id, values=[{"metric": "quality", "value": 1}])
    with pytest.raises(NotFoundError, match="interlog metrics create"):
        check_metric_values(engine, project_id=project.id, values=[{"metric": "nope", "value": 1}])
    assert _count(engine, MetricValue) == 0


def test_bulk_reports_each_item_and_keeps_the_good_ones(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    assert project.id is not None
    completion_id = log_interaction(engine, project)
    results = add_metric_values_bulk(
        engine,
        project_id=project.id,
        values=[
            {"metric": "quality", "value": 1, "completion_id": str(completion_id)},
            {"metric": "nope", "value": 1, "completion_id": str(completion_id)},
            {"metric": "thumbs", "value": "yes", "completion_id": str(completion_id)},
            {"metric": "thumbs", "value": True, "completion_id": str(uuid.uuid4())},
            {"metric": "thumbs", "value": False, "completion_id": str(completion_id)},
        ],
    )
    assert [r.feedback_id is not None for r in results] == [True, False, False, False, True]
    assert [type(r.error).__name__ for r in results] == [
        "NoneType",
        "NotFoundError",
        "InvalidInputError",
        "NotFoundError",
        "NoneType",
    ]
    assert _count(engine, MetricValue) == 2


def test_comparison_between_logged_completions_with_ties(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    other_project = seed_project(engine, "p2", models=())
    assert project.id is not None
    first, second = log_interaction(engine, project), log_interaction(engine, project)
    add_comparison(
        engine, project_id=project.id, metric="quality", preferred_completion_id=first,
        other_completion_id=second,
    )  # fmt: skip
    add_comparison(
        engine, project_id=project.id, metric="quality", preferred_completion_id=first,
        other_completion_id=second, tie="bad", user_id="u",
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match="'good' or 'bad'"):
        add_comparison(
            engine, project_id=project.id, metric="quality", preferred_completion_id=first,
            other_completion_id=second, tie="meh",
        )  # fmt: skip
    foreign = log_interaction(engine, other_project)
    with pytest.raises(NotFoundError, match=str(foreign)):
        add_comparison(
            engine, project_id=project.id, metric="quality", preferred_completion_id=first,
            other_completion_id=foreign,
        )  # fmt: skip
    view = get_interaction(engine, completion_id=second, project_id=project.id)
    assert sorted((c.tie or "") for c in view.comparisons) == ["", "bad"]
    assert _count(engine, Comparison) == 2


def test_text_comparison_stores_offline_interactions(engine: Engine) -> None:
    project = seed_project(engine, "p1", models=("m1", "m2"))
    assert project.id is not None
    result = add_text_comparison(
        engine,
        project_id=project.id,
        metric="quality",
        messages=[{"role": "user", "content": "q"}],
        preferred=TextCompletion(text="A", model="m1"),
        other=TextCompletion(text="B", model="m2"),
        tie="good",
    )
    preferred = get_interaction(
        engine, completion_id=result.preferred_completion_id, project_id=project.id
    )
    other = get_interaction(engine, completion_id=result.other_completion_id, project_id=project.id)
    assert (preferred.completion, preferred.model_key, preferred.source) == ("A", "m1", "OFFLINE")
    assert (other.completion, other.model_key, other.session_id) == (
        "B",
        "m2",
        preferred.session_id,
    )
    assert [c.id for c in other.comparisons] == [result.comparison_id]
    with pytest.raises(NotFoundError, match="model m9"):
        add_text_comparison(
            engine, project_id=project.id, metric="quality",
            messages=[{"role": "user", "content": "q"}],
            preferred=TextCompletion(text="A", model="m1"),
            other=TextCompletion(text="B", model="m9"),
        )  # fmt: skip
    assert _count(engine, Interaction) == 2
