"""Dashboard responsiveness on a large store: every page rendered by Streamlit's AppTest.

The store: generated interactions (short texts, 3-5 labels each, two metrics on a fraction),
plus 4-turn sessions and an A/B test over two of the three models. Generating it takes minutes, so
it is kept in .bench-cache/ (gitignored) and copied for each run. The pages run the way a browser
session drives them (sign-in switched off on loopback). Per step, "cold" is the step's run right
after every Streamlit cache was cleared and a sync was asked for (as after new data: the DuckDB
copy syncs, every query runs), "warm" the same step again with the caches filled; medians over
--runs. The first page view of a new dashboard process also builds the DuckDB copy of the whole
store: timed once, apart.
Target: every page within 2 s.

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--runs 3] [--no-browser]
    python -m bench dashboard [ARGS]   # the same, and writes the docs/benchmarks.md section
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = ROOT / ".bench-cache"
APP = str(ROOT / "dashboard" / "app.py")
SESSION_TURNS = 4
AB_TEST = "m1-vs-m2"
FILTERED_PAGES = ("overview", "interactions", "export")


# -- the generated rows (3-5 labels each, two metrics on a fraction) ---------------------------

CHUNK = 100_000
INTERACTION_COLUMNS = (
    "completion_id", "choice_index", "project_id", "model_id", "session_id", "user_id", "labels",
    "messages", "params", "completion", "finish_reason", "prompt_tokens", "completion_tokens",
    "ttft_ms", "latency_ms", "status", "source", "created_at",
)  # fmt: skip


def _labels(rng: random.Random) -> dict[str, str]:
    labels = {
        "team": f"t{rng.randrange(50)}",
        "env": rng.choice(("prod", "staging", "dev")),
        "customer": f"c{rng.randrange(1000)}",
    }
    if rng.random() < 0.5:
        labels["feature"] = f"f{rng.randrange(20)}"
    if rng.random() < 0.5:
        labels["region"] = rng.choice(("eu", "us", "ap", "sa", "af"))
    return labels


def generate(
    rows: int, seed: int = 1
) -> Iterator[tuple[list[tuple[Any, ...]], list[Any], list[Any]]]:
    """Chunks of (interactions, labels, metric values) as plain tuples, storage-format strings."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=30)
    step = timedelta(days=30) / rows
    for offset in range(0, rows, CHUNK):
        interactions: list[tuple[Any, ...]] = []
        labels: list[Any] = []
        values: list[Any] = []
        for i in range(offset, min(rows, offset + CHUNK)):
            cid = uuid.UUID(int=rng.getrandbits(128)).hex
            label = _labels(rng)
            created = (start + step * i).strftime("%Y-%m-%d %H:%M:%S.%f")
            latency = rng.gammavariate(4.0, 60.0)
            interactions.append((
                cid, 0, 1, 1 + i % 3, uuid.UUID(int=rng.getrandbits(128)).hex, f"u{i % 5000}",
                json.dumps(label), json.dumps([{"role": "user", "content": f"question {i}"}]), "{}",
                f"answer {i}", "stop", rng.randrange(10, 500), rng.randrange(10, 800),
                latency / 4, latency, "error" if rng.random() < 0.02 else "ok", "LIVE", created,
            ))  # fmt: skip
            labels.extend((cid, 1, key, value) for key, value in label.items())
            if rng.random() < 0.2:
                values.append(
                    (uuid.UUID(int=rng.getrandbits(128)).hex, cid, 1, rng.random(), created)
                )
            if rng.random() < 0.1:
                values.append(
                    (
                        uuid.UUID(int=rng.getrandbits(128)).hex,
                        cid,
                        2,
                        float(rng.random() < 0.7),
                        created,
                    )
                )
        yield interactions, labels, values


LABEL_COLUMNS = ("completion_id", "project_id", "key", "value")
VALUE_COLUMNS = ("id", "completion_id", "metric_id", "value", "created_at")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def _catalog_rows(now: str) -> list[tuple[str, list[tuple[Any, ...]]]]:
    urls = '["http://127.0.0.1:9/v1"]'
    return [
        (_insert("project", ("id", "key", "name", "created_at")), [(1, "bot", "Bot", now)]),
        (
            _insert("model", ("id", "key", "name", "upstream_urls", "multimodal", "created_at")),
            [(i, f"m{i}", f"Model {i}", urls, False, now) for i in (1, 2, 3)],
        ),
        (
            _insert("metric", ("id", "project_id", "key", "name", "kind", "scoring", "created_at")),
            [
                (1, 1, "quality", "Quality", "scalar", "higher_is_better", now),
                (2, 1, "thumbs", "Thumbs", "bool", "higher_is_better", now),
            ],
        ),
    ]


