"""One in-process Interlog app per test module (real SQLite file, real lifespan), for admin tests.

`admin_app` yields an AdminApp: an HTTP client bound to the app (starlette's TestClient drives
the real ASGI app and its lifespan: journal, writer, A/B monitor), its engine and the admin key.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ingest.app import create_app
from store.db import create_store_engine
from store.settings import Settings

ADMIN_KEY = "il_admin_managementtests"


class AdminApp(NamedTuple):
    http: TestClient
    app: FastAPI
    engine: Engine

    def as_key(self, secret: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    @property
    def admin(self) -> dict[str, str]:
        return self.as_key(ADMIN_KEY)


def start_app(workdir: Path, template: Path, **overrides: object) -> Iterator[AdminApp]:
    shutil.copyfile(template, workdir / "interlog.db")
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'interlog.db'}",
        journal_dir=workdir / "journal",
        admin_key=ADMIN_KEY,
        **overrides,  # type: ignore[arg-type]
    )
    app = create_app(settings)
    engine = create_store_engine(settings.database_url)
    try:
        with TestClient(app, raise_server_exceptions=False) as http:
            yield AdminApp(http, app, engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def admin_app(
    _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminApp]:
    yield from start_app(tmp_path_factory.mktemp("admin-app"), _sqlite_template)
