"""Operations (issue 21, item 8): what /readyz tells strangers, which variables may hold upstream
keys, the writer's durable commits on SQLite, corrupt journal lines kept, and `interlog
dashboard` stopping its Streamlit child. Real processes, servers, files and databases."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select, update
from typer.testing import CliRunner

from ingest.app import create_app
from ingest.cli import app as cli_app
from ingest.journal import Journal
from ingest.writer import JournalWriter
from store.catalog import attach_model, create_model, create_project, get_model
from store.db import create_store_engine
from store.errors import InvalidInputError
from store.ids import uuid7
from store.interactions import INTERACTION_TABLE
from store.keys import create_api_key
from store.models import Model
from store.settings import Settings, get_settings
from tests.ingest.admin_harness import start_app
from tests.servers import REPO_ROOT, chat_answer, fixed_upstream, gateway
from tests.support import free_port, interlog_env, interlog_process, wait_for_http

runner = CliRunner()

# -- (a) /readyz says ok / not ok; the reason only to an admin key -------------------------------


def test_readiness_hides_the_driver_error_from_strangers_and_shows_it_to_an_admin(
    tmp_path: Path,
) -> None:
    port, dead_port = free_port(), free_port()
    env = {
        "INTERLOG_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{dead_port}/secretdb",
        "INTERLOG_PORT": str(port),
        "INTERLOG_ADMIN_KEY": "ready-admin-key",
    }
    url = f"http://127.0.0.1:{port}/readyz"
    args = ["serve", "--no-migrate"]
    with interlog_process(args, env=env, cwd=tmp_path, log=tmp_path / "serve.log") as proc:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=proc, timeout=90)
        anonymous = httpx.get(url, timeout=60)
        wrong_key = httpx.get(url, headers={"Authorization": "Bearer il_nope"}, timeout=60)
        admin = httpx.get(url, headers={"Authorization": "Bearer ready-admin-key"}, timeout=60)
    for answer in (anonymous, wrong_key):
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "database": "not ok"}
        assert str(dead_port) not in answer.text and "secretdb" not in answer.text
    assert admin.status_code == 503
    assert admin.json()["database"] == "not ok"
    assert str(dead_port) in admin.json()["detail"]["database"]  # the driver's reason
    assert str(dead_port) in (tmp_path / "serve.log").read_text()  # and the operator's log


# -- (b) api_key_env: only names the operator allows, never an Interlog setting --------------------


@pytest.fixture
def rest_app(_sqlite_template: Path, tmp_path: Path) -> Iterator[Any]:
    yield from start_app(
        tmp_path, _sqlite_template, upstream_key_env_names="OPENAI_API_KEY, INTERLOG_ADMIN_KEY"
    )


@pytest.mark.parametrize(
    "name",
    [
        "INTERLOG_DATABASE_URL",
        "INTERLOG_ADMIN_KEY",  # even though the operator listed it
        "interlog_database_url",  # settings are read case-insensitively
        "INTERLOG_UPSTREAM_TIMEOUT",  # a setting that matches the default pattern
        "INTERLOG_UPSTREAM_KEY_ENV_NAMES",
        "HOME",
        "ANTHROPIC_API_KEY",  # not listed
    ],
)
def test_rest_refuses_an_api_key_env_the_operator_does_not_allow(rest_app: Any, name: str) -> None:
    api = rest_app
    body = {"key": "m", "upstream_urls": ["http://127.0.0.1:9/v1"], "api_key_env": name}
    created = api.http.post("/api/v1/admin/models", json=body, headers=api.admin)
    assert created.status_code == 400, created.text
    error = created.json()["error"]
    assert (error["param"], error["code"]) == ("api_key_env", "api_key_env_not_allowed")
    assert name in error["message"]
    assert api.http.get("/api/v1/admin/models/m", headers=api.admin).status_code == 404
    ok = {"key": "m2", "upstream_urls": ["http://127.0.0.1:9/v1"]}
    assert api.http.post("/api/v1/admin/models", json=ok, headers=api.admin).status_code == 201
    patched = api.http.patch(
        "/api/v1/admin/models/m2", json={"api_key_env": name}, headers=api.admin
    )
    assert patched.status_code == 400 and patched.json()["error"]["param"] == "api_key_env"
    assert get_model(api.engine, key="m2").api_key_env is None


def test_rest_accepts_the_pattern_and_the_listed_names(rest_app: Any) -> None:
    api = rest_app
    for key, name in (("a", "INTERLOG_UPSTREAM_OPENAI"), ("b", "OPENAI_API_KEY")):
        body = {"key": key, "upstream_urls": ["http://127.0.0.1:9/v1"], "api_key_env": name}
        created = api.http.post("/api/v1/admin/models", json=body, headers=api.admin)
        assert created.status_code == 201, created.text
        assert created.json()["api_key_env"] == name
    cleared = api.http.patch(
        "/api/v1/admin/models/a", json={"api_key_env": None}, headers=api.admin
    )
    assert cleared.status_code == 200 and cleared.json()["api_key_env"] is None


def test_cli_refuses_an_api_key_env_the_operator_does_not_allow(sqlite_url: str) -> None:
    env = {"INTERLOG_DATABASE_URL": sqlite_url}
    added = runner.invoke(
        cli_app,
        ["models", "add", "m", "--upstream", "http://127.0.0.1:9/v1", "--api-key-env",
         "INTERLOG_DATABASE_URL"],
        env=env,
    )  # fmt: skip
    assert added.exit_code == 1
    assert "INTERLOG_DATABASE_URL" in added.output and "Interlog setting" in added.output
    assert "Traceback" not in added.output
    ok = runner.invoke(cli_app, ["models", "add", "m", "--upstream", "http://x:1/v1"], env=env)
    assert ok.exit_code == 0, ok.output
    updated = runner.invoke(
        cli_app, ["models", "update", "m", "--api-key-env", "OPENAI_API_KEY"], env=env
    )
    assert updated.exit_code == 1 and "not allowed" in updated.output
    get_settings.cache_clear()  # the operator lists it: now it may be set
    listed = {**env, "INTERLOG_UPSTREAM_KEY_ENV_NAMES": "OPENAI_API_KEY"}
    updated = runner.invoke(
        cli_app, ["models", "update", "m", "--api-key-env", "OPENAI_API_KEY"], env=listed
    )
    assert updated.exit_code == 0, updated.output
    engine = create_store_engine(sqlite_url)
    try:
        assert get_model(engine, key="m").api_key_env == "OPENAI_API_KEY"
    finally:
        engine.dispose()


def test_the_store_functions_check_the_rule_too(engine: Engine) -> None:
    settings = Settings(upstream_key_env_pattern="", upstream_key_env_names="")
    with pytest.raises(InvalidInputError, match="INTERLOG_ADMIN_KEY"):
        create_model(
            engine, key="m", upstream_urls=["http://x:1/v1"], api_key_env="INTERLOG_ADMIN_KEY"
        )
    with pytest.raises(InvalidInputError, match="not allowed"):
        create_model(
            engine,
            key="m",
            upstream_urls=["http://x:1/v1"],
            api_key_env="INTERLOG_UPSTREAM_X",
            settings=settings,  # the operator allows no name at all
        )


def test_a_name_stored_before_the_rule_is_never_sent_upstream(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A model whose api_key_env was stored before the rule (here INTERLOG_DATABASE_URL, or a
    name the operator no longer lists) gets a 502; its upstream never sees the value."""
    with fixed_upstream(chat_answer("hi")) as (upstream, seen):
        engine = create_store_engine(sqlite_url)
        create_project(engine, key="proj")
        for key in ("leak", "unlisted", "fine"):
            create_model(engine, key=key, upstream_urls=[upstream])
            attach_model(engine, project_key="proj", model_key=key, default=key == "leak")
        with engine.begin() as connection:  # as an older Interlog stored them
            for key, name in (
                ("leak", "INTERLOG_DATABASE_URL"),
                ("unlisted", "OPENAI_API_KEY"),
                ("fine", "INTERLOG_UPSTREAM_FINE"),
            ):
                connection.execute(
                    update(Model).where(Model.key == key).values(api_key_env=name)  # type: ignore[arg-type]
                )
        api_key = create_api_key(engine, project_key="proj").secret
        engine.dispose()
        env = {"OPENAI_API_KEY": "sk-openai-secret", "INTERLOG_UPSTREAM_FINE": "sk-fine"}
        with gateway(sqlite_url, tmp_path, env=env) as base_url:
            answers = {
                model: httpx.post(
                    f"{base_url}/api/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=30,
                )
                for model in ("proj", "proj/unlisted", "proj/fine")
            }
    for model in ("proj", "proj/unlisted"):
        assert answers[model].status_code == 502, answers[model].text
        assert answers[model].json()["error"]["code"] == "upstream_key_not_allowed"
        assert sqlite_url not in answers[model].text
    assert answers["proj/fine"].status_code == 200, answers["proj/fine"].text
    assert [headers.get("authorization") for headers in seen] == ["Bearer sk-fine"]


