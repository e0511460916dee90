"""store.overview (totals, groups and time buckets in one pass) and store.data_version, on the
known data of tests/store/analytics_data.py (60 `bot` interactions one hour apart, two models)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from store import analytics
from store.analytics.lake import drop_lake
from store.analytics.overview import choose_bucket, overview
from store.analytics.version import data_version
from store.db import create_store_engine
from store.errors import InvalidInputError
from store.filters import Filters
from store.ids import uuid7
from store.interactions import write_interactions
from store.metrics import create_metric
from tests.conftest import BACKENDS
from tests.store.analytics_data import KnownData, SharedStore, shared_store, write_known_data


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStore]:
    with shared_store(request, request.param, tmp_path_factory.mktemp("overview")) as shared:
        yield shared


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )


@pytest.mark.parametrize("filters", [Filters(), Filters(labels=["team=a|b"], status="ok")])
def test_totals_and_groups_equal_the_summary(store: SharedStore, filters: Filters) -> None:
    scope = store.data.project_id
    result = overview(store.engine, filters, scope=scope)
    _same(result.total, analytics.summary(store.engine, filters, scope=scope, by=None))
    _same(result.by_group, analytics.summary(store.engine, filters, scope=scope, by="model"))


def test_buckets_partition_each_model_and_match_the_records(store: SharedStore) -> None:
    data: KnownData = store.data
    result = overview(store.engine, scope=data.project_id)
    assert result.bucket == "hour"  # 59 hours for two lines: at most 200 points each
    frame = result.over_time
    assert set(frame["model"]) == {"m1", "m2"}
    counts = frame.groupby("model")["count"].sum().to_dict()
    assert counts == {"m1": 30, "m2": 30}
    assert frame["time"].is_monotonic_increasing
    for _, row in frame.iterrows():
        start = row["time"].to_pydatetime()
        rows = [
            r
            for r in data.bot()
            if r["model"] == row["model"]
            and start <= datetime.fromisoformat(r["created_at"]) < start + timedelta(hours=1)
        ]
        assert row["count"] == len(rows)
        assert row["latency_p50"] == pytest.approx(np.median([r["latency_ms"] for r in rows]))
        scores = [
            data.quality[r["completion_id"]] for r in rows if r["completion_id"] in data.quality
        ]
        assert row["quality_n"] == len(scores)
        if scores:
            assert row["quality_mean"] == pytest.approx(np.mean(scores))


def test_fewer_points_mean_wider_buckets_and_fewer_lines(store: SharedStore) -> None:
    scope = store.data.project_id
    wide = overview(store.engine, scope=scope, max_points=40)
    assert wide.bucket == "6 hours"  # 3-hour buckets: up to 21 per line, over 40 // 2
    assert wide.over_time.groupby("model").size().max() <= 20
    assert wide.over_time.groupby("model")["count"].sum().to_dict() == {"m1": 30, "m2": 30}
    one = overview(store.engine, scope=scope, max_series=1)
    assert set(one.over_time["model"]) == {"m1"}  # the busiest (a tie: the first by name)
    assert int(one.by_group["count"].sum()) == 60  # groups and totals keep every row


def test_nothing_matches_gives_empty_frames(store: SharedStore) -> None:
    result = overview(store.engine, Filters(labels=["team=z"]), scope=store.data.project_id)
    assert result.total.empty and result.by_group.empty and result.over_time.empty


def test_project_scope_and_bad_groupings(store: SharedStore) -> None:
    other = overview(store.engine, scope=store.data.other_project_id)
    assert int(other.total["count"].iloc[0]) == 5
    with pytest.raises(InvalidInputError):
        overview(store.engine, scope=store.data.project_id, by="hour")
    by_team = overview(store.engine, scope=store.data.project_id, by="label:team")
    assert dict(zip(by_team.by_group["team"], by_team.by_group["count"], strict=True)) == {
        "a": 20,
        "b": 20,
        "c": 20,
    }


def test_choose_bucket_keeps_under_the_point_budget() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert choose_bucket(start, start)[0] == "minute"
    assert choose_bucket(start, start + timedelta(hours=1))[0] == "minute"
    assert choose_bucket(start, start + timedelta(days=1), max_points=100)[0] == "15 minutes"
    assert choose_bucket(start, start + timedelta(days=30), max_points=133)[0] == "6 hours"
    assert choose_bucket(start, start + timedelta(days=3650))[0] == "month"


def test_data_version_changes_only_with_the_data(sqlite_url: str) -> None:
    engine: Engine = create_store_engine(sqlite_url)
    try:
        write_known_data(engine, n=6)
        first = data_version(engine, max_staleness=0)
        assert data_version(engine, max_staleness=0).token == first.token  # synced, unchanged
        record = {
            "completion_id": str(uuid7()),
            "project_id": 1,
            "model_id": 1,
            "session_id": str(uuid.uuid4()),
            "created_at": datetime.now(UTC).isoformat(),
            "messages": [{"role": "user", "content": "one more"}],
            "completion": "more",
            "status": "ok",
        }
        write_interactions(engine, [record])
        assert data_version(engine, max_staleness=60).token == first.token  # not synced yet
        second = data_version(engine, max_staleness=0)
        assert second.token != first.token and second.synced_at > first.synced_at
        create_metric(engine, project_key="bot", key="brevity", kind="scalar")
        assert data_version(engine, max_staleness=0).token != second.token
    finally:
        drop_lake(engine)
        engine.dispose()
