"""Analytics functions on SQLite and PostgreSQL, checked against values computed here."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import Engine

from store import analytics
from store.errors import InvalidInputError, NotFoundError
from store.filters import Filters, LabelFilter
from store.keys import Principal
from tests.conftest import BACKENDS
from tests.store.analytics_data import KnownData, SharedStore, shared_store

ADMIN = Principal(is_admin=True)


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStore]:
    """The known data on each backend, written once per module (these tests only read)."""
    with shared_store(request, request.param, tmp_path_factory.mktemp("analytics")) as shared:
        yield shared


@pytest.fixture
def engine(store: SharedStore) -> Engine:
    return store.engine


@pytest.fixture
def data(store: SharedStore) -> KnownData:
    return store.data


def _ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["completion_id"])


def _expected(data: KnownData, predicate: Callable[[dict[str, Any]], bool]) -> set[str]:
    return {r["completion_id"] for r in data.bot() if predicate(r)}


LABEL_CASES: list[tuple[Any, Callable[[dict[str, str]], bool]]] = [
    ({"team": "a"}, lambda lb: lb["team"] == "a"),
    (["team=a|b"], lambda lb: lb["team"] in ("a", "b")),
    (["env"], lambda lb: "env" in lb),
    (["env!=prod"], lambda lb: lb.get("env") != "prod"),
    ({"team": "a", "env": None}, lambda lb: lb["team"] == "a" and "env" in lb),
    (
        [LabelFilter("team", "in", ("b", "c")), "env!=dev", "tier=gold"],
        lambda lb: lb["team"] in "bc" and lb.get("env") != "dev" and lb.get("tier") == "gold",
    ),
    ({"nosuchkey": "x"}, lambda lb: False),
]


def test_label_filters_combine_with_and(engine: Engine, data: KnownData) -> None:
    for labels, predicate in LABEL_CASES:
        frame = analytics.interactions(
            engine, Filters(labels=labels), scope=data.project_id, limit=None
        )
        wanted = {r["completion_id"] for r in data.bot() if predicate(r["labels"])}
        assert _ids(frame) == wanted, labels
        count = analytics.count_interactions(engine, Filters(labels=labels), scope=data.project_id)
        assert count == len(frame)


def test_project_key_sees_only_its_own_rows(engine: Engine, data: KnownData) -> None:
    key = Principal(is_admin=False, project_id=data.other_project_id, project_key="other")
    own = analytics.interactions(engine, Filters(labels={"team": "a"}), scope=key, limit=None)
    assert len(own) == 5 and set(own["project"]) == {"other"}
    # Naming the other project in the filters does not widen a project key's scope.
    assert analytics.interactions(engine, Filters(project="bot"), scope=key).empty
    everyone = analytics.interactions(
        engine, Filters(labels={"team": "a"}), scope=ADMIN, limit=None
    )
    assert len(everyone) == 5 + len(_expected(data, lambda r: r["labels"]["team"] == "a"))
    bot_id = data.bot()[0]["completion_id"]
    with pytest.raises(NotFoundError):
        analytics.get_interaction(engine, bot_id, scope=key)
    assert analytics.get_interaction(engine, bot_id, scope=ADMIN)["project"] == "bot"
    summary = analytics.summary(engine, scope=key, by=None)
    assert summary["count"].tolist() == [5]


def test_interactions_join_one_column_per_metric(engine: Engine, data: KnownData) -> None:
    frame = analytics.interactions(engine, scope=data.project_id, limit=None)
    assert len(frame) == len(data.bot())
    assert {"quality", "thumbs"} <= set(frame.columns)
    by_id = frame.set_index("completion_id")
    for cid, quality in data.quality.items():
        assert by_id.loc[cid, "quality"] == pytest.approx(quality)
    unscored = set(by_id.index) - set(data.quality)
    assert by_id.loc[sorted(unscored), "quality"].isna().all()
    page = analytics.interactions(engine, scope=data.project_id, limit=30)
    assert page["created_at"].is_monotonic_decreasing
    assert isinstance(frame.attrs["synced_at"], datetime)


def test_pages_follow_newest_first(engine: Engine, data: KnownData) -> None:
    everything = analytics.interactions(engine, scope=data.project_id, limit=None)
    newest = everything.sort_values(["created_at", "completion_id"], ascending=False)
    page = analytics.interactions(engine, scope=data.project_id, limit=10, offset=20)
    assert page["completion_id"].tolist() == newest["completion_id"].tolist()[20:30]


def test_other_filters_match_independent_selection(engine: Engine, data: KnownData) -> None:
    bot = data.bot()
    cases = [
        (Filters(model="m2"), lambda r: r["model"] == "m2"),
        (Filters(status="error"), lambda r: r["status"] == "error"),
        (Filters(user="user3"), lambda r: r.get("user_id") == "user3"),
        (Filters(session=bot[4]["session_id"]), lambda r: r is bot[4]),
        (
            Filters(since="10.5h"),
            lambda r: datetime.fromisoformat(r["created_at"]) >= data.now - timedelta(hours=10.5),
        ),
        (
            Filters(since=data.now - timedelta(hours=30), until=data.now - timedelta(hours=20)),
            lambda r: (
                data.now - timedelta(hours=30)
                <= datetime.fromisoformat(r["created_at"])
                < data.now - timedelta(hours=20)
            ),
        ),
        (Filters(search="REFUND_OK"), lambda r: "refund_ok" in r["completion"]),
        (Filters(search="number 1 "), lambda r: "number 1 " in r["messages"][0]["content"]),
        (Filters(search="%"), lambda r: False),
        (
            Filters(metrics=["quality>=0.5"]),
            lambda r: data.quality.get(r["completion_id"], -1) >= 0.5,
        ),
        (
            Filters(metrics=["quality<0.5", "thumbs=true"], labels={"team": "a"}),
            lambda r: (
                data.quality.get(r["completion_id"], 2) < 0.5
                and data.thumbs.get(r["completion_id"]) == 1.0
                and r["labels"]["team"] == "a"
            ),
        ),
    ]
    for filters, predicate in cases:
        frame = analytics.interactions(engine, filters, scope=data.project_id, limit=None)
        assert _ids(frame) == _expected(data, predicate), filters


def test_summary_by_model_matches_numpy_and_scipy(engine: Engine, data: KnownData) -> None:
    filters = Filters(labels=["team=a|b"])
    frame = analytics.summary(engine, filters, scope=data.project_id, by="model")
    assert frame["model"].tolist() == ["m1", "m2"]
    for model in ("m1", "m2"):
        rows = [r for r in data.bot() if r["model"] == model and r["labels"]["team"] in "ab"]
        got = frame.set_index("model").loc[model]
        assert got["count"] == len(rows)
        assert got["errors"] == sum(r["status"] == "error" for r in rows)
        assert got["error_rate"] == pytest.approx(got["errors"] / len(rows))
        for name in ("latency", "ttft"):
            values = np.array([r[f"{name}_ms"] for r in rows])
            for q in (50, 95, 99):
                assert got[f"{name}_p{q}"] == pytest.approx(np.percentile(values, q))
        assert got["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)
        assert got["completion_tokens"] == sum(r["completion_tokens"] for r in rows)
        scores = np.array(
            [data.quality[r["completion_id"]] for r in rows if r["completion_id"] in data.quality]
        )
        assert got["quality_n"] == len(scores)
        assert got["quality_mean"] == pytest.approx(scores.mean())
        low, high = stats.t.interval(
            0.95, len(scores) - 1, loc=scores.mean(), scale=stats.sem(scores)
        )
        assert (got["quality_ci_low"], got["quality_ci_high"]) == pytest.approx((low, high))
        thumbs = [
            data.thumbs[r["completion_id"]] for r in rows if r["completion_id"] in data.thumbs
        ]
        assert got["thumbs_n"] == len(thumbs)
        assert got["thumbs_mean"] == pytest.approx(np.mean(thumbs))
        assert got["thumbs_ci_low"] <= got["thumbs_mean"] <= got["thumbs_ci_high"]


def test_summary_groups_partition_the_rows(engine: Engine, data: KnownData) -> None:
    for by in ["label:team", "label:env", "day", "hour", "variant", None]:
        frame = analytics.summary(engine, scope=data.project_id, by=by)
        assert frame["count"].sum() == len(data.bot()), by
        if by == "label:team":
            counts = dict(zip(frame["team"], frame["count"], strict=True))
            assert counts == {"a": 20, "b": 20, "c": 20}
        if by == "label:env":
            counts = dict(zip(frame["env"].fillna("(none)"), frame["count"], strict=True))
            assert counts == {"prod": 15, "dev": 15, "(none)": 30}
        if by == "hour":
            assert len(frame) == len(data.bot())


def test_summary_refuses_unknown_grouping(engine: Engine, data: KnownData) -> None:
    with pytest.raises(InvalidInputError):
        analytics.summary(engine, scope=data.project_id, by="colour")


def test_label_pickers_list_keys_and_counted_values(engine: Engine, data: KnownData) -> None:
    assert analytics.label_keys(engine, scope=data.project_id) == ["env", "team", "tier"]
    key = Principal(is_admin=False, project_id=data.other_project_id, project_key="other")
    assert analytics.label_keys(engine, scope=key) == ["env", "team"]
    values = analytics.label_values(engine, "env", scope=data.project_id)
    assert dict(zip(values["value"], values["count"], strict=True)) == {"prod": 15, "dev": 15}
    tiers = analytics.label_values(
        engine, "tier", Filters(labels={"team": "a"}), scope=data.project_id
    )
    assert tiers["count"].tolist() == [sum(1 for i in range(10) if i % 3 == 0)]
    assert analytics.label_values(engine, "nosuchkey", scope=data.project_id).empty


def test_read_only_sql_for_admins(engine: Engine, data: KnownData) -> None:
    frame = analytics.run_sql(
        engine,
        f"SELECT count(*) AS n FROM interactions WHERE project_id = {data.other_project_id}",
        scope=ADMIN,
    )
    assert frame["n"].tolist() == [5]
    with pytest.raises(InvalidInputError):
        analytics.run_sql(engine, "DELETE FROM interactions", scope=ADMIN)
    with pytest.raises(InvalidInputError):
        analytics.run_sql(engine, "SELECT 1; SELECT 2", scope=ADMIN)
    with pytest.raises(InvalidInputError):
        analytics.run_sql(engine, "SELECT 1", scope=data.project_id)
    assert analytics.count_interactions(engine, scope=ADMIN) == 65


def test_bad_filters_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        Filters(since="last tuesday")
    with pytest.raises(InvalidInputError):
        Filters(metrics=["quality >> 3"])
    with pytest.raises(InvalidInputError):
        Filters(session="not-a-uuid")
    assert math.isclose(Filters(metrics="q>=0.25").metric_filters[0].value, 0.25)


def test_unknown_metrics_are_refused_and_unknown_label_keys_warned(
    engine: Engine, data: KnownData
) -> None:
    with pytest.raises(InvalidInputError, match="quality, thumbs"):
        analytics.summary(engine, Filters(metrics=["qualty>=0.5"]), scope=ADMIN)
    frame = analytics.interactions(engine, Filters(labels=["project=bot"]), scope=ADMIN)
    assert frame.empty
    assert frame.attrs["warnings"] == [
        "no interaction has label key 'project'; to filter by project use project=..."
    ]
    assert (
        analytics.summary(engine, Filters(labels={"team": "a"}), scope=ADMIN).attrs["warnings"]
        == []
    )


def test_a_question_past_its_read_timeout_or_cancelled_is_stopped(
    engine: Engine, data: KnownData
) -> None:
    from store.errors import QueryCancelledError
    from store.read_guard import ReadGuard

    heavy = "SELECT count(*) FROM range(100000000000) a"  # minutes, unless interrupted
    started = datetime.now()
    with pytest.raises(QueryCancelledError) as timed_out:
        analytics.run_sql(engine, heavy, scope=ADMIN, guard=ReadGuard(timeout=0.2))
    assert timed_out.value.timed_out
    assert datetime.now() - started < timedelta(seconds=10)
    guard = ReadGuard(timeout=60)
    import threading

    threading.Timer(0.2, guard.cancel).start()  # as when the HTTP client goes away
    with pytest.raises(QueryCancelledError) as cancelled:
        analytics.run_sql(engine, heavy, scope=ADMIN, guard=guard)
    assert not cancelled.value.timed_out
    # The process's analytics connection still answers afterwards.
    assert analytics.count_interactions(engine, scope=ADMIN) == len(data.records)


def test_metric_keys_are_grouped_as_bool_and_grouped_them() -> None:
    import duckdb

    from store.analytics.questions import metric_keys

    con = duckdb.connect()
    con.execute("CREATE TABLE metrics (id INTEGER, project_id INTEGER, key VARCHAR, kind VARCHAR)")
    con.executemany(
        "INSERT INTO metrics VALUES (?, ?, ?, ?)",
        [
            (1, 1, "quality", "scalar"),
            (2, 2, "quality", "bool"),  # bool in one project only: scalar
            (3, 1, "thumbs", "bool"),
            (4, 2, "thumbs", "bool"),
            (5, 1, "nokind", None),
            (6, 1, "half", "bool"),
            (7, 2, "half", None),  # bool_and leaves NULL out
            (8, 2, "Zeta", "scalar"),
        ],
    )
    grouped = (
        "SELECT key, CASE WHEN bool_and(kind = 'bool') THEN 'bool' ELSE 'scalar' END "
        "FROM metrics {where} GROUP BY key ORDER BY key"
    )
    assert metric_keys(con, None) == con.execute(grouped.format(where="")).fetchall()
    assert metric_keys(con, None) == [
        ("Zeta", "scalar"),
        ("half", "bool"),
        ("nokind", "scalar"),
        ("quality", "scalar"),
        ("thumbs", "bool"),
    ]
    mine = con.execute(grouped.format(where="WHERE project_id = ?"), [2]).fetchall()
    assert metric_keys(con, 2) == mine
    assert mine == [("Zeta", "scalar"), ("half", "scalar"), ("quality", "bool"), ("thumbs", "bool")]


def _warnings(question: str, engine: Engine, filters: Filters, scope: int) -> list[str]:
    """The warnings of one question asked with FILTERS."""
    if question == "summary":
        return list(analytics.summary_answer(engine, filters, scope=scope).warnings)
    if question == "label_values":
        return list(analytics.label_values_answer(engine, "team", filters, scope=scope).warnings)
    return list(analytics.interactions(engine, filters, scope=scope).attrs["warnings"])


def test_label_keys_are_checked_only_when_the_answer_cannot_vouch_for_them(
    engine: Engine, data: KnownData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows matching `=`, `in` or `exists` prove their keys exist: the store is asked only for
    an empty answer. `!=` and metric conditions are checked first, as before."""
    from store.analytics import questions

    calls: list[Filters | None] = []
    real = questions.check_filters

    def counted(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(questions, "check_filters", counted)
    missing = "no interaction has label key 'nosuch'"
    # filters, checks per question, checks by count_interactions, warnings
    cases: list[tuple[Filters, int, int, list[str]]] = [
        (Filters(labels={"team": "a"}), 0, 0, []),
        (Filters(labels=["team=a|b", "env"]), 0, 0, []),
        (Filters(labels={"nosuch": "x"}), 1, 0, [missing]),
        (Filters(labels={"team": "a", "nosuch": None}), 1, 0, [missing]),
        (Filters(labels=["nosuch!=x"]), 1, 1, [missing]),
        (Filters(labels=["team=a"], metrics=["quality>=0"]), 1, 1, []),
    ]
    for filters, checks, count_checks, warnings in cases:
        for question in ("summary", "label_values", "interactions"):
            calls.clear()
            assert _warnings(question, engine, filters, data.project_id) == warnings, filters
            assert len(calls) == checks, (question, filters)
        calls.clear()
        analytics.count_interactions(engine, filters, scope=data.project_id)
        assert len(calls) == count_checks, filters
    with pytest.raises(InvalidInputError, match="quality, thumbs"):
        analytics.summary(engine, Filters(labels={"team": "a"}, metrics=["q>0"]), scope=ADMIN)


def test_questions_keep_parquet_footers_in_memory(engine: Engine, data: KnownData) -> None:
    from store.analytics.lake import lake_for

    analytics.count_interactions(engine, scope=data.project_id)
    con = lake_for(engine).con
    assert con is not None
    cursor = con.cursor()
    try:
        setting = cursor.execute("SELECT current_setting('parquet_metadata_cache')").fetchone()
    finally:
        cursor.close()
    assert setting == (True,)