# -- (c) the writer's SQLite connection commits durably ---------------------------------------


def test_the_writers_sqlite_connection_runs_with_synchronous_full(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Through the real app: a chat completion is journaled, the writer stores it, and the
    connection the writer inserted with has PRAGMA synchronous=FULL (2), so the commit is on
    disk before the journal segment holding it is deleted."""
    with fixed_upstream(chat_answer("hi")) as (upstream, _seen):
        engine = create_store_engine(sqlite_url)
        create_project(engine, key="proj")
        create_model(engine, key="m", upstream_urls=[upstream])
        attach_model(engine, project_key="proj", model_key="m", default=True)
        api_key = create_api_key(engine, project_key="proj").secret
        engine.dispose()
        settings = Settings(database_url=sqlite_url, journal_dir=tmp_path / "journal")
        app = create_app(settings)
        used: list[Any] = []  # the DB-API connections that committed on the writer's engine

        def _note(conn: Any) -> None:
            used.append(conn.connection.dbapi_connection)

        with TestClient(app) as client:
            writer = app.state.writer
            event.listen(writer.engine, "commit", _note)
            answer = client.post(
                "/api/v1/chat/completions",
                json={"model": "proj", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {api_key}"},
            )
            assert answer.status_code == 200, answer.text
            completion_id = uuid.UUID(answer.json()["choices"][0]["completion_id"])
            asyncio.run(_wait_stored(client, completion_id))
            assert used, "the writer committed nothing"
            modes = {conn.execute("PRAGMA synchronous").fetchone()[0] for conn in used}
            journal_mode = used[0].execute("PRAGMA journal_mode").fetchone()[0]
    assert modes == {2}  # FULL (NORMAL is 1)
    assert journal_mode == "wal"


async def _wait_stored(client: TestClient, completion_id: uuid.UUID) -> None:
    writer = client.app.state.writer  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while writer.journal.is_pending(str(completion_id)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not writer.journal.is_pending(str(completion_id))


# -- (d) a corrupt line inside a journal segment is kept, not dropped --------------------------


def _record(project_id: int, n: int) -> dict[str, Any]:
    return {
        "completion_id": str(uuid7()),
        "project_id": project_id,
        "session_id": str(uuid.uuid4()),
        "created_at": "2026-01-01T00:00:00+00:00",
        "messages": [{"role": "user", "content": f"q{n}"}],
        "completion": f"a{n}",
    }


def test_a_corrupt_journal_line_is_moved_to_the_rejected_file_and_the_rest_is_stored(
    engine: Engine, tmp_path: Path
) -> None:
    project = create_project(engine, key="p")
    assert project.id is not None
    first, second = _record(project.id, 1), _record(project.id, 2)
    corrupt = b'{"completion_id": "0193\xff\xfe", "proj'  # torn in the middle, not even UTF-8
    not_a_record = b"[1, 2, 3]"
    base = tmp_path / "journal"
    orphan = base / "deadhost-4242-abcdef12"  # the journal of a process that died
    orphan.mkdir(parents=True)
    (orphan / "lock").touch()
    (orphan / "seg-000000000001.jsonl").write_bytes(
        orjson.dumps(first) + b"\n" + corrupt + b"\n" + not_a_record + b"\n"
        + orjson.dumps(second) + b"\n"
    )  # fmt: skip

    async def drain() -> Journal:
        journal = Journal(base, fsync="batch")
        journal.open()  # claims the dead process's journal
        writer = JournalWriter(journal, engine, batch_size=10, interval=0.01)
        await writer.start()
        ids = [uuid.UUID(first["completion_id"]), uuid.UUID(second["completion_id"])]
        await writer.ensure_written(ids, timeout=30)
        await writer.stop()
        return journal

    journal = asyncio.run(drain())
    with engine.connect() as connection:
        stored = set(connection.execute(select(INTERACTION_TABLE.c.completion_id)).scalars().all())
        count = connection.execute(select(func.count()).select_from(INTERACTION_TABLE)).scalar()
    assert {str(value) for value in stored} == {first["completion_id"], second["completion_id"]}
    assert count == 2
    assert not orphan.exists()
    kept = [orjson.loads(line) for line in journal.rejected_path.read_bytes().splitlines()]
    assert [base64.b64decode(entry["raw_base64"]) for entry in kept] == [corrupt, not_a_record]
    assert "corrupt line" in kept[0]["error"] and kept[0]["source"].endswith(":2")
    assert "raw" not in kept[0]  # not UTF-8: only the exact bytes
    assert kept[1]["raw"] == "[1, 2, 3]" and kept[1]["source"].endswith(":3")
    assert (journal.rejected, journal.corrupt) == (2, 2)


def test_a_pending_entry_damaged_on_disk_is_rejected_and_the_writer_goes_on(
    engine: Engine, tmp_path: Path
) -> None:
    """Entries beyond the in-memory ones are read back from their segment by the writer; one
    whose bytes were damaged is moved, raw, to the rejected file; the others are stored."""
    project = create_project(engine, key="p")
    assert project.id is not None
    records = [_record(project.id, n) for n in range(3)]

    async def drain() -> Journal:
        journal = Journal(tmp_path / "journal", fsync="batch", memory_entries=0)
        journal.open()
        journal.append_nowait(records)  # all kept only on disk
        assert journal.directory is not None
        [segment] = sorted(journal.directory.glob("seg-*.jsonl"))
        lines = segment.read_bytes().split(b"\n")
        damaged = b"\x00" * len(lines[1])  # the middle entry, overwritten in place
        segment.write_bytes(b"\n".join([lines[0], damaged, *lines[2:]]))
        writer = JournalWriter(journal, engine, batch_size=10, interval=0.01)
        await writer.start()
        ids = [uuid.UUID(r["completion_id"]) for r in records]
        await writer.ensure_written(ids, timeout=30)
        await writer.stop()
        return journal

    journal = asyncio.run(drain())
    with engine.connect() as connection:
        stored = connection.execute(select(INTERACTION_TABLE.c.completion_id)).scalars().all()
    assert {str(value) for value in stored} == {
        records[0]["completion_id"],
        records[2]["completion_id"],
    }
    [kept] = [orjson.loads(line) for line in journal.rejected_path.read_bytes().splitlines()]
    assert records[1]["completion_id"] in kept["error"]
    assert base64.b64decode(kept["raw_base64"]) == b"\x00" * len(orjson.dumps(records[1]))
    assert (journal.rejected, journal.corrupt, journal.depth) == (1, 1, 0)


# -- (e) SIGTERM to `interlog dashboard` stops Streamlit too -----------------------------------


def _streamlit_children(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "streamlit" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_sigterm_to_interlog_dashboard_stops_streamlit(sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = interlog_env({"INTERLOG_DATABASE_URL": sqlite_url})
    log = tmp_path / "dashboard.log"
    streamlit: list[psutil.Process] = []
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest", "dashboard", "--port", str(port)],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/_stcore/health", process=process, timeout=180)
            streamlit = _streamlit_children(process.pid)
            assert streamlit, "no streamlit child found"
            os.kill(process.pid, signal.SIGTERM)  # the process only, as a supervisor would
            process.wait(timeout=60)
            _gone, alive = psutil.wait_procs(streamlit, timeout=30)
            assert alive == [], f"streamlit still running after SIGTERM: {alive}"
            assert process.returncode == 0, log.read_text(errors="replace")[-2000:]
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
        finally:
            for child in [*streamlit, *_streamlit_children(process.pid)]:
                if child.is_running():
                    child.kill()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
