"""Real servers for tests: `interlog demo-model` and the gateway, on free loopback ports.

Context managers (any test, any scope):
    with demo_model(tmp_path) as upstream_url: ...            # "http://127.0.0.1:P/v1"
    with gateway(database_url, tmp_path) as base_url: ...     # "http://127.0.0.1:P"
    api_key, project_key, model_key = seed_project(database_url, upstream_urls=[upstream_url])
    with gateway_with_demo(database_url, tmp_path) as live:   # LiveGateway (a NamedTuple)
        base_url, api_key, project_key, model_key = live
    row, labels = stored_interaction(database_url, completion_id)  # waits for the writer

Fixtures (import them into a test module: `from tests.servers import live_gateway`):
    demo_upstream  module-scoped demo model URL
    live_gateway   module-scoped gateway in front of it, on its own migrated SQLite file, with
                   project "proj", model "m1" (multimodal, default) and a project key.
Both run as subprocesses (`python -m ingest ...`) and are always stopped afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlmodel import Session, select

from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.keys import create_api_key
from store.models import Interaction, InteractionLabel
from tests.support import free_port, interlog_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parent.parent


class LiveGateway(NamedTuple):
    """A running gateway and what a client needs to call it."""

    base_url: str
    api_key: str
    project_key: str
    model_key: str
    database_url: str = ""
    upstream_url: str = ""

    @property
    def api_url(self) -> str:
        """The `base_url` for the openai package (`/api/v1` included)."""
        return f"{self.base_url}/api/v1"


@contextmanager
def demo_model(workdir: Path, *, name: str = "demo", port: int | None = None) -> Iterator[str]:
    """Run `interlog demo-model`; yields its OpenAI base URL (`http://127.0.0.1:P/v1`)."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["demo-model", "--port", str(port), "--name", name]
    log = workdir / f"demo-{port}.log"
    with interlog_process(args, env={}, cwd=REPO_ROOT, log=log) as proc:
        _wait_or_explain(f"http://127.0.0.1:{port}/v1/models", proc, log)
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def gateway(
    database_url: str, workdir: Path, *, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Run `interlog serve` on a migrated store; yields its base URL (`http://127.0.0.1:P`)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {
        "INTERLOG_DATABASE_URL": database_url,
        "INTERLOG_JOURNAL_DIR": str(workdir / f"journal-{port}"),
        "INTERLOG_LOG_LEVEL": "warning",
        **(env or {}),
    }
    args = ["serve", "--port", str(port), "--no-migrate"]
    log = workdir / f"gateway-{port}.log"
    with interlog_process(args, env=settings, cwd=REPO_ROOT, log=log) as proc:
        _wait_or_explain(f"http://127.0.0.1:{port}/healthz", proc, log)
        yield f"http://127.0.0.1:{port}"


def _wait_or_explain(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for a server; if it dies or hangs, fail with the end of its log."""
    try:
        wait_for_http(url, timeout=60, process=process)
    except (RuntimeError, TimeoutError) as exc:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        raise RuntimeError(f"{exc}\n--- {log.name} ---\n{tail}") from exc


def seed_project(
    database_url: str,
    *,
    upstream_urls: list[str],
    project_key: str = "proj",
    model_key: str = "m1",
    multimodal: bool = True,
) -> tuple[str, str, str]:
    """Create a project, a default model on the upstreams and a project key."""
    engine = create_store_engine(database_url)
    try:
        create_project(engine, key=project_key)
        create_model(engine, key=model_key, upstream_urls=upstream_urls, multimodal=multimodal)
        attach_model(engine, project_key=project_key, model_key=model_key, default=True)
        secret = create_api_key(engine, project_key=project_key).secret
    finally:
        engine.dispose()
    return secret, project_key, model_key


@contextmanager
def gateway_with_demo(
    database_url: str, workdir: Path, *, env: Mapping[str, str] | None = None
) -> Iterator[LiveGateway]:
    """A demo model, a seeded store (proj/m1 + key) and a gateway in front of it."""
    with ExitStack() as stack:
        upstream = stack.enter_context(demo_model(workdir))
        api_key, project_key, model_key = seed_project(database_url, upstream_urls=[upstream])
        base_url = stack.enter_context(gateway(database_url, workdir, env=env))
        yield LiveGateway(base_url, api_key, project_key, model_key, database_url, upstream)


def chat_answer(content: str) -> dict[str, Any]:
    """An upstream's chat completion answering CONTENT (one choice, with usage)."""
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@contextmanager
def fixed_upstream(
    answer: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An OpenAI-like upstream on loopback that answers ANSWER (JSON) with STATUS and HEADERS to
    every POST; yields its base URL and the headers of each request it received (names in lower
    case)."""
    seen: list[dict[str, str]] = []
    body = json.dumps(answer).encode()  # a NUL in a string goes out as the escape \u0000

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({name.lower(): value for name, value in self.headers.items()})
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def routed_model(live: LiveGateway, upstream_url: str, *, prefix: str = "m") -> str:
    """A new model of the live gateway's project on UPSTREAM_URL: its `model` value, once the
    gateway routes to it (it caches a project's routes for a few seconds)."""
    import httpx

    key = f"{prefix}-{uuid.uuid4().hex[:6]}"
    engine = create_store_engine(live.database_url)
    try:
        create_model(engine, key=key, upstream_urls=[upstream_url])
        attach_model(engine, project_key=live.project_key, model_key=key)
    finally:
        engine.dispose()
    model = f"{live.project_key}/{key}"
    body = {"model": model, "messages": [{"role": "user", "content": "routed yet?"}]}
    headers = {"Authorization": f"Bearer {live.api_key}"}
    deadline = time.monotonic() + 20
    while (
        httpx.post(f"{live.api_url}/chat/completions", json=body, headers=headers).status_code
        == 404
    ):
        assert time.monotonic() < deadline, f"the gateway never routed {model}"
        time.sleep(0.3)
    return model


@contextmanager
def streaming_upstream(events: list[bytes]) -> Iterator[str]:
    """An upstream on loopback that streams EVENTS (SSE `data:` payloads) to every POST."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events:
                self.wfile.write(b"data: " + event + b"\n\n")
                self.wfile.flush()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def copy_sqlite_template(template: Path, directory: Path) -> str:
    """A migrated SQLite store of its own (a copy of the session's migrated template)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "interlog.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def demo_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A demo model shared by the tests of one module."""
    with demo_model(tmp_path_factory.mktemp("demo")) as url:
        yield url


@pytest.fixture(scope="module")
def live_gateway(
    _sqlite_template: Path, demo_upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    """A gateway (own SQLite store, proj/m1 + project key) in front of `demo_upstream`."""
    workdir = tmp_path_factory.mktemp("gateway")
    database_url = copy_sqlite_template(_sqlite_template, workdir)
    api_key, project_key, model_key = seed_project(database_url, upstream_urls=[demo_upstream])
    with gateway(database_url, workdir) as base_url:
        yield LiveGateway(base_url, api_key, project_key, model_key, database_url, demo_upstream)


def logged_row(database_url: str, column: str, fragment: str, *, wait: float = 20.0) -> Any:
    """The first interaction row whose COLUMN contains FRAGMENT, once the writer has stored it;
    None after `wait` seconds."""
    from sqlalchemy import select as select_rows

    from store.interactions import INTERACTION_TABLE as table

    engine = create_store_engine(database_url)
    deadline = time.monotonic() + wait
    try:
        while True:
            with engine.connect() as connection:
                row = connection.execute(
                    select_rows(table).where(table.c[column].like(f"%{fragment}%"))
                ).first()
            if row is not None or time.monotonic() > deadline:
                return row
            time.sleep(0.2)
    finally:
        engine.dispose()


def stored_interaction(database_url: str, completion_id: str, *, wait: float = 10.0) -> Any:
    """(row, labels) once the background writer has stored the interaction; None after `wait`."""
    engine = create_store_engine(database_url)
    deadline = time.monotonic() + wait
    key = uuid.UUID(completion_id)
    try:
        while True:
            with Session(engine) as session:
                row = session.get(Interaction, key)
                labels = {
                    label.key: label.value
                    for label in session.exec(
                        select(InteractionLabel).where(InteractionLabel.completion_id == key)
                    )
                }
            if row is not None:
                return row, labels
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
    finally:
        engine.dispose()
