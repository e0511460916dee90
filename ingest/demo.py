"""`interlog demo`: seed a realistic dataset THROUGH the real gateway, then stop what it started.

It starts three `interlog demo-model` upstreams (unless the caller runs them: `interlog up` keeps
them, see ingest.demo_servers) and an `interlog serve` gateway on free loopback ports
(subprocesses), registers projects, models, keys and an A/B test in the store, defines metrics
over REST, sends chat completions in multi-turn sessions with labels (some streamed, some with
images, a few failing upstream), then posts metric values and preferences over REST.
A store that already holds the demo projects is left as it is.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from sqlalchemy import Engine

import migrations
from ingest import demo_data
from ingest.demo_data import DEMO_MODELS, PROJECTS, ProjectSpec
from ingest.demo_servers import free_port, start_demo_models, stop, stop_all, wait_for
from store.abtests import create_ab_test
from store.catalog import (
    attach_model,
    create_model,
    create_project,
    list_projects,
    set_default_model,
)
from store.db import create_store_engine
from store.keys import create_api_key
from store.readback import list_interactions

SEED = 20240607


@dataclass
class Completion:
    """A completion the gateway answered, as the demo needs it for scoring."""

    project: str
    completion_id: str
    model: str


@dataclass
class DemoResult:
    """What a demo run did (or why it did nothing)."""

    seeded: bool
    message: str
    requests: int = 0
    completions: list[Completion] = field(default_factory=list)
    failed: int = 0
    metric_values: int = 0
    comparisons: int = 0
    admin_key: str | None = None
    project_keys: dict[str, str] = field(default_factory=dict)


def _start(
    stack: ExitStack, args: list[str], *, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `python -m ingest ARGS`; the stack stops it (TERM, then KILL) when it closes."""
    out = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest", *args], stdout=out, stderr=subprocess.STDOUT, env=env
    )
    stack.callback(stop, process)
    return process


def demo_present(engine: Engine) -> bool:
    """True when any demo project already exists in the store."""
    existing = {project.key for project in list_projects(engine)}
    return any(spec.key in existing for spec in PROJECTS)


def _register_catalog(engine: Engine, upstreams: dict[str, str], result: DemoResult) -> None:
    for model_key, (_, multimodal) in DEMO_MODELS.items():
        create_model(
            engine, key=model_key, upstream_urls=[upstreams[model_key]], multimodal=multimodal
        )
    for spec in PROJECTS:
        create_project(engine, key=spec.key, name=spec.name)
        for model_key in spec.models:
            attach_model(
                engine,
                project_key=spec.key,
                model_key=model_key,
                default=model_key == spec.default_model,
            )
        result.project_keys[spec.key] = create_api_key(
            engine, project_key=spec.key, name="demo"
        ).secret
    result.admin_key = create_api_key(engine, admin=True, name="demo admin").secret


def _stored_count(engine: Engine) -> int:
    return list_interactions(engine, project_id=None, limit=1).total_count


def seed_demo(
    database_url: str,
    *,
    interactions: int = 2000,
    concurrency: int = 24,
    upstreams: Mapping[str, str] | None = None,
) -> DemoResult:
    """Seed the demo through a gateway of our own; nothing is done if the demo is present.
    `upstreams` (demo model key -> base URL) names demo model servers the caller runs; without
    it, the demo starts its own and stops them afterwards."""
    migrations.upgrade(database_url)
    engine = create_store_engine(database_url)
    try:
        if demo_present(engine):
            return DemoResult(seeded=False, message="the demo projects already exist; nothing done")
        result = DemoResult(seeded=True, message="")
        before = _stored_count(engine)
        with tempfile.TemporaryDirectory(prefix="interlog-demo-") as tmp, ExitStack() as stack:
            workdir = Path(tmp)
            port = free_port()
            env = dict(os.environ)  # the child's settings: this store, a journal of its own
            env.update(
                INTERLOG_DATABASE_URL=database_url,
                INTERLOG_JOURNAL_DIR=str(workdir / "journal"),
                INTERLOG_LOG_LEVEL="warning",
            )
            args = ["serve", "--port", str(port), "--no-migrate"]
            gateway = _start(stack, args, log=workdir / "gateway.log", env=env)
            if upstreams is None:  # they boot while the gateway does
                servers = start_demo_models(log_dir=workdir)
                stack.callback(stop_all, servers)
                upstreams = {server.model_key: server.url for server in servers}
            wait_for(f"http://127.0.0.1:{port}/healthz", gateway)
            _register_catalog(engine, dict(upstreams), result)  # once every server answers
            base = f"http://127.0.0.1:{port}"
            asyncio.run(_drive(base, engine, result, interactions, concurrency))
            _wait_until_stored(engine, before + len(result.completions))
        result.message = (
            f"sent {result.requests} chat completions ({result.failed} failed upstream), "
            f"{result.metric_values} metric values, {result.comparisons} preferences"
        )
        return result
    finally:
        engine.dispose()


