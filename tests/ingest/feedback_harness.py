"""A live Interlog server for feedback and read-back tests, and per-test projects on it.

`live_store` (session scope) runs `python -m ingest serve` on its own migrated SQLite file with
an admin key; tests seed the same file directly and talk to the server over loopback HTTP.
Every test makes its own project (`new_project`), so tests sharing the server stay independent.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from sqlalchemy import Engine

from store.db import create_store_engine
from store.keys import create_api_key
from store.models import Project
from tests.interaction_seeds import seed_project
from tests.support import free_port, interlog_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
ADMIN_KEY = "il_admin_feedbacktests"


class LiveStore(NamedTuple):
    base_url: str
    engine: Engine
    database_url: str


class SeededProject(NamedTuple):
    project: Project
    key: str
    secret: str

    @property
    def id(self) -> int:
        assert self.project.id is not None
        return self.project.id


@pytest.fixture(scope="session")
def live_store(
    _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStore]:
    workdir = tmp_path_factory.mktemp("feedback-server")
    shutil.copyfile(_sqlite_template, workdir / "interlog.db")
    database_url = f"sqlite:///{workdir / 'interlog.db'}"
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(workdir / "journal"),
        "INTERLOG_ADMIN_KEY": ADMIN_KEY,
        "INTERLOG_LOG_LEVEL": "warning",
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    with interlog_process(args, env=env, cwd=REPO_ROOT, log=workdir / "server.log") as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120, process=process)
        engine = create_store_engine(database_url)
        try:
            yield LiveStore(f"http://127.0.0.1:{port}", engine, database_url)
        finally:
            engine.dispose()


def new_project(live: LiveStore, *, models: tuple[str, ...] = ("m1",)) -> SeededProject:
    """A fresh project (metrics `quality` scalar and `thumbs` bool) with a project key."""
    key = f"p{uuid.uuid4().hex[:10]}"
    project = seed_project(live.engine, key, models=models)
    secret = create_api_key(live.engine, project_key=key).secret
    return SeededProject(project, key, secret)


def client(live: LiveStore, secret: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.Client(base_url=live.base_url, headers=headers, timeout=30)
