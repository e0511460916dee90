"""Where the gateway spends its time under load: `py-spy record` on its PID while wrk drives it.

py-spy samples the gateway's threads (`--gil`: only the thread holding the GIL, which is what
bounds a one-process Python server) into collapsed stacks; `summarize` turns them into the share
of samples per leaf function (self time) and per area of the code (inclusive time).
Needs py-spy (`pip install py-spy`) and permission to ptrace the gateway; otherwise skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench import loadgen, services

#: Areas of the code, matched against a frame's file path (first match wins, innermost frame).
AREAS = (
    ("capture middleware", "ingest/capture.py"),
    ("journal", "ingest/journal.py"),
    ("journal writer + store", "ingest/writer.py"),
    ("chat handler", "ingest/chat.py"),
    ("upstream client (aiohttp)", "aiohttp/"),
    ("auth", "ingest/auth.py"),
    ("routing", "ingest/routing.py"),
    ("FastAPI/Starlette", "fastapi/"),
    ("FastAPI/Starlette", "starlette/"),
    ("uvicorn (HTTP server)", "uvicorn/"),
    ("asyncio event loop", "asyncio/"),
)


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def profile_under_load(
    gateway: services.Gateway,
    body: dict[str, Any],
    *,
    clients: int,
    seconds: float,
    workdir: Path,
) -> dict[str, Any]:
    """Record the gateway for SECONDS under CLIENTS connections; a summary (or a skip reason)."""
    py_spy = _py_spy()
    if py_spy is None:
        return {"skipped": "py-spy is not installed"}
    raw = workdir / "gateway.collapsed"
    command = [py_spy, "record", "--pid", str(gateway.pid), "--duration", str(int(seconds))]
    command += ["--rate", "200", "--gil", "--format", "raw", "--output", str(raw)]
    recorder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        load = threading.Thread(
            target=loadgen.run_load,
            args=(gateway.chat_url, body, gateway.key, clients, seconds + 1),
        )
        load.start()
        output, _ = recorder.communicate(timeout=seconds + 60)
        load.join()
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    if recorder.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed: {output.decode(errors='replace').strip()[-300:]}"}
    summary = summarize(raw.read_text())
    services.drain_and_count(gateway)
    return summary


def _function(frame: str) -> str:
    """`name (path/to/file.py:12)` -> `name (file.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for area, marker in AREAS:
            if marker in frame:
                return area
    return "other"


def summarize(collapsed: str, top: int = 15) -> dict[str, Any]:
    """Shares of samples: by leaf function (self) and by the innermost known area."""
    leaves: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[_function(frames[-1])] += count
        areas[_area(frames)] += count
    if not total:
        return {"skipped": "py-spy recorded no samples"}
    return {
        "samples": total,
        "leaves": [(name, count / total) for name, count in leaves.most_common(top)],
        "areas": [(name, count / total) for name, count in areas.most_common()],
    }
