"""The dashboard's pages under Streamlit's AppTest, on a seeded SQLite store."""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlmodel import col
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Image

from dashboard.context import REFRESH_SECONDS
from store.db import create_store_engine
from store.interactions import write_interactions
from store.models import Comparison, Metric, MetricValue
from store.settings import get_settings
from tests.dashboard.conftest import APP, TIMEOUT, page_text, signed_in_app
from tests.dashboard.seeds import SeededStore, _record

EMPTY = "No interactions match these filters."


def _button(app: AppTest, label: str) -> object:
    matches = [button for button in app.button if button.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in app.button]}"
    return matches[0]


def _open_interactions(app: AppTest) -> AppTest:
    app.switch_page("views/interactions.py").run()
    assert not app.exception, app.exception
    return app


def _table_ids(app: AppTest) -> list[str]:
    return list(app.session_state["interactions_page_ids"])


def _metric_values(database_url: str, completion_id: str) -> list[tuple[float, str | None]]:
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(col(MetricValue.value), col(MetricValue.details)).where(
                    col(MetricValue.completion_id) == uuid.UUID(completion_id)
                )
            ).all()
    finally:
        engine.dispose()
    return [(float(value), details) for value, details in rows]


def test_unknown_key_is_refused_with_a_message(seeded: SeededStore) -> None:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    app.text_input(key="sign_in_key").input("il_00000000_not-a-real-key")
    app.button[0].click()
    app.run()
    assert "Unknown or revoked API key." in [error.value for error in app.error]
    assert "interlog_principal" not in app.session_state


def test_admin_sees_every_project_and_a_project_key_only_its_own(seeded: SeededStore) -> None:
    admin = _open_interactions(signed_in_app(seeded.admin_key))
    assert set(_table_ids(admin)) == {
        *seeded.support_ids,
        *seeded.session_ids,
        seeded.image_completion_id,
        *seeded.code_ids,
    }
    code = _open_interactions(signed_in_app(seeded.code_key))
    assert set(_table_ids(code)) == set(seeded.code_ids)
    assert "5 interactions match" in page_text(code)
    support = _open_interactions(signed_in_app(seeded.support_key))
    assert not set(_table_ids(support)) & set(seeded.code_ids)
    assert len(_table_ids(support)) == 16


def test_project_key_cannot_open_another_projects_completion(seeded: SeededStore) -> None:
    app = signed_in_app(seeded.support_key)
    app.query_params["completion"] = seeded.code_ids[0]
    _open_interactions(app)
    text = page_text(app)
    assert f"Completion {seeded.code_ids[0]} is not visible to you" in text
    assert "Code question 0" not in text


def test_label_filter_changes_the_interactions_table(seeded: SeededStore) -> None:
    app = _open_interactions(signed_in_app(seeded.admin_key))
    assert len(_table_ids(app)) == 21
    app.multiselect(key="f_label_keys").select("team").run()
    assert set(app.multiselect(key="f_label_team").options) >= {"billing", "shipping", "vision"}
    app.multiselect(key="f_label_team").select("billing").run()
    assert set(_table_ids(app)) == set(seeded.billing_ids)
    assert "team = billing" in page_text(app)
    app.multiselect(key="f_label_keys").select("lang").run()
    app.multiselect(key="f_label_lang").select("fr").run()
    expected = {cid for i, cid in enumerate(seeded.support_ids[:12]) if i % 3 == 0 and i % 2 == 1}
    assert set(_table_ids(app)) == expected


def test_model_status_text_and_session_filters_narrow_the_rows(seeded: SeededStore) -> None:
    app = _open_interactions(signed_in_app(seeded.admin_key))
    app.selectbox(key="f_status").select("error").run()
    assert _table_ids(app) == [seeded.support_ids[11]]
    app.selectbox(key="f_status").select("(all)").run()
    app.text_input(key="f_search").input("write a loop").run()
    assert set(_table_ids(app)) == set(seeded.code_ids)
    app.text_input(key="f_search").input("").run()
    app.text_input(key="f_session").input(seeded.session_id).run()
    assert set(_table_ids(app)) == set(seeded.session_ids)


def test_filters_that_match_nothing_show_the_empty_state(seeded: SeededStore) -> None:
    app = _open_interactions(signed_in_app(seeded.admin_key))
    app.text_input(key="f_search").input("no interaction says this").run()
    assert EMPTY in [info.value for info in app.info]
    app.switch_page("views/overview.py").run()
    assert EMPTY in [info.value for info in app.info]