def load_sqlite(path: Path, rows: int) -> None:
    """The toy store: stdlib sqlite3 executemany, one transaction per chunk."""
    import migrations

    migrations.upgrade(f"sqlite:///{path}")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    for sql, values in _catalog_rows(now):
        connection.executemany(sql, values)
    for interactions, labels, values in generate(rows):
        connection.executemany(_insert("interaction", INTERACTION_COLUMNS), interactions)
        connection.executemany(_insert("interaction_label", LABEL_COLUMNS), labels)
        connection.executemany(_insert("metric_value", VALUE_COLUMNS), values)
        connection.commit()
    connection.close()


def query_store(rows: int) -> Path:
    """The toy store of `rows` interactions, generated once into .bench-cache/."""
    cache = CACHE / f"query-{rows}.db"
    if not cache.exists():
        CACHE.mkdir(exist_ok=True)
        partial = cache.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        started = time.perf_counter()
        load_sqlite(partial, rows)
        partial.rename(cache)
        print(f"generated {rows:,} interactions in {time.perf_counter() - started:.0f} s")
    return cache


def _add_sessions_and_ab_test(path: Path) -> None:
    """Group the rows into SESSION_TURNS-turn sessions; put models m1 and m2 in an A/B test."""
    import migrations
    from store.abtests import create_ab_test
    from store.catalog import attach_model
    from store.db import create_store_engine

    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    engine = create_store_engine(url)
    try:
        for model in ("m1", "m2", "m3"):
            attach_model(engine, project_key="bot", model_key=model, default=model == "m3")
        test = create_ab_test(
            engine,
            project_key="bot",
            key=AB_TEST,
            variants=[{"model": "m1", "weight": 1}, {"model": "m2", "weight": 1}],
            metric_key="quality",
        )
    finally:
        engine.dispose()
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            "UPDATE interaction SET ab_test_id = ?, "
            "ab_variant = CASE model_id WHEN 1 THEN 'm1' ELSE 'm2' END WHERE model_id IN (1, 2)",
            (test.id,),
        )
        connection.execute(
            "UPDATE interaction SET session_id = (SELECT first.session_id FROM interaction first "
            f"WHERE first.rowid = interaction.rowid - (interaction.rowid - 1) % {SESSION_TURNS})"
        )
        connection.commit()
    finally:
        connection.close()


def dashboard_store(rows: int) -> Path:
    """The dashboard's bench store (query store + sessions + A/B test), built once."""
    path = CACHE / f"dashboard-{rows}.db"
    if not path.exists():
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        shutil.copyfile(query_store(rows), partial)
        _add_sessions_and_ab_test(partial)
        partial.rename(path)
    return path


@dataclass
class Step:
    """One thing a user does on a page: `prepare` (untimed) sets the state before it, `act`
    is the timed run."""

    page: str
    name: str
    prepare: Callable[[], object]
    act: Callable[[], object]


def _checked(app: Any) -> Any:
    if app.exception:
        raise RuntimeError(app.exception[0].message)
    return app


