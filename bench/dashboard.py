"""Dashboard responsiveness on a large store: each page rendered by Streamlit's AppTest.

Loads N interactions (bench/query.py's generator: 3-5 labels each, metrics on a fraction) into a
fresh SQLite file, then renders the pages the way a browser session would (sign-in switched off on
loopback) and prints, per step, the first (cold: the DuckDB copy is built) and the median of
later renders with Streamlit's caches cleared (every query runs again) and with them warm.
Target: every page within 2 s on 1,000,000 interactions once the copy exists.

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.query import load_sqlite
from store.settings import get_settings

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def _seconds(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _checked(app: AppTest) -> AppTest:
    if app.exception:
        raise RuntimeError(app.exception[0].message)
    return app


def measure(runs: int) -> list[tuple[str, float, float, float]]:
    """(step, cold s, median uncached s, median cached s) per dashboard step."""
    app = AppTest.from_file(APP, default_timeout=600)

    def overview() -> object:
        return _checked(app.switch_page("views/overview.py").run())

    def interactions() -> object:
        return _checked(app.switch_page("views/interactions.py").run())

    def label_filter() -> object:
        app.multiselect(key="f_label_keys").set_value(["team"]).run()
        return _checked(app.multiselect(key="f_label_team").set_value(["t7"]).run())

    def open_conversation() -> object:
        ids = app.session_state["interactions_page_ids"]
        return _checked(app.selectbox(key="open_completion").set_value(ids[0]).run())

    def clear_filters() -> object:
        app.multiselect(key="f_label_keys").set_value([]).run()
        return _checked(app.selectbox(key="open_completion").set_value("").run())

    steps = [
        ("overview (all rows)", overview),
        ("interactions page 1", interactions),
        ("label filter team=t7", label_filter),
        ("open a conversation", open_conversation),
    ]
    app.run()
    results = []
    cold = {name: _seconds(step) for name, step in steps}
    uncached: dict[str, list[float]] = {name: [] for name, _ in steps}
    cached: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(runs):
        clear_filters()
        st.cache_data.clear()
        for name, step in steps:
            uncached[name].append(_seconds(step))
        clear_filters()
        for name, step in steps:
            cached[name].append(_seconds(step))
    for name, _ in steps:
        results.append(
            (name, cold[name], statistics.median(uncached[name]), statistics.median(cached[name]))
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="interlog-bench-dash-") as tmp:
        path = Path(tmp) / "store.db"
        started = time.perf_counter()
        load_sqlite(path, args.rows)
        print(f"loaded {args.rows:,} interactions in {time.perf_counter() - started:.1f} s")
        os.environ["INTERLOG_DATABASE_URL"] = f"sqlite:///{path}"
        os.environ["INTERLOG_DASHBOARD_AUTH"] = "false"
        os.environ["INTERLOG_DASHBOARD_HOST"] = "127.0.0.1"
        get_settings.cache_clear()
        print(f"{'step':<24} {'cold s':>8} {'uncached s':>11} {'cached s':>9}")
        for name, cold, uncached, cached in measure(args.runs):
            print(f"{name:<24} {cold:>8.2f} {uncached:>11.2f} {cached:>9.2f}")


if __name__ == "__main__":
    main()