def test_metric_range_filter_keeps_only_scores_in_range(seeded: SeededStore) -> None:
    app = _open_interactions(signed_in_app(seeded.admin_key))
    app.multiselect(key="f_metric_keys").select("quality").run()
    app.number_input(key="f_min_quality").set_value(0.8).run()
    expected = {seeded.support_ids[0], *(seeded.support_ids[i] for i in (2, 4, 6))}
    assert set(_table_ids(app)) == expected


def test_opening_a_row_shows_the_conversation_with_its_image_and_scores(
    seeded: SeededStore,
) -> None:
    app = _open_interactions(signed_in_app(seeded.admin_key))
    app.selectbox(key="open_completion").select(seeded.image_completion_id).run()
    assert not app.exception, app.exception
    text = page_text(app)
    assert "What is in this picture?" in text
    assert "A single pixel." in text
    captions: list[str] = []
    for image in app.get("image"):
        assert isinstance(image, Image)
        captions.extend(image.captions)
    assert f"sha256 {seeded.image_sha256[:12]}…" in captions
    app.selectbox(key="open_completion").select(seeded.scored_completion_id).run()
    scores = [table.value for table in app.table if "details" in table.value.columns]
    assert any(
        (frame["metric"] == "quality").any() and (frame["value"] == "0.9").any() for frame in scores
    )
    tables = [table.value for table in app.table]
    labels = next(t for t in tables if list(t.columns) == ["key", "value"])
    assert dict(zip(labels["key"], labels["value"], strict=True)) == {
        "team": "billing",
        "lang": "en",
    }


def test_session_view_lists_every_turn_in_order(seeded: SeededStore) -> None:
    app = _open_interactions(signed_in_app(seeded.admin_key))
    app.selectbox(key="open_completion").select(seeded.session_ids[1]).run()
    text = page_text(app)
    assert f"Session {seeded.session_id}: 3 turn(s)" in text
    positions = [text.index(f"Session turn {turn} answer") for turn in range(3)]
    assert positions == sorted(positions)
    assert "**Turn 2** (this completion)" in text


def test_scoring_a_completion_writes_exactly_one_metric_value(seeded: SeededStore) -> None:
    target = seeded.support_ids[9]
    database_url = get_settings().database_url
    assert _metric_values(database_url, target) == []
    app = _open_interactions(signed_in_app(seeded.support_key))
    app.selectbox(key="open_completion").select(target).run()
    app.selectbox(key="score_metric").select("quality").run()
    app.number_input(key="score_number").set_value(0.75)
    app.text_area(key="score_details").input("polite and correct")
    _button(app, "Save score").click()  # type: ignore[attr-defined]
    app.run()
    assert not app.exception, app.exception
    assert _metric_values(database_url, target) == [(0.75, "polite and correct")]
    shown = [table.value for table in app.table if "details" in table.value.columns]
    assert any((frame["details"] == "polite and correct").any() for frame in shown)


def test_bool_metric_is_scored_with_a_toggle(seeded: SeededStore) -> None:
    target = seeded.support_ids[10]
    app = _open_interactions(signed_in_app(seeded.admin_key))
    app.selectbox(key="open_completion").select(target).run()
    app.selectbox(key="score_metric").select("thumbs_up").run()
    assert not [n for n in app.number_input if n.key == "score_number"]
    app.toggle(key="score_bool").set_value(True)
    _button(app, "Save score").click()  # type: ignore[attr-defined]
    app.run()
    assert _metric_values(get_settings().database_url, target) == [(1.0, None)]


def test_a_score_out_of_range_is_refused_with_a_message(seeded: SeededStore) -> None:
    target = seeded.support_ids[9]
    app = _open_interactions(signed_in_app(seeded.support_key))
    app.selectbox(key="open_completion").select(target).run()
    app.selectbox(key="score_metric").select("quality").run()
    app.number_input(key="score_number").set_value(1e13)
    _button(app, "Save score").click()  # type: ignore[attr-defined]
    app.run()
    assert not app.exception, app.exception
    errors = [error.value for error in app.error]
    assert any("metric quality: value" in e and "out of range" in e for e in errors), errors
    assert _metric_values(get_settings().database_url, target) == []


