"""The LiteLLM proxy as a point of comparison, in its own virtual environment.

`ensure_installed()` creates `.bench-venv-litellm` (gitignored) next to the repository and runs
`pip install 'litellm[proxy]'` into it once; `litellm_proxy(upstream, workdir)` starts the proxy
offline (LITELLM_LOCAL_MODEL_COST_MAP=True, a LITELLM_MASTER_KEY) with one model `bench` routed
to the same fake upstream the other systems use, and stops it by PID. If it cannot be installed
or started, the caller gets a `LiteLLMUnavailable` with the reason and skips it.

    python -m bench litellm [--duration 5]     # the proxy alone at 1/16/64 clients
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench import loadgen, services
from tests.support import free_port

VENV = services.ROOT / ".bench-venv-litellm"
MASTER_KEY = "sk-interlog-bench"
PYTHON = VENV / "bin" / "python"


class LiteLLMUnavailable(RuntimeError):
    """The proxy could not be installed or started; the message says why."""


def installed_version() -> str | None:
    if not PYTHON.exists():
        return None
    probe = subprocess.run(
        [str(PYTHON), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_installed(timeout: float = 900) -> str:
    """The installed LiteLLM version, installing it first if needed."""
    version = installed_version()
    if version:
        return version
    print(f"installing litellm[proxy] into {VENV.name} (once) ...", flush=True)
    try:
        if not PYTHON.exists():
            venv.create(VENV, with_pip=True)
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", "litellm[proxy]"],
            check=True,
            timeout=timeout,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        tail = detail.decode(errors="replace").strip().splitlines()[-1:] if detail else []
        raise LiteLLMUnavailable(f"pip install 'litellm[proxy]' failed: {exc} {tail}") from exc
    version = installed_version()
    if not version:
        raise LiteLLMUnavailable("litellm is not importable after pip install")
    return version


def _config(upstream: str) -> str:
    return (
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/demo\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-fake-upstream\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
    )


@contextmanager
def litellm_proxy(upstream: str, workdir: Path) -> Iterator[tuple[str, int]]:
    """Run the proxy (1 worker) against UPSTREAM; yields (chat completions URL, PID)."""
    ensure_installed()
    config = workdir / "litellm.yaml"
    config.write_text(_config(upstream))
    port = free_port()
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOG": "ERROR",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    command = [str(VENV / "bin" / "litellm"), "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    log = workdir / f"litellm-{port}.log"
    with services.process(command, log=log, env=env) as child:
        try:
            services.wait_or_explain(f"http://127.0.0.1:{port}/health/liveliness", child, log, 180)
        except RuntimeError as exc:
            raise LiteLLMUnavailable(f"the proxy did not start: {exc}") from exc
        url = f"http://127.0.0.1:{port}/chat/completions"
        _first_completion(url)
        yield url, child.pid


def _first_completion(url: str) -> None:
    """One completion through the proxy (its first one is slow: lazy imports, model setup)."""
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    try:
        response = httpx.post(url, json=BODY, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise LiteLLMUnavailable(f"the proxy did not answer a first completion: {exc!r}") from exc
    if response.status_code != 200:
        raise LiteLLMUnavailable(
            f"the proxy answered {response.status_code} to a first completion: "
            f"{response.text[:300]}"
        )


BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def run(*, duration: float = 5, concurrency: tuple[int, ...] = (1, 16, 64)) -> dict[str, Any]:
    """The proxy alone against the fake upstream: a LoadResult dict per concurrency."""
    with tempfile.TemporaryDirectory(prefix="interlog-bench-") as tmp:
        workdir = Path(tmp)
        with ExitStack() as stack:
            upstream = stack.enter_context(services.fake_upstream(workdir))
            url, _pid = stack.enter_context(litellm_proxy(upstream, workdir))
            loadgen.run_load(url, BODY, MASTER_KEY, 2, 2)
            results = {
                clients: loadgen.run_load(url, BODY, MASTER_KEY, clients, duration).as_dict()
                for clients in concurrency
            }
    return {"version": installed_version(), "results": results}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench litellm", description=__doc__)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args(argv)
    try:
        result = run(duration=args.duration, concurrency=tuple(args.concurrency))
    except LiteLLMUnavailable as exc:
        print(f"LiteLLM proxy skipped: {exc}")
        return {"skipped": str(exc)}
    print(f"LiteLLM {result['version']} proxy, 1 worker")
    for clients, row in result["results"].items():
        print(
            f"  {clients:>3} clients: {row['rps']:8.1f} req/s  p50 {row['p50']:8.1f} ms  "
            f"p99 {row['p99']:8.1f} ms  errors {row['errors']}"
        )
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
