"""What every page needs: the cached engine, the signed-in principal, the projects it sees and
the version of the analytics data that cached reads are keyed on.

The shared analytics store is checked for freshness at most every REFRESH_SECONDS (on the first
run after that, in any session), or at once after the dashboard wrote something or on "Refresh":
the data version only changes when the analytics store took new rows, so between changes every
rerun is served from the caches. In a new `interlog dashboard` process, the first data version
and project list are usually computed before any browser asks (dashboard/warmup.py).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from dataclasses import dataclass
from datetime import datetime

import streamlit as st
from sqlalchemy import Engine

from dashboard import engines, timing, warmup
from store.analytics.version import DataVersion, data_version
from store.catalog import list_projects
from store.keys import Principal
from store.settings import Settings, get_settings

PRINCIPAL_KEY = "interlog_principal"
PROJECTS_TTL_SECONDS = 30
REFRESH_SECONDS = 10
SYNC_NOW_KEY = "interlog_sync_now"
#: Modules the first page of a new process needs only after its analytics queries: pyarrow for
#: the frames. See `_late_imports`. (The metric intervals need no scipy: store/stats.py.)
LATE_IMPORTS = ("pyarrow",)


engine_for = engines.engine_for  # one pooled engine per store URL for the whole process


@dataclass(frozen=True)
class ProjectRef:
    id: int
    key: str
    name: str


def projects_key(database_url: str) -> tuple[str, str]:
    """The key of the project list in dashboard/warmup.py."""
    return ("projects", database_url)


def read_projects(database_url: str) -> list[ProjectRef]:
    return [
        ProjectRef(id=project.id, key=project.key, name=project.name)
        for project in list_projects(engine_for(database_url))
        if project.id is not None
    ]


@st.cache_data(ttl=PROJECTS_TTL_SECONDS, show_spinner=False)
def _all_projects(database_url: str) -> list[ProjectRef]:
    return read_projects(database_url)


def data_version_key(database_url: str) -> tuple[str, str]:
    """The key of the data version in dashboard/warmup.py."""
    return ("data version", database_url)


def read_data_version(engine: Engine) -> DataVersion:
    return data_version(engine, max_staleness=REFRESH_SECONDS)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _data_version(_engine: Engine, database_url: str) -> DataVersion:
    return read_data_version(_engine)


@st.cache_resource(show_spinner=False)
def _checked_stores() -> set[str]:
    """Stores whose analytics store this process has looked at already."""
    return set()


def _import_late() -> None:
    for name in LATE_IMPORTS:
        with contextlib.suppress(ImportError):  # the page that needs it reports it
            importlib.import_module(name)


@st.cache_resource(show_spinner=False)
def _late_imports() -> threading.Thread:
    """Import LATE_IMPORTS in a thread, once per process, started as the first run attaches the
    analytics store: DuckDB's attach and the overview's queries run in native code without the
    GIL, so the import proceeds beside them instead of after them (it is pure Python)."""
    thread = threading.Thread(target=_import_late, name="interlog-late-imports", daemon=True)
    thread.start()
    return thread


def current_data_version(engine: Engine, database_url: str) -> DataVersion:
    """The analytics data's version: checked at most every REFRESH_SECONDS, or now if asked."""
    if database_url not in _checked_stores():
        _late_imports()
        # The shared analytics store is built once (by the gateway's sync owner, or here for a
        # store no service runs on: a child process reads it at about 50,000 rows/s).
        with st.spinner("Bringing the analytics store up to date…"):
            # In a new process, the warm-up has usually looked already (dashboard/warmup.py);
            # its version stands for this run as a cached one would (REFRESH_SECONDS).
            version = warmup.take(
                data_version_key(database_url),
                lambda: _data_version(engine, database_url),
                max_age=REFRESH_SECONDS,
            )
        _checked_stores().add(database_url)
        return version
    if st.session_state.pop(SYNC_NOW_KEY, False):
        _data_version.clear()
        data_version(engine, max_staleness=0)
    return _data_version(engine, database_url)


def sync_on_next_run() -> None:
    """Make the next run bring the analytics store up to date (after a write, or on
    "Refresh")."""
    st.session_state[SYNC_NOW_KEY] = True


@dataclass(frozen=True)
class PageContext:
    """The store, who is looking at it, which projects they may see, and the data version."""

    settings: Settings
    engine: Engine
    principal: Principal
    projects: list[ProjectRef]
    data: DataVersion

    @property
    def version(self) -> str:
        """A cache key part that changes when the analytics data changes."""
        return self.data.token

    @property
    def synced_at(self) -> datetime:
        return self.data.synced_at

    @property
    def project_ids(self) -> list[int] | None:
        """The caller's project scope for store reads: None means every project (admin)."""
        return None if self.principal.is_admin else [p.id for p in self.projects]

    @property
    def scope_key(self) -> str:
        """A cache key part that differs between principals who see different rows."""
        if self.principal.is_admin:
            return "admin"
        return f"project:{self.principal.project_id}"

    def project_by_key(self, key: str) -> ProjectRef | None:
        return next((project for project in self.projects if project.key == key), None)


def visible_projects(database_url: str, principal: Principal) -> list[ProjectRef]:
    """Every project for an admin; only its own project for a project key."""
    projects = warmup.take(  # the warm-up's, once (as a cached list would be used)
        projects_key(database_url),
        lambda: _all_projects(database_url),
        max_age=PROJECTS_TTL_SECONDS,
    )
    if principal.is_admin:
        return projects
    return [project for project in projects if project.id == principal.project_id]


def page_context() -> PageContext:
    """The context of this run; the entry point has already signed the user in."""
    settings = get_settings()
    principal = st.session_state.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        st.error("Not signed in.")
        st.stop()
    engine = engine_for(settings.database_url)
    with timing.timed("page context: projects"):
        projects = visible_projects(settings.database_url, principal)
    with timing.timed("page context: data version (freshness check)"):
        data = current_data_version(engine, settings.database_url)
    return PageContext(
        settings=settings, engine=engine, principal=principal, projects=projects, data=data
    )


def forget_projects() -> None:
    """Drop the cached project list (after the catalog changed)."""
    _all_projects.clear()