def test_preference_between_two_completions_is_stored(seeded: SeededStore) -> None:
    app = signed_in_app(seeded.support_key)
    app.switch_page("views/compare.py").run()
    app.text_input(key="compare_a").input(seeded.support_ids[4]).run()
    app.text_input(key="compare_b").input(seeded.support_ids[5]).run()
    assert "Support answer 4" in page_text(app) and "Support answer 5" in page_text(app)
    app.radio(key="pref").set_value("B is better")
    _button(app, "Save preference").click()  # type: ignore[attr-defined]
    app.run()
    assert not app.exception, app.exception
    engine = create_store_engine(get_settings().database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                col(Comparison.preferred_completion_id), col(Comparison.other_completion_id)
            ).where(col(Comparison.preferred_completion_id) == uuid.UUID(seeded.support_ids[5]))
        ).all()
    engine.dispose()
    assert [(str(a), str(b)) for a, b in rows] == [(seeded.support_ids[5], seeded.support_ids[4])]


def test_compare_refuses_another_projects_completion(seeded: SeededStore) -> None:
    app = signed_in_app(seeded.support_key)
    app.switch_page("views/compare.py").run()
    app.text_input(key="compare_a").input(seeded.support_ids[0]).run()
    app.text_input(key="compare_b").input(seeded.code_ids[0]).run()
    assert f"Not visible to you (or unknown): {seeded.code_ids[0]}" in page_text(app)
    assert not [b for b in app.button if b.label == "Save preference"]


def test_metrics_page_lists_and_defines_metrics(seeded: SeededStore) -> None:
    app = signed_in_app(seeded.code_key)
    app.switch_page("views/metrics.py").run()
    listed = app.dataframe[0].value
    assert list(listed["key"]) == ["compiles"]
    app.text_input(key="metric_key").input("helpfulness")
    app.radio(key="metric_scoring").set_value("lower_is_better")
    _button(app, "Define metric").click()  # type: ignore[attr-defined]
    app.run()
    assert not app.exception, app.exception
    assert sorted(app.dataframe[0].value["key"]) == ["compiles", "helpfulness"]
    engine = create_store_engine(get_settings().database_url)
    with engine.connect() as connection:
        scoring = connection.execute(
            select(col(Metric.scoring)).where(col(Metric.key) == "helpfulness")
        ).scalar_one()
    engine.dispose()
    assert scoring == "lower_is_better"
    app.text_input(key="metric_key").input("compiles")
    _button(app, "Define metric").click()  # type: ignore[attr-defined]
    app.run()
    assert any("already exists" in error.value for error in app.error)


def test_ab_tests_page_shows_variants_traffic_and_report(seeded: SeededStore) -> None:
    app = signed_in_app(seeded.admin_key)
    app.switch_page("views/ab_tests.py").run()
    assert not app.exception, app.exception
    traffic = app.dataframe[0].value
    assert dict(zip(traffic["variant"], traffic["interactions"], strict=True)) == {
        "small-model": 6,
        "large-model": 6,
    }
    report = app.dataframe[1].value
    assert list(report["variant"]) == ["small-model", "large-model"]
    assert list(report["n"]) == [6, 6]
    assert list(report["observations"]) == [4, 4]
    assert "small-vs-large" in page_text(app) or any(
        "small-vs-large" in e.label for e in app.expander
    )
    code = signed_in_app(seeded.code_key)
    code.switch_page("views/ab_tests.py").run()
    assert "No A/B tests yet" in page_text(code)


def test_overview_shows_volume_and_follows_the_filters(seeded: SeededStore) -> None:
    app = signed_in_app(seeded.admin_key)
    assert not app.exception, app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Interactions"] == "21"
    assert metrics["Error rate"] == "4.8%"
    app.selectbox(key="f_project").select("code-assistant").run()
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Interactions"] == "5"
    assert metrics["Error rate"] == "0.0%"
    by_model = app.dataframe[0].value
    assert list(by_model["model"]) == ["small-model"]


def test_new_rows_show_after_refresh_not_on_every_rerun(seeded: SeededStore) -> None:
    started = time.monotonic()
    app = signed_in_app(seeded.admin_key)
    assert {metric.label: metric.value for metric in app.metric}["Interactions"] == "21"
    assert any(caption.value.startswith("Data as of ") for caption in app.caption)
    engine = create_store_engine(get_settings().database_url)
    try:
        write_interactions(engine, [_record(project_id=1, model_id=1, status="ok")])
    finally:
        engine.dispose()
    app.run()
    if time.monotonic() - started < REFRESH_SECONDS:  # within the refresh period: cached
        assert {metric.label: metric.value for metric in app.metric}["Interactions"] == "21"
    _button(app, "Refresh").click()  # type: ignore[attr-defined]
    app.run()
    assert not app.exception, app.exception
    assert {metric.label: metric.value for metric in app.metric}["Interactions"] == "22"


