"""The one filter grammar (store.filters): parsing, caps and names, and its relational
compilation (store.readback), with the checks of metric names and label keys against the
store, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from store.errors import InvalidInputError
from store.feedback import add_metric_value
from store.filters import (
    MAX_LABEL_CONDITIONS,
    MAX_METRIC_CONDITIONS,
    Filters,
    LabelFilter,
    MetricFilter,
    check_status,
    missing_label_key_warning,
)
from store.models import Project
from store.read_guard import read_connection
from store.readback import (
    check_metric_keys,
    filter_conditions,
    group_by_model,
    label_key_warnings,
    list_interactions,
)
from tests.interaction_seeds import log_interaction, minutes_ago, seed_project

# Parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team=a", LabelFilter("team", "=", ("a",))),
        ("env!=dev", LabelFilter("env", "!=", ("dev",))),
        (" env != dev ", LabelFilter("env", "!=", ("dev",))),
        ("team=a|b", LabelFilter("team", "in", ("a", "b"))),
        ("team in a, b", LabelFilter("team", "in", ("a", "b"))),
        ("team", LabelFilter("team", "exists")),
        ("url=http://x?a=b", LabelFilter("url", "=", ("http://x?a=b",))),
        ("note=", LabelFilter("note", "=", ("",))),
    ],
)
def test_label_conditions_parse(text: str, expected: LabelFilter) -> None:
    assert LabelFilter.parse(text) == expected


@pytest.mark.parametrize("text", ["", "=x", "!=x", "bad key=x", "two words", " =a|b"])
def test_malformed_label_conditions_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="bad label filter"):
        LabelFilter.parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quality>=0.8", MetricFilter("quality", ">=", 0.8)),
        ("quality > 1", MetricFilter("quality", ">", 1.0)),
        ("latency<3e2", MetricFilter("latency", "<", 300.0)),
        ("q<=-1", MetricFilter("q", "<=", -1.0)),
        ("thumbs=true", MetricFilter("thumbs", "=", 1.0)),
        ("thumbs==False", MetricFilter("thumbs", "=", 0.0)),
        ("quality!=0.5", MetricFilter("quality", "!=", 0.5)),
    ],
)
def test_metric_conditions_parse(text: str, expected: MetricFilter) -> None:
    assert MetricFilter.parse(text) == expected


@pytest.mark.parametrize("text", ["quality~1", "quality>>1", "quality>=", ">=1", "q>=1e999"])
def test_malformed_metric_conditions_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="metric condition"):
        MetricFilter.parse(text)


def test_every_form_of_labels_gives_the_same_conditions() -> None:
    strings = Filters(labels=["team=a", "env!=dev", "tier=x|y", "vip"]).label_filters
    mapping = Filters(labels={"team": "a", "tier": ["x", "y"], "vip": None}).label_filters
    assert [strings[0], *strings[2:]] == list(mapping)
    assert Filters(labels="env!=dev").label_filters == (LabelFilter("env", "!=", ("dev",)),)


def test_caps_hold_for_every_filters_value() -> None:
    Filters(labels=[f"k{i}" for i in range(MAX_LABEL_CONDITIONS)])
    Filters(metrics=[f"m{i}>0" for i in range(MAX_METRIC_CONDITIONS)])
    with pytest.raises(InvalidInputError, match="too many label conditions: 51; at most 50"):
        Filters(labels=[f"k{i}" for i in range(MAX_LABEL_CONDITIONS + 1)])
    with pytest.raises(InvalidInputError, match="too many metric conditions: 21; at most 20"):
        Filters(metrics=[f"m{i}>0" for i in range(MAX_METRIC_CONDITIONS + 1)])


def test_unknown_status_names_the_valid_ones() -> None:
    assert Filters(status="error").status == check_status("error") == "error"
    with pytest.raises(
        InvalidInputError, match="unknown status 'failed': use ok, error, cancelled"
    ):
        Filters(status="failed")


@pytest.mark.parametrize(
    ("key", "warning"),
    [
        ("project", "no interaction has label key 'project'; to filter by project use project=..."),
        ("user", "no interaction has label key 'user'; to filter by user use user=..."),
        ("variant", "no interaction has label key 'variant'; to filter by variant use variant=..."),
        ("tema", "no interaction has label key 'tema'"),
    ],
)
def test_missing_label_key_warning_names_the_dedicated_filter(key: str, warning: str) -> None:
    assert missing_label_key_warning(key) == warning


# On the relational store ----------------------------------------------------------------------


Seeded = tuple[Project, Project, dict[str, uuid.UUID]]


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    """Project g: a (env dev, quality 0.9), b (env prod, quality 0.5 and 0.9), c (no env,
    error), d (no labels). Project h: one interaction with the label `secret`."""
    project = seed_project(engine, "g")
    other = seed_project(engine, "h")
    ids = {
        "a": log_interaction(
            engine, project, labels={"env": "dev", "team": "a"}, created_at=minutes_ago(4)
        ),
        "b": log_interaction(
            engine, project, labels={"env": "prod", "team": "b"}, created_at=minutes_ago(3)
        ),
        "c": log_interaction(
            engine, project, labels={"team": "c"}, created_at=minutes_ago(2), status="error"
        ),
        "d": log_interaction(engine, project, created_at=minutes_ago(1)),
    }
    log_interaction(engine, other, labels={"secret": "s"})
    assert project.id is not None
    for name, value in (("a", 0.9), ("b", 0.5), ("b", 0.9)):
        add_metric_value(
            engine, project_id=project.id, completion_id=ids[name], metric="quality", value=value
        )
    return project, other, ids


GRAMMAR_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"labels": ["env!=dev"]}, {"b", "c", "d"}),
    ({"labels": ["env=dev"]}, {"a"}),
    ({"labels": ["team=a|b"]}, {"a", "b"}),
    ({"labels": ["team"]}, {"a", "b", "c"}),
    ({"labels": ["env!=dev", "team"]}, {"b", "c"}),
    ({"labels": {"team": ["b", "c"], "env": None}}, {"b"}),
    ({"metrics": ["quality>=0.7"]}, {"a", "b"}),  # b's mean is 0.7
    ({"metrics": ["quality>0.7"]}, {"a"}),
    ({"metrics": ["quality!=0.7"]}, {"a"}),  # no value: no mean, no match
    ({"metrics": ["quality>0.1", "quality<0.8"]}, {"b"}),
    ({"status": "error"}, {"c"}),
    ({"labels": ["team"], "status": "ok", "since": "210s"}, {"b"}),
]


@pytest.mark.parametrize("scope", ["project", "all"])
@pytest.mark.parametrize(("given", "expected"), GRAMMAR_CASES)
def test_the_grammar_selects_the_same_rows_in_the_relational_store(
    engine: Engine, seeded: Seeded, scope: str, given: dict[str, Any], expected: set[str]
) -> None:
    project, _, ids = seeded
    project_id = project.id if scope == "project" else None
    filters = Filters(**given, project=None if scope == "project" else "g")
    page = list_interactions(engine, project_id=project_id, filters=filters, limit=500)
    names = {name for name, cid in ids.items() if cid in {v.completion_id for v in page.items}}
    assert names == expected
    assert page.total_count == len(expected) and page.warnings == []


def test_grouped_statistics_take_the_grammar_too(engine: Engine, seeded: Seeded) -> None:
    project, _, _ = seeded
    conditions = filter_conditions(Filters(metrics=["quality>0.6"]), project_id=project.id)
    [group] = group_by_model(engine, project_id=project.id, conditions=conditions)
    assert group.count == 2
    assert [(s.metric.key, s.count) for s in group.stats] == [("quality", 3)]


def test_the_relational_compiler_enforces_the_caps_and_refuses_search() -> None:
    many = Filters(labels=["k"])
    object.__setattr__(many, "label_filters", (LabelFilter("k", "exists"),) * 51)
    with pytest.raises(InvalidInputError, match="at most 50"):
        filter_conditions(many)
    with pytest.raises(InvalidInputError, match="search"):
        filter_conditions(Filters(search="refund"))


@pytest.mark.parametrize("scope", ["project", "all"])
def test_unknown_metric_names_the_valid_ones(engine: Engine, seeded: Seeded, scope: str) -> None:
    project, _, _ = seeded
    project_id = project.id if scope == "project" else None
    with read_connection(engine) as connection:
        check_metric_keys(connection, Filters(metrics=["quality>0", "thumbs=true"]), project_id)
        with pytest.raises(InvalidInputError) as caught:
            check_metric_keys(connection, Filters(metrics=["qualty>0"]), project_id)
    assert str(caught.value) == "unknown metric 'qualty'; valid metrics: quality, thumbs"
    with pytest.raises(InvalidInputError, match="unknown metric 'qualty'"):
        list_interactions(engine, project_id=project_id, filters=Filters(metrics=["qualty>0"]))


def test_a_metric_of_another_project_is_unknown(engine: Engine, seeded: Seeded) -> None:
    project, other, _ = seeded
    from store.metrics import create_metric

    create_metric(engine, project_key="h", key="only_h", kind="scalar")
    with read_connection(engine) as connection:
        check_metric_keys(connection, Filters(metrics=["only_h>0"]), None)
        check_metric_keys(connection, Filters(metrics=["only_h>0"]), other.id)
        with pytest.raises(InvalidInputError, match="unknown metric 'only_h'"):
            check_metric_keys(connection, Filters(metrics=["only_h>0"]), project.id)
        with pytest.raises(InvalidInputError, match="unknown metric 'only_h'"):
            check_metric_keys(connection, Filters(metrics=["only_h>0"], project="g"), None)


def test_absent_label_keys_warn_and_match_nothing(engine: Engine, seeded: Seeded) -> None:
    project, other, _ = seeded
    filters = Filters(labels=["project=g", "secret", "team", "tema!=x"])
    with read_connection(engine) as connection:
        mine = label_key_warnings(connection, filters, project.id)
        everywhere = label_key_warnings(connection, filters, None)
        narrowed = label_key_warnings(connection, Filters(labels=["secret"], project="g"), None)
        theirs = label_key_warnings(connection, filters, other.id)
    assert mine == [
        "no interaction has label key 'project'; to filter by project use project=...",
        "no interaction has label key 'secret'",
        "no interaction has label key 'tema'",
    ]
    assert everywhere == [mine[0], mine[2]]
    assert narrowed == [mine[1]]
    assert len(theirs) == 3 and "'team'" in theirs[1]
    page = list_interactions(engine, project_id=project.id, filters=filters)
    assert (page.items, page.total_count, page.warnings) == ([], 0, mine)
    unfiltered = list_interactions(engine, project_id=project.id, filters=Filters(labels="k!=v"))
    assert unfiltered.total_count == 4
    assert unfiltered.warnings == ["no interaction has label key 'k'"]
