"""bench/report.py's dashboard parts: the section and the first-page target, from a result of
bench/dashboard.py (made up here; the benchmark itself needs the 1M-interaction stores)."""

from __future__ import annotations

from typing import Any

from bench import report


def _backend(name: str, first_page_s: float) -> dict[str, Any]:
    return {
        "backend": name,
        "store": f"{name}://x",
        "rows": 1_000_000,
        "first_page_s": first_page_s,
        "healthy_s": 1.0,
        "first_rss_mb": 400.0,
        "first_tree_mb": 480.0,
        "first_view": {"Interactions": 0.8, "Metrics": 0.5},
        "warm_view": {"Interactions": 0.4, "Metrics": 0.3, "Overview": 0.6},
        "after_rss_mb": 420.0,
        "after_tree_mb": 500.0,
        "first_page_runs": [first_page_s, first_page_s + 1],
    }


RESULT = {
    "rows": 1_000_000,
    "runs": 2,
    "date": "2026-12-03 14:00 UTC",
    "load_average": [1.0, 1.0, 1.0],
    "backends": [
        _backend("sqlite", 2.5),
        _backend("postgres", 4.0),
        {"backend": "pg2", "error": "PostgreSQL is not reachable"},
    ],
}


def test_the_first_page_target_is_checked_per_store() -> None:
    checks = report.dashboard_targets(RESULT)
    assert [c["met"] for c in checks] == [True, False, None]
    assert checks[0]["target"] == (
        "1,000,000 interactions, sqlite: dashboard: first page in a new process <= 3 s"
    )
    assert checks[1]["gap"] == "1.00 s over (1.3x the limit)"
    assert checks[0] in report.targets({"dashboard": RESULT})


def test_the_section_shows_each_store_and_page() -> None:
    text = "\n".join(report.dashboard_section(RESULT))
    assert text.startswith("## Dashboard (1,000,000 realistic interactions)")
    assert "first page in a new process **2.50 s** (target 3 s: met" in text
    assert "**4.00 s** (target 3 s: MISSED" in text
    assert "| Overview | (the first page) | 0.60 |" in text
    assert "| Interactions | 0.80 | 0.40 |" in text
    assert "**pg2**: not measured: `PostgreSQL is not reachable`" in text


def test_an_older_result_is_not_a_crash() -> None:
    text = "\n".join(report.dashboard_section({"rows": 1000, "first_view": 3.0, "steps": []}))
    assert "older benchmark" in text
