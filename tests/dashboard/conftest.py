"""Fixtures for dashboard tests: a seeded SQLite store the app reads through settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store.db import create_store_engine
from store.settings import get_settings
from tests.dashboard.seeds import SeededStore, seed_dashboard_store

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 60


@pytest.fixture
def seeded(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeededStore]:
    """A seeded SQLite store that the app under test reads (INTERLOG_DATABASE_URL)."""
    engine = create_store_engine(sqlite_url)
    try:
        store = seed_dashboard_store(engine)
    finally:
        engine.dispose()
    monkeypatch.setenv("INTERLOG_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("INTERLOG_DASHBOARD_AUTH", "true")
    get_settings.cache_clear()
    yield store
    get_settings.cache_clear()


def signed_in_app(secret: str) -> AppTest:
    """The app after signing in with `secret`, on its default page."""
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.text_input(key="sign_in_key").input(secret)
    app.button[0].click()
    app.run()
    assert not app.exception, app.exception
    return app


def page_text(app: AppTest) -> str:
    """Every piece of visible text of the current run, for assertions."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "metric",
        "text",
    ):
        for element in app.get(kind):
            parts.append(str(getattr(element, "value", "")))
            parts.append(str(getattr(element, "label", "")))
    return "\n".join(parts)
