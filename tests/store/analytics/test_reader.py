"""The analytics reader child (store/analytics/reader.py) against the same questions asked in
this process, on SQLite and PostgreSQL: same answers, same errors (same classes, same
attributes), exports streamed byte for byte, a child that ends at its RSS limit or is killed is
replaced on the next call, and a cancelled read stops at once."""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest

from store.analytics.reader import LocalAnalytics, ReaderProcess
from store.errors import InvalidInputError, NotFoundError, QueryCancelledError
from store.filters import Filters
from store.keys import Principal
from store.read_guard import ReadGuard
from store.settings import Settings
from tests.conftest import BACKENDS
from tests.store.analytics_data import SharedStore, shared_store

ADMIN = Principal(is_admin=True)


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStore]:
    with shared_store(request, request.param, tmp_path_factory.mktemp("reader")) as shared:
        yield shared


def _settings(store: SharedStore, **overrides: object) -> Settings:
    return Settings(database_url=store.url, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reader(store: SharedStore) -> Iterator[ReaderProcess]:
    process = ReaderProcess(_settings(store))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _approx(row: dict[str, Any]) -> dict[str, Any]:
    return {k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for k, v in row.items()}


def test_answers_match_this_process(store: SharedStore, reader: ReaderProcess) -> None:
    local = LocalAnalytics(store.engine)
    filters = Filters(labels=["team=a"], metrics=["quality>=0.2"])
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("summary_answer", (filters,), {"scope": store.data.project_id, "by": "model"}),
        ("summary_answer", (None,), {"scope": ADMIN, "by": "label:team"}),
        ("label_keys", (None,), {"scope": store.data.project_id}),
        ("label_values_answer", ("team", None), {"scope": ADMIN}),
    ]
    for name, args, kwargs in calls:
        got = reader.call(name, *args, max_staleness=3600, **kwargs)
        want = local.call(name, *args, max_staleness=3600, **kwargs)
        if name == "label_keys":
            assert got == want != []
        else:
            # Parallel aggregates may add floats in another order: equal to the last bits only.
            assert got.records() == [_approx(row) for row in want.records()] != []
            assert got.warnings == want.warnings


def test_errors_keep_their_class_and_attributes(store: SharedStore, reader: ReaderProcess) -> None:
    with pytest.raises(InvalidInputError, match="nosuchmetric"):
        reader.call("summary_answer", Filters(metrics=["nosuchmetric>=1"]), scope=ADMIN)
    with pytest.raises(NotFoundError) as caught:
        reader.call("ab_test_report", "nosuch", scope=store.data.project_id)
    assert caught.value.entity and "nosuch" in str(caught.value)
    with pytest.raises(ValueError, match="unknown call"):
        reader.call("run_sql", "SELECT 1")  # only the listed questions can be asked


def test_export_streams_the_same_rows(store: SharedStore, reader: ReaderProcess) -> None:
    filters = Filters(labels=["team=b"])
    kwargs = {"scope": store.data.project_id, "format": "parquet", "batch_size": 7}
    got = b"".join(reader.stream("export_chunks", filters, **kwargs))
    want = b"".join(LocalAnalytics(store.engine).stream("export_chunks", filters, **kwargs))
    got_table, want_table = pq.read_table(io.BytesIO(got)), pq.read_table(io.BytesIO(want))
    assert got_table.num_rows == want_table.num_rows == 20
    assert got_table.to_pylist() == want_table.to_pylist()
    with pytest.raises(InvalidInputError, match="unknown export format"):
        next(reader.stream("export_chunks", None, scope=ADMIN, format="xlsx"))


def test_a_child_past_its_rss_limit_is_replaced(store: SharedStore) -> None:
    process = ReaderProcess(_settings(store, analytics_reader_max_mb=1))  # always past it
    try:
        # Each child ends after its calls (one arriving while it ends is still answered by it,
        # so on a busy machine a few calls may go to the same child); a later call is answered
        # by a new one.
        deadline = time.monotonic() + 60
        calls = 0
        while calls < 3 or (process.starts < 2 and time.monotonic() < deadline):
            answer = process.call("summary_answer", None, scope=ADMIN, max_staleness=3600)
            assert sum(row["count"] for row in answer.records()) == len(store.data.records)
            calls += 1
            time.sleep(0.1 * (calls > 3))
        assert process.starts >= 2
    finally:
        process.stop()


def test_a_killed_child_is_replaced(store: SharedStore) -> None:
    process = ReaderProcess(_settings(store))
    try:
        process.start()
        first = process.pid
        assert first is not None and process.starts == 1
        os.kill(first, signal.SIGKILL)
        keys = process.call("label_keys", None, scope=ADMIN, max_staleness=3600)
        assert keys == ["env", "team", "tier"]
        assert process.starts == 2 and process.pid not in (None, first)
    finally:
        process.stop()
    assert process.pid is None


def test_a_cancelled_read_stops(reader: ReaderProcess) -> None:
    guard = ReadGuard(30)
    guard.cancel()  # the HTTP client went away before the call was sent
    with pytest.raises(QueryCancelledError) as caught:
        reader.call("summary_answer", None, scope=ADMIN, guard=guard)
    assert not caught.value.timed_out
    # The child is still there and answers the next call.
    assert reader.call("label_keys", None, scope=ADMIN, max_staleness=3600)
