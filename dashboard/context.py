"""What every page needs: the cached engine, the signed-in principal and the projects it sees."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlalchemy import Engine

from store.catalog import list_projects
from store.db import create_store_engine
from store.keys import Principal
from store.settings import Settings, get_settings

PRINCIPAL_KEY = "interlog_principal"
PROJECTS_TTL_SECONDS = 30


@st.cache_resource(show_spinner=False)
def engine_for(database_url: str) -> Engine:
    """One pooled engine per store URL for the whole Streamlit process."""
    return create_store_engine(database_url)


@dataclass(frozen=True)
class ProjectRef:
    id: int
    key: str
    name: str


@st.cache_data(ttl=PROJECTS_TTL_SECONDS, show_spinner=False)
def _all_projects(database_url: str) -> list[ProjectRef]:
    return [
        ProjectRef(id=project.id, key=project.key, name=project.name)
        for project in list_projects(engine_for(database_url))
        if project.id is not None
    ]


@dataclass(frozen=True)
class PageContext:
    """The store, who is looking at it, and which projects they may see."""

    settings: Settings
    engine: Engine
    principal: Principal
    projects: list[ProjectRef]

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
    projects = _all_projects(database_url)
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
    return PageContext(
        settings=settings,
        engine=engine_for(settings.database_url),
        principal=principal,
        projects=visible_projects(settings.database_url, principal),
    )


def forget_projects() -> None:
    """Drop the cached project list (after the catalog changed)."""
    _all_projects.clear()