def _steps(app: Any) -> list[Step]:
    def go(page: str, *, team: str | None = None) -> None:
        """On `page` with the label filter team=<team> (or none), page 1, nothing open."""
        _checked(app.switch_page(f"views/{page}.py").run())
        if page not in FILTERED_PAGES:
            return
        if app.multiselect(key="f_label_keys").value:
            _checked(app.multiselect(key="f_label_keys").set_value([]).run())
        if page == "interactions":
            app.number_input(key="page_number").set_value(1)
            _checked(app.selectbox(key="open_completion").set_value("").run())
        if team is not None:
            _checked(app.multiselect(key="f_label_keys").set_value(["team"]).run())
            _checked(app.multiselect(key="f_label_team").set_value([team]).run())

    def label_filter(page: str) -> Callable[[], object]:
        def prepare() -> None:
            go(page)
            _checked(app.multiselect(key="f_label_keys").set_value(["team"]).run())

        return prepare

    def set_team() -> object:
        return _checked(app.multiselect(key="f_label_team").set_value(["t7"]).run())

    def open_first() -> object:
        first = app.session_state["interactions_page_ids"][0]
        return _checked(app.selectbox(key="open_completion").set_value(first).run())

    def prepare_csv() -> object:
        button = next(b for b in app.button if b.label == "Prepare CSV file")
        return _checked(button.click().run())

    def switch(page: str) -> Callable[[], object]:
        return lambda: _checked(app.switch_page(f"views/{page}.py").run())

    def page_200() -> object:
        return _checked(app.number_input(key="page_number").set_value(200).run())

    return [
        Step("Overview", "all interactions", lambda: go("interactions"), switch("overview")),
        Step("Overview", "label filter team=t7", label_filter("overview"), set_team),
        Step("Interactions", "page 1 of all", lambda: go("overview"), switch("interactions")),
        Step("Interactions", "page 200 of all", lambda: go("interactions"), page_200),
        Step("Interactions", "label filter team=t7", label_filter("interactions"), set_team),
        Step(
            "Interactions",
            f"open a conversation (+ its {SESSION_TURNS}-turn session)",
            lambda: go("interactions", team="t7"),
            open_first,
        ),
        Step("Metrics", "metric definitions", lambda: go("overview"), switch("metrics")),
        Step("A/B tests", f"{AB_TEST}: traffic, report", lambda: go("metrics"), switch("ab_tests")),
        Step("Export", "all interactions (count only)", lambda: go("metrics"), switch("export")),
        Step("Export", "label filter team=t7", label_filter("export"), set_team),
        Step("Export", "prepare CSV of team=t7", lambda: go("export", team="t7"), prepare_csv),
    ]  # fmt: skip


def _seconds(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, Any]:
    """{"first_view": s, "steps": [{page, step, cold, warm}]} on the store the settings name."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.context import SYNC_NOW_KEY

    app = AppTest.from_file(APP, default_timeout=900)
    first_view = _seconds(lambda: _checked(app.run()))
    steps = _steps(app)
    cold: dict[str, list[float]] = {step.name + step.page: [] for step in steps}
    warm: dict[str, list[float]] = {step.name + step.page: [] for step in steps}
    for _ in range(runs):
        for step in steps:
            step.prepare()
            st.cache_data.clear()
            app.session_state[SYNC_NOW_KEY] = True
            cold[step.name + step.page].append(_seconds(step.act))
            warm[step.name + step.page].append(_seconds(step.act))
    return {
        "first_view": first_view,
        "steps": [
            {
                "page": step.page,
                "step": step.name,
                "cold": statistics.median(cold[step.name + step.page]),
                "warm": statistics.median(warm[step.name + step.page]),
            }
            for step in steps
        ],
    }


def run(rows: int, runs: int, *, browser: bool) -> dict[str, Any]:
    """Prepare (or reuse) the store, copy it, and time the pages on the copy (also in headless
    Chromium when `browser`: bench/dashboard_browser.py)."""
    from bench import dashboard_browser
    from store.settings import get_settings

    source = dashboard_store(rows)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="interlog-bench-dash-") as tmp:
        path = Path(tmp) / "store.db"
        shutil.copyfile(source, path)
        os.environ["INTERLOG_DATABASE_URL"] = f"sqlite:///{path}"
        os.environ["INTERLOG_DASHBOARD_AUTH"] = "false"
        os.environ["INTERLOG_DASHBOARD_HOST"] = "127.0.0.1"
        get_settings.cache_clear()
        result = measure(runs)
        if browser and dashboard_browser.available():
            result["browser"] = dashboard_browser.measure(f"sqlite:///{path}")
    result.update(rows=rows, runs=runs, seconds=time.perf_counter() - started)
    result["load_average"] = list(os.getloadavg())
    return result


def print_result(result: dict[str, Any]) -> None:
    print(f"first page view (builds the DuckDB copy): {result['first_view']:.1f} s")
    print(f"{'page':<13} {'step':<46} {'cold s':>7} {'warm s':>7}")
    for row in result["steps"]:
        print(f"{row['page']:<13} {row['step']:<46} {row['cold']:>7.2f} {row['warm']:>7.2f}")
    browser = result.get("browser")
    if browser:
        print(f"headless Chromium, first view: {browser['first_view']:.1f} s")
        print(f"{'page':<13} {'first visit s':>14} {'again s':>8}")
        for row in browser["pages"]:
            print(f"{row['page']:<13} {row['first']:>14.2f} {row['again']:>8.2f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--browser",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the pages in headless Chromium (when chromium is installed)",
    )
    args = parser.parse_args(argv)
    result = run(args.rows, args.runs, browser=args.browser)
    print_result(result)
    return result


if __name__ == "__main__":
    main()
