"""The demo's model servers: one `interlog demo-model` per demo model, on free loopback ports.

`interlog demo` runs them while it seeds and then stops them; `interlog up` keeps them running
for as long as the service runs, and points the demo models' upstream URLs at them (the ports
change from run to run). A demo model is only repointed while it still looks like the demo's: its
key is a demo model key and every upstream URL is on loopback, so a model the user pointed at a
real upstream is left alone.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import Engine

from ingest.demo_data import DEMO_MODELS
from store.catalog import list_models
from store.catalog_admin import update_model

START_TIMEOUT = 120.0
LOOPBACK_PREFIXES = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")


@dataclass
class DemoModelServer:
    """One running `interlog demo-model`: the demo model it serves and its base URL."""

    model_key: str
    url: str
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll `url` until it answers; fail if the process exits or START_TIMEOUT passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a demo server exited with {process.returncode} before {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {START_TIMEOUT:.0f}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """TERM, then KILL after 15 s."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


#: Ports tried per demo model server: a free port can be taken by another process between
#: `free_port` and the server's bind (seen: the port a test had just picked for the dashboard).
PORT_ATTEMPTS = 3


def _launch(key: str, log_dir: Path | None, *, port: int, first: bool) -> DemoModelServer:
    """Start the demo model server of KEY on PORT (its log appended to after the first try)."""
    name = DEMO_MODELS[key][0]
    out: IO[bytes] | None = None
    if log_dir is not None:
        out = (log_dir / f"{name}.log").open("wb" if first else "ab")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest", "demo-model", "--port", str(port), "--name", name],
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
        )
    finally:
        if out is not None:
            out.close()  # the child holds its own copy
    return DemoModelServer(key, f"http://127.0.0.1:{port}/v1", process)


def start_demo_models(
    model_keys: Sequence[str] = tuple(DEMO_MODELS),
    *,
    log_dir: Path | None = None,
    ports: Iterator[int] | None = None,
) -> list[DemoModelServer]:
    """Start one demo model server per key (all at once) and wait until each answers; their
    output goes to `<log_dir>/<name>.log`, or to ours when log_dir is None. A server that exits
    before it answers (its port was taken meanwhile) is started again on another port. PORTS
    gives the ports to try, in order (default: a free port each time)."""
    choose = (lambda: next(ports)) if ports is not None else free_port
    servers: list[DemoModelServer] = []
    try:
        for key in model_keys:
            servers.append(_launch(key, log_dir, port=choose(), first=True))
        for index in range(len(servers)):
            for attempt in range(1, PORT_ATTEMPTS + 1):
                server = servers[index]
                try:
                    wait_for(f"{server.url}/models", server.process)
                    break
                except RuntimeError:
                    if server.process.poll() is None or attempt == PORT_ATTEMPTS:
                        raise
                    servers[index] = _launch(server.model_key, log_dir, port=choose(), first=False)
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers: Sequence[DemoModelServer]) -> None:
    """Stop every server: TERM to all at once, then wait for each."""
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        stop(server.process)


def demo_models_in_store(engine: Engine) -> list[str]:
    """Keys of the store's demo models that still point at loopback demo servers."""
    return [
        model.key
        for model in list_models(engine)
        if model.key in DEMO_MODELS
        and model.upstream_urls
        and all(url.startswith(LOOPBACK_PREFIXES) for url in model.upstream_urls)
    ]


def point_models_at(engine: Engine, servers: Sequence[DemoModelServer]) -> None:
    """Make each server's demo model use it as its only upstream."""
    for server in servers:
        update_model(engine, key=server.model_key, upstream_urls=[server.url])
