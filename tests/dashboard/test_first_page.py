"""The first page of a new dashboard process: its warm-up (dashboard/warmup.py) and the server that
starts it (dashboard/streamlit_server.py), the overview's buckets, label keys from the store's
label index, and the Overview's stacked charts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import charts, context, streamlit_server, warmup
from dashboard.filter_bar import FILTERS_KEY
from store.analytics import questions
from store.analytics.lake import drop_lake
from store.analytics.overview import BUCKETS, bucket_start
from store.db import create_store_engine
from store.filters import Filters
from store.keys import Principal
from store.settings import get_settings
from tests.dashboard.conftest import APP, TIMEOUT
from tests.dashboard.seeds import SeededStore


@pytest.fixture
def fresh_process() -> Iterator[None]:
    """As in a new process: no warm-up values, no cached reads, no store looked at yet."""

    def forget() -> None:
        with warmup._lock:
            warmup._values.clear()
            warmup._thread = None
        st.cache_data.clear()
        st.cache_resource.clear()

    forget()
    yield
    forget()


def _open_without_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOG_DASHBOARD_AUTH", "false")
    monkeypatch.setenv("INTERLOG_DASHBOARD_HOST", "127.0.0.1")
    get_settings.cache_clear()


def test_the_first_page_takes_every_value_of_the_warm_up(
    seeded: SeededStore, monkeypatch: pytest.MonkeyPatch, fresh_process: None
) -> None:
    """With sign-in off the warm-up reads what the Overview reads with the filter bar's
    defaults, under the same keys: the first run takes all of it, and shows the store's data."""
    _open_without_sign_in(monkeypatch)
    thread = warmup.start()
    thread.join(60)
    assert not thread.is_alive()
    computed = warmup.untaken()
    names = {key[1] if key[0] == "read" else key[0] for key in computed}
    assert {"data version", "projects", "overview", "label_keys", "model_keys"} <= names

    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not app.exception, app.exception
    assert warmup.untaken() == []  # every value was the page's
    assert app.session_state[FILTERS_KEY].filters == Filters()  # what the warm-up read
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Interactions"] == "21"
    assert metrics["Error rate"] == "4.8%"


def test_with_sign_in_on_only_the_version_and_projects_are_read_ahead(
    seeded: SeededStore, fresh_process: None
) -> None:
    thread = warmup.start()
    thread.join(60)
    assert {key[0] for key in warmup.untaken()} == {"data version", "projects"}


def test_the_page_reads_for_itself_what_the_warm_up_has_not(
    seeded: SeededStore, monkeypatch: pytest.MonkeyPatch, fresh_process: None
) -> None:
    """No warm-up (AppTest, `streamlit run dashboard/app.py`), or a warm-up value too old to
    stand for the page's cache: the page reads, as it always did."""
    _open_without_sign_in(monkeypatch)
    url = get_settings().database_url
    stale = context.DataVersion(synced_at=datetime(2020, 1, 1, tzinfo=UTC), token="stale")
    warmup.compute(context.data_version_key(url), lambda: stale)
    with warmup._lock:  # computed REFRESH_SECONDS and more ago
        begun, value = warmup._values[context.data_version_key(url)]
        warmup._values[context.data_version_key(url)] = (begun - 3600, value)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not app.exception, app.exception
    assert warmup.untaken() == []
    assert "Data as of 00:00:00 UTC" not in [caption.value for caption in app.caption]
    assert {metric.label: metric.value for metric in app.metric}["Interactions"] == "21"


def test_take_waits_for_a_value_being_computed_and_reads_after_a_failure() -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "warm"

    def compute_in_warm_up() -> None:
        warmup._local.active = True
        warmup.compute(("slow",), slow)

    thread = threading.Thread(target=compute_in_warm_up)
    thread.start()
    started.wait(10)
    threading.Timer(0.2, release.set).start()
    begun = time.monotonic()
    assert warmup.take(("slow",), lambda: "read") == "warm"
    assert time.monotonic() - begun >= 0.1
    thread.join()
    assert warmup.take(("slow",), lambda: "read") == "read"  # a value is taken once

    def broken() -> str:
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        warmup.compute(("broken",), broken)
    assert warmup.take(("broken",), lambda: "read") == "read"
    assert not warmup.active()


