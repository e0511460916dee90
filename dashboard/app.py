"""Interlog dashboard (Streamlit): sign in, then pages that call store functions (no SQL here)."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path; the pages import the packages.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dashboard import timing  # noqa: E402

timing.mark("script run: started")

import streamlit as st  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402

from dashboard.auth import require_principal, sign_out  # noqa: E402
from dashboard.context import page_context, sync_on_next_run  # noqa: E402
from dashboard.filter_bar import render_filter_bar  # noqa: E402
from store.db import unusable_store  # noqa: E402
from store.settings import Settings, get_settings  # noqa: E402

timing.mark("script run: entry point imported")
PAGES_DIR = Path(__file__).resolve().parent / "views"
FILTERED_PAGES = {"Overview", "Interactions", "Export"}


def main() -> None:
    st.set_page_config(page_title="Interlog", layout="wide")
    settings = get_settings()
    try:
        _run(settings)
    except DBAPIError as exc:
        problem = unusable_store(exc, settings.database_url)
        if problem is None:
            raise
        st.error(f"The dashboard cannot use its store: {problem}")


def _run(settings: Settings) -> None:
    principal = require_principal(settings)
    pages = [
        st.Page(
            PAGES_DIR / "overview.py", title="Overview", icon=":material/monitoring:", default=True
        ),
        st.Page(PAGES_DIR / "interactions.py", title="Interactions", icon=":material/forum:"),
        st.Page(PAGES_DIR / "compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page(PAGES_DIR / "metrics.py", title="Metrics", icon=":material/target:"),
        st.Page(PAGES_DIR / "ab_tests.py", title="A/B tests", icon=":material/science:"),
        st.Page(PAGES_DIR / "export.py", title="Export", icon=":material/download:"),
    ]
    page = st.navigation(pages)
    ctx = page_context()
    with st.sidebar:
        who = "admin" if principal.is_admin else f"project {principal.project_key}"
        st.caption(f"Signed in as **{who}**")
        st.caption(f"Data as of {ctx.synced_at:%H:%M:%S} UTC")
        if st.button("Refresh", key="refresh_data", help="Read the newest rows now"):
            sync_on_next_run()
            st.rerun()
        if settings.dashboard_auth and st.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()
    if page.title in FILTERED_PAGES:
        render_filter_bar(ctx)
    page.run()
    timing.mark(f"script run: {page.title} done")


main()
