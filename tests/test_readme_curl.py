"""The README's shell examples that call the REST API run, as written, against a live gateway:
every ```bash block with a `curl` in it, with its placeholders filled ($KEY, $COMPLETION_ID)
and the gateway's address. curl runs with --fail-with-body, so an example that the API answers
with an error (a 4xx, a 5xx) fails here; `interlog` is this checkout's CLI on the same store.
An example cannot rot without this test saying which."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from store.catalog import attach_model, create_project
from store.db import create_store_engine
from store.metrics import create_metric
from tests.servers import LiveGateway, demo_upstream, live_gateway

__all__ = ["demo_upstream", "live_gateway"]

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)
#: What the README's examples address the gateway as.
ADDRESSES = ("http://127.0.0.1:8000", "localhost:8000")
PRELUDE = """set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }
interlog() { "$INTERLOG_PYTHON" -m ingest "$@"; }
"""


def curl_blocks() -> list[str]:
    """The README's bash blocks that call the API with curl."""
    return [block for block in BLOCK.findall(README.read_text()) if "curl " in block]


def test_the_readme_has_curl_examples() -> None:
    assert len(curl_blocks()) >= 3


@pytest.fixture(scope="module")
def completion_id(live_gateway: LiveGateway) -> str:
    """A logged completion of project `proj`, labelled team=a, with the names the README's
    examples use (metric `quality`; project `support-bot` for `interlog export`)."""
    engine = create_store_engine(live_gateway.database_url)
    try:
        create_metric(engine, project_key="proj", key="quality")
        create_project(engine, key="support-bot")
        attach_model(engine, project_key="support-bot", model_key="m1", default=True)
        create_metric(engine, project_key="support-bot", key="quality")
    finally:
        engine.dispose()
    client = openai.OpenAI(
        base_url=live_gateway.api_url, api_key=live_gateway.api_key, max_retries=0
    )
    answer = client.chat.completions.create(
        model="proj/m1", messages=[{"role": "user", "content": "hi"}], metadata={"team": "a"}
    )
    return str((answer.choices[0].model_extra or {})["completion_id"])


@pytest.mark.parametrize("number", range(len(curl_blocks())))
def test_a_readme_curl_example_runs(
    live_gateway: LiveGateway, completion_id: str, number: int, tmp_path: Path
) -> None:
    script = curl_blocks()[number]
    for address in ADDRESSES:
        script = script.replace(address, live_gateway.base_url)
    env = {
        **os.environ,
        "KEY": live_gateway.api_key,
        "COMPLETION_ID": completion_id,
        "INTERLOG_PYTHON": sys.executable,
        "INTERLOG_DATABASE_URL": live_gateway.database_url,
        "PYTHONPATH": str(README.parent),
    }
    done = subprocess.run(
        ["bash", "-c", PRELUDE + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"README example failed:\n{script}\n{done.stdout}\n{done.stderr}"