def _wait_until_stored(engine: Engine, expected: int, timeout: float = 60.0) -> None:
    """The gateway stores interactions in the background; wait until the answered ones are in
    (failed requests are logged too, but a client sees no id to wait for)."""
    deadline = time.monotonic() + timeout
    while _stored_count(engine) < expected and time.monotonic() < deadline:
        time.sleep(0.2)


async def _drive(
    base: str, engine: Engine, result: DemoResult, interactions: int, concurrency: int
) -> None:
    rng = random.Random(SEED)
    async with aiohttp.ClientSession(
        base_url=base, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        for spec in PROJECTS:
            await _define_metrics(http, spec, result.project_keys[spec.key])
        create_ab_test(
            engine,
            project_key="support-bot",
            key="small-vs-large",
            variants=[{"model": "demo-small", "weight": 1}, {"model": "demo-large", "weight": 1}],
            metric_key="quality",
            auto_deploy=True,  # the winner becomes support-bot's default when the test ends
        )
        # Until then the test routes support-bot's traffic; if it ends without a winner, the
        # control answers, so the project keeps answering after the demo (it did not: 404).
        set_default_model(engine, project_key="support-bot", model_key="demo-small")
        sessions: list[tuple[ProjectSpec, int, int]] = []
        planned = 0
        while planned < interactions:
            turns = min(rng.choice((1, 1, 2, 3, 4)), interactions - planned)
            sessions.append((demo_data.pick_project(rng), turns, rng.randrange(2**32)))
            planned += turns
        gate = asyncio.Semaphore(concurrency)

        async def run(spec: ProjectSpec, turns: int, seed: int) -> None:
            async with gate:
                await _session(http, spec, result, turns, random.Random(seed))

        await asyncio.gather(*(run(*session) for session in sessions))
        await _post_feedback(http, result, rng)


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _define_metrics(http: aiohttp.ClientSession, spec: ProjectSpec, key: str) -> None:
    for metric in spec.metrics:
        body = {
            "key": metric.key,
            "kind": metric.kind,
            "scoring_type": metric.scoring,
            "description": metric.description,
        }
        async with http.post("/api/v1/metrics", json=body, headers=_headers(key)) as response:
            if response.status not in (201, 409):
                raise RuntimeError(f"defining metric {metric.key}: {await response.text()}")


async def _session(
    http: aiohttp.ClientSession,
    spec: ProjectSpec,
    result: DemoResult,
    turns: int,
    rng: random.Random,
) -> None:
    """One conversation: `turns` requests in order, each carrying the history so far."""
    labels = demo_data.session_labels(rng, spec)
    session_id = str(uuid.uuid4())
    history: list[dict[str, Any]] = [
        {"role": "system", "content": f"You are the {spec.name.lower()}. Be brief."}
    ]
    pinned: str | None = None  # once a session holds an image, it stays on the vision model
    for turn in range(turns):
        text = demo_data.user_text(rng, spec, turn)
        model = pinned or spec.key
        content: Any = text
        if rng.random() < spec.image_rate:
            model = pinned = f"{spec.key}/demo-large"
            content = [{"type": "text", "text": text}, demo_data.image_part(rng)]
        elif pinned is None and spec.default_model and rng.random() < 0.25:
            model = f"{spec.key}/{rng.choice(spec.models)}"
        if isinstance(content, str) and rng.random() < demo_data.ERROR_RATE:
            content = f"{text} [fail=500]"  # the demo model's control phrase for an upstream error
        messages = [*history, {"role": "user", "content": content}]
        body = {
            "model": model,
            "messages": messages,
            "session_id": session_id,
            "labels": labels,
            "temperature": rng.choice((0.0, 0.2, 0.7)),
        }
        stream = rng.random() < demo_data.STREAM_RATE
        answer = await _chat(http, body, result.project_keys[spec.key], stream=stream)
        result.requests += 1
        if answer is None:  # failed upstream: logged as an error; the user asks again
            result.failed += 1
            continue
        completion_id, text_answer, routed = answer
        result.completions.append(Completion(spec.key, completion_id, routed))
        history = [*messages, {"role": "assistant", "content": text_answer}]


async def _chat(
    http: aiohttp.ClientSession, body: dict[str, Any], key: str, *, stream: bool
) -> tuple[str, str, str] | None:
    """(completion_id, text, model) of one chat completion, or None when it failed."""
    payload = {**body, "stream": stream}
    async with http.post("/api/v1/chat/completions", json=payload, headers=_headers(key)) as resp:
        if resp.status != 200:
            await resp.read()
            return None
        if not stream:
            data = await resp.json()
            choice = data["choices"][0]
            return choice["completion_id"], choice["message"]["content"], choice["model"]
        completion_id, model, parts = "", "", []
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = orjson.loads(line[len("data:") :])
            for choice in chunk.get("choices") or ():
                completion_id = choice.get("completion_id", completion_id)
                model = choice.get("model", model)
                parts.append(choice.get("delta", {}).get("content") or "")
        return (completion_id, "".join(parts), model) if completion_id else None


def _metric_value(
    spec: ProjectSpec, metric: demo_data.MetricSpec, model: str, rng: random.Random
) -> bool | float:
    """A plausible value: better models score higher on average."""
    quality = _quality(spec, model)
    if metric.kind == "bool":
        return rng.random() < quality
    if metric.scoring == "lower_is_better":
        return round(rng.uniform(0.2, 3.0) * (1.5 - quality), 3)
    return demo_data.score(rng, quality)


def _quality(spec: ProjectSpec, model: str) -> float:
    return spec.quality_by_model.get(model.split("/")[-1], 0.6)


async def _post_feedback(
    http: aiohttp.ClientSession, result: DemoResult, rng: random.Random
) -> None:
    """Metric values on about 40% of completions, and preferences between pairs of them."""
    specs = {spec.key: spec for spec in PROJECTS}
    for project, key in result.project_keys.items():
        spec = specs[project]
        done = [c for c in result.completions if c.project == project]
        items = []
        for completion in done:
            if rng.random() > 0.4:
                continue
            for metric in spec.metrics:
                if rng.random() < 0.8:
                    items.append(
                        {
                            "completion_id": completion.completion_id,
                            "metric": metric.key,
                            "value": _metric_value(spec, metric, completion.model, rng),
                            "user_id": rng.choice(("ana", "ben", "chloe", "dev")),
                            "details": rng.choice((None, None, "clear answer", "too long")),
                        }
                    )
        if items:
            async with http.post(
                "/api/v1/feedback/bulk", json={"items": items}, headers=_headers(key)
            ) as response:
                response.raise_for_status()
                result.metric_values += int((await response.json())["succeeded"])
        pairs = [(a, b) for a, b in zip(done[::2], done[1::2], strict=False) if a.model != b.model]
        for first, second in pairs[: max(1, len(done) // 10)]:
            better = _quality(spec, first.model) >= _quality(spec, second.model)
            keep = better == (rng.random() < 0.7)  # the better model wins 70% of the time
            preferred, other = (first, second) if keep else (second, first)
            body = {
                "metric": next(m.key for m in spec.metrics if m.kind == "scalar"),
                "preferred_completion": preferred.completion_id,
                "other_completion": other.completion_id,
            }
            async with http.post("/api/v1/comparison", json=body, headers=_headers(key)) as resp:
                if resp.status == 201:
                    result.comparisons += 1