def test_the_server_warms_up_once_listening_and_scans_for_no_components(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit.components.v2 import manifest_scanner
    from streamlit.web import bootstrap

    calls: list[str] = []
    monkeypatch.setattr(bootstrap, "_on_server_start", lambda server: calls.append("started"))
    monkeypatch.setattr(warmup, "start", lambda: calls.append("warm-up"))
    streamlit_server.warm_up_once_listening()
    assert calls == []  # not before the server listens
    bootstrap._on_server_start(object())  # type: ignore[arg-type]
    assert calls == ["warm-up", "started"]

    monkeypatch.setattr(manifest_scanner, "scan_component_manifests", lambda: ["scanned"])
    streamlit_server.skip_component_scan()
    assert manifest_scanner.scan_component_manifests() == []


def test_streamlit_serves_the_dashboard_headless_with_its_own_config() -> None:
    """The options `streamlit run dashboard/app.py` would be given, and the script's config
    (dashboard/.streamlit/config.toml: no file watching) found as `streamlit run` finds it."""
    from streamlit import config
    from streamlit.web import bootstrap

    options = streamlit_server.streamlit_options("127.0.0.1", 8599)
    assert streamlit_server.streamlit_args(options) == [
        "--server.address=127.0.0.1",
        "--server.port=8599",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
    ]
    assert streamlit_server.APP.name == "app.py" and streamlit_server.APP.exists()
    before = config._main_script_path
    try:
        config._main_script_path = str(streamlit_server.APP)
        bootstrap.load_config_options(flag_options=options)
        assert config.get_option("server.fileWatcherType") == "none"
        assert config.get_option("server.port") == 8599
        assert config.get_option("server.headless") is True
    finally:
        config._main_script_path = before
        bootstrap.load_config_options(flag_options={})


# -- the overview's buckets -----------------------------------------------------------------


def test_buckets_start_where_time_bucket_starts_them() -> None:
    """bucket_start (integer arithmetic; date_trunc for months) against DuckDB's time_bucket on
    TIMESTAMPTZ in UTC, as the analytics store's connection runs: instants before the origin
    (2000-01-03) and before 1970 included, and bucket edges."""
    base = [
        datetime(1969, 12, 31, 23, 58, 30, tzinfo=UTC),
        datetime(1999, 12, 30, 10, 0, tzinfo=UTC),
        datetime(2000, 1, 3, tzinfo=UTC),
        datetime(2000, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 2, 29, 13, 37, 1, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 17, 0, tzinfo=UTC),
    ]
    instants = base + [moment + timedelta(minutes=7 * n) for moment in base for n in range(1, 40)]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE t (ts TIMESTAMPTZ)")
        con.executemany("INSERT INTO t VALUES (?)", [(moment,) for moment in instants])
        for _, interval, _ in BUCKETS:
            differ = con.execute(
                f"SELECT count(*) FROM t WHERE time_bucket({interval}, ts) "
                f"IS DISTINCT FROM {bucket_start(interval, 'ts')}"
            ).fetchone()
            assert differ == (0,), interval
    finally:
        con.close()


# -- label keys for the filter bar --------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "project"),
    [("admin", None), ("admin", "support-bot"), ("support", None), ("support", "code-assistant")],
)
def test_label_keys_from_the_index_are_those_of_the_rows(
    seeded: SeededStore, scope: str, project: str | None
) -> None:
    """Filtered by a project at most, label keys come from the store's label index; with any
    other filter, from the interactions themselves (a filter matching every row here)."""
    engine = create_store_engine(get_settings().database_url)
    try:
        projects = context.read_projects(get_settings().database_url)
        support = next(p for p in projects if p.key == "support-bot")
        principal = (
            Principal(is_admin=True)
            if scope == "admin"
            else Principal(is_admin=False, project_id=support.id, project_key=support.key)
        )
        indexed = questions.label_keys(engine, Filters(project=project), scope=principal)
        everything = Filters(project=project, since=datetime(2000, 1, 1, tzinfo=UTC))
        scanned = questions.label_keys(engine, everything, scope=principal, max_staleness=0)
        assert indexed == scanned
        assert (indexed != []) == (scope == "admin" or project in (None, support.key))
    finally:
        drop_lake(engine)
        engine.dispose()


# -- the Overview's charts -------------------------------------------------------------------


def test_charts_of_a_column_are_one_stack_over_one_frame() -> None:
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
            "model": ["a", "b"],
            "count": [3, 4],
            "latency_p50": [10.0, 20.0],
        }
    )
    first = charts.line_over_time(frame, time="time", value="count", title="Interactions")
    second = charts.line_over_time(frame, time="time", value="latency_p50", title="p50")
    stacked = charts.stack([first, second])
    assert list(stacked.data.columns) == ["time", "model", "count", "latency_p50"]
    assert [spec["title"] for spec in stacked.spec["vconcat"]] == ["Interactions", "p50"]
    assert {spec["height"] for spec in stacked.spec["vconcat"]} == {
        charts.HEIGHT - charts.FRAME_HEIGHT
    }
    assert charts.stack([first]) is first
    with pytest.raises(ValueError):
        charts.stack(
            [first, charts.line_over_time(frame.iloc[:1], time="time", value="count", title="x")]
        )


def test_interval_charts_keep_every_row_and_show_the_scored_groups() -> None:
    frame = pd.DataFrame(
        {
            "model": ["a", "b", "c"],
            "q_mean": [0.5, None, 0.7],
            "q_ci_low": [0.4, None, 0.6],
            "q_ci_high": [0.6, None, 0.8],
            "q_n": [10, 0, 3],
        }
    )
    chart = charts.means_with_intervals(
        frame, group="model", mean="q_mean", low="q_ci_low", high="q_ci_high", title="q",
        scored="q_n",
    )  # fmt: skip
    assert len(chart.data) == 3
    assert chart.spec["transform"] == [{"filter": {"field": "q_n", "gt": 0}}]
    assert chart.spec["height"] == 80  # two groups shown
