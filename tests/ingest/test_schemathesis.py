"""Schemathesis against the live gateway's OpenAPI schema: no 5xx, responses match their schemas.

Bounded (a few examples per operation) so it stays fast; every operation is called with the
admin key (so requests get past authentication) on a real server with its own SQLite store.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from ingest.app import create_app
from store.settings import Settings
from tests.ingest.admin_harness import ADMIN_KEY
from tests.support import free_port, interlog_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = 8


@pytest.fixture(scope="module")
def base_url(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    shutil.copyfile(_sqlite_template, workdir / "interlog.db")
    port = free_port()
    env = {
        "INTERLOG_DATABASE_URL": f"sqlite:///{workdir / 'interlog.db'}",
        "INTERLOG_JOURNAL_DIR": str(workdir / "journal"),
        "INTERLOG_ADMIN_KEY": ADMIN_KEY,
        "INTERLOG_LOG_LEVEL": "warning",
        "INTERLOG_UPSTREAM_CONNECT_TIMEOUT": "0.2",
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    with interlog_process(args, env=env, cwd=REPO_ROOT, log=workdir / "server.log") as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process, timeout=60)
        yield f"http://127.0.0.1:{port}"


SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}  # type: ignore[union-attr]


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_no_server_error_and_responses_match_their_schema(base_url: str, label: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    @given(case=OPERATIONS[label].as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def call(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    call()
