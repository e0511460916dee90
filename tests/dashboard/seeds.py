"""A small, known store for dashboard tests: two projects, labels, sessions, an image, scores."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from store.abtests import create_ab_test
from store.catalog import attach_model, create_model, create_project, get_model
from store.feedback import add_comparison, add_metric_value
from store.ids import uuid7
from store.interactions import write_interactions
from store.keys import create_api_key
from store.metrics import create_metric
from store.types import utcnow

# A 1x1 PNG: the smallest real image the attachment table can hold.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class SeededStore:
    """What the seed wrote: keys to sign in with and ids to look for."""

    admin_key: str
    support_key: str
    code_key: str
    support_ids: list[str] = field(default_factory=list)
    code_ids: list[str] = field(default_factory=list)
    billing_ids: list[str] = field(default_factory=list)
    session_id: str = ""
    session_ids: list[str] = field(default_factory=list)
    image_completion_id: str = ""
    image_sha256: str = ""
    scored_completion_id: str = ""


def _record(project_id: int, model_id: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "completion_id": str(uuid7()),
        "project_id": project_id,
        "model_id": model_id,
        "session_id": str(uuid.uuid4()),
        "messages": [{"role": "user", "content": "How do I reset my password?"}],
        "completion": "Open Settings, then Security, then Reset password.",
        "finish_reason": "stop",
        "prompt_tokens": 12,
        "completion_tokens": 9,
        "ttft_ms": 40.0,
        "latency_ms": 120.0,
        "params": {"temperature": 0.2},
    }
    record.update(fields)
    return record


def seed_dashboard_store(engine: Engine) -> SeededStore:
    """Write the known dataset with store functions and return its keys and ids."""
    support = create_project(engine, key="support-bot", name="Support bot")
    code = create_project(engine, key="code-assistant", name="Code assistant")
    assert support.id is not None and code.id is not None
    for key in ("small-model", "large-model"):
        create_model(engine, key=key, upstream_urls=["http://127.0.0.1:9"])
    for project in ("support-bot", "code-assistant"):
        attach_model(engine, project_key=project, model_key="small-model", default=True)
        attach_model(engine, project_key=project, model_key="large-model")
    small = get_model(engine, key="small-model").id
    large = get_model(engine, key="large-model").id
    assert small is not None and large is not None
    create_metric(engine, project_key="support-bot", key="quality", kind="scalar")
    create_metric(engine, project_key="support-bot", key="thumbs_up", kind="bool")
    create_metric(engine, project_key="code-assistant", key="compiles", kind="bool")

    seeded = SeededStore(
        admin_key=create_api_key(engine, admin=True).secret,
        support_key=create_api_key(engine, project_key="support-bot").secret,
        code_key=create_api_key(engine, project_key="code-assistant").secret,
    )
    test = create_ab_test(
        engine,
        project_key="support-bot",
        key="small-vs-large",
        variants=[{"model": "small-model", "weight": 1}, {"model": "large-model", "weight": 1}],
        metric_key="quality",
    )
    start = utcnow() - timedelta(hours=3)
    records: list[dict[str, Any]] = []
    for index in range(12):
        team = "billing" if index % 3 == 0 else "shipping"
        record = _record(
            support.id,
            small if index % 2 == 0 else large,
            created_at=(start + timedelta(minutes=index)).isoformat(),
            labels={"team": team, "lang": "en" if index % 2 == 0 else "fr"},
            messages=[{"role": "user", "content": f"Support question {index} about {team}"}],
            completion=f"Support answer {index} for {team}",
            status="error" if index == 11 else "ok",
            ab_test_id=test.id,
            ab_variant="small-model" if index % 2 == 0 else "large-model",
            error="upstream timed out" if index == 11 else None,
        )
        records.append(record)
        seeded.support_ids.append(record["completion_id"])
        if team == "billing":
            seeded.billing_ids.append(record["completion_id"])
    session = str(uuid.uuid4())
    history: list[dict[str, Any]] = []
    for turn in range(3):
        history = [*history, {"role": "user", "content": f"Session turn {turn} question"}]
        record = _record(
            support.id,
            small,
            session_id=session,
            created_at=(start + timedelta(minutes=30 + turn)).isoformat(),
            labels={"team": "shipping", "lang": "en"},
            messages=history,
            completion=f"Session turn {turn} answer",
        )
        history = [*history, {"role": "assistant", "content": record["completion"]}]
        records.append(record)
        seeded.session_ids.append(record["completion_id"])
    seeded.session_id = session
    digest = hashlib.sha256(PIXEL_PNG).hexdigest()
    image_record = _record(
        support.id,
        large,
        created_at=(start + timedelta(minutes=40)).isoformat(),
        labels={"team": "vision", "lang": "en"},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"attachment://sha256/{digest}"}},
                ],
            }
        ],
        completion="A single pixel.",
        attachments=[
            {
                "sha256": digest,
                "mime_type": "image/png",
                "size_bytes": len(PIXEL_PNG),
                "data_b64": base64.b64encode(PIXEL_PNG).decode(),
            }
        ],
    )
    records.append(image_record)
    seeded.image_completion_id = image_record["completion_id"]
    seeded.image_sha256 = digest
    for index in range(5):
        record = _record(
            code.id,
            small,
            created_at=(start + timedelta(minutes=50 + index)).isoformat(),
            labels={"repo": "interlog", "lang": "python"},
            messages=[{"role": "user", "content": f"Code question {index}: write a loop"}],
            completion=f"for i in range({index}): pass",
        )
        records.append(record)
        seeded.code_ids.append(record["completion_id"])
    write_interactions(engine, records)
    seeded.scored_completion_id = seeded.support_ids[0]
    add_metric_value(
        engine,
        project_id=support.id,
        completion_id=seeded.support_ids[0],
        metric="quality",
        value=0.9,
        details="clear",
    )
    for index in range(1, 8):  # odd rows score low, even rows high: 4 of 8 are >= 0.8
        add_metric_value(
            engine,
            project_id=support.id,
            completion_id=seeded.support_ids[index],
            metric="quality",
            value=0.2 + 0.05 * index if index % 2 else 0.8 + 0.02 * index,
        )
    add_comparison(
        engine,
        project_id=support.id,
        metric="quality",
        preferred_completion_id=seeded.support_ids[0],
        other_completion_id=seeded.support_ids[1],
    )
    return seeded