@pytest.mark.parametrize(("host", "allowed"), [("127.0.0.1", True), ("0.0.0.0", False)])
def test_sign_in_can_be_switched_off_only_on_loopback(
    seeded: SeededStore, monkeypatch: pytest.MonkeyPatch, host: str, allowed: bool
) -> None:
    monkeypatch.setenv("INTERLOG_DASHBOARD_AUTH", "false")
    monkeypatch.setenv("INTERLOG_DASHBOARD_HOST", host)
    get_settings.cache_clear()
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    errors = " ".join(error.value for error in app.error)
    if allowed:
        assert not errors
        assert {metric.label: metric.value for metric in app.metric}["Interactions"] == "21"
    else:
        assert "listens on 0.0.0.0" in errors
        assert not app.metric


def test_export_page_downloads_exactly_the_filtered_rows(seeded: SeededStore) -> None:
    app = signed_in_app(seeded.support_key)
    app.switch_page("views/export.py").run()
    app.multiselect(key="f_label_keys").select("team").run()
    app.multiselect(key="f_label_team").select("billing").run()
    assert "4 interactions match" in page_text(app)
    _button(app, "Prepare CSV file").click()  # type: ignore[attr-defined]
    app.run()
    assert not app.exception, app.exception
    fmt, _, data = app.session_state["export_ready"]
    frame = pd.read_csv(io.BytesIO(data))
    assert fmt == "csv"
    assert set(frame["completion_id"]) == set(seeded.billing_ids)
    app.radio(key="export_format").set_value("jsonl").run()
    _button(app, "Prepare Fine-tuning JSONL file").click()  # type: ignore[attr-defined]
    app.run()
    lines = app.session_state["export_ready"][2].decode().splitlines()
    examples = [json.loads(line) for line in lines]
    assert len(examples) == 4
    assert all(example["messages"][-1]["role"] == "assistant" for example in examples)
    assert {example["messages"][-1]["content"] for example in examples} == {
        f"Support answer {i} for billing" for i in (0, 3, 6, 9)
    }


@pytest.mark.parametrize("sign_in", [True, False])
def test_a_store_never_migrated_is_explained_not_a_traceback(
    sign_in: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOG_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("INTERLOG_DASHBOARD_AUTH", "true" if sign_in else "false")
    get_settings.cache_clear()
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if sign_in:  # the key lookup is the first query
        app.text_input(key="sign_in_key").input("il_00000000_any-key")
        app.button[0].click()
        app.run()
    assert not app.exception, app.exception
    [error] = app.error
    assert error.value.startswith("The dashboard cannot use its store: the store at sqlite:///")
    assert "is missing Interlog tables" in error.value and "`interlog db upgrade`" in error.value


def test_an_answer_with_tool_calls_shows_each_call_and_the_earlier_tool_turns(
    seeded: SeededStore,
) -> None:
    earlier_call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
    }
    answer_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_forecast", "arguments": '{"city": "Paris", "days": 3}'},
    }
    record = _record(
        project_id=1,
        model_id=1,
        messages=[
            {"role": "user", "content": "Weather in Rome, then a forecast for Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [earlier_call]},
            {"role": "tool", "tool_call_id": "call_0", "content": '{"rome": "sunny"}'},
        ],
        completion="",
        tool_calls=[answer_call],
        finish_reason="tool_calls",
    )
    engine = create_store_engine(get_settings().database_url)
    try:
        write_interactions(engine, [record])
    finally:
        engine.dispose()
    app = _open_interactions(signed_in_app(seeded.admin_key))
    table = app.dataframe[0].value
    assert table["completion"].iloc[0] == "🛠️ get_forecast"  # the newest row: its tools
    app.selectbox(key="open_completion").select(record["completion_id"]).run()
    assert not app.exception, app.exception
    text = page_text(app)
    assert "calls **get_weather** · `call_0`" in text
    assert "calls **get_forecast** · `call_1`" in text
    assert "tool · answers call_0" in text
    assert "_(no completion text)_" not in text
    arguments = [json.loads(code.value) for code in app.code if code.value.startswith("{")]
    assert {"city": "Paris", "days": 3} in arguments
    assert {"city": "Rome"} in arguments
