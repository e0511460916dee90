"""Known data for the analytics and export tests, with the records kept for independent checks."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert

from store.analytics.lake import drop_lake
from store.catalog import attach_model, create_model, create_project
from store.db import create_store_engine
from store.ids import uuid7
from store.interactions import write_interactions
from store.models import AbTest, Comparison, Metric, MetricValue
from store.types import utcnow

METRIC_TABLE: Any = Metric.__table__  # type: ignore[attr-defined]
VALUE_TABLE: Any = MetricValue.__table__  # type: ignore[attr-defined]
AB_TABLE: Any = AbTest.__table__  # type: ignore[attr-defined]
COMPARISON_TABLE: Any = Comparison.__table__  # type: ignore[attr-defined]


@dataclass
class KnownData:
    """What was written: records (as dicts), metric values per completion, ids."""

    now: datetime
    project_id: int
    other_project_id: int
    records: list[dict[str, Any]] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    thumbs: dict[str, float] = field(default_factory=dict)
    metric_ids: dict[str, int] = field(default_factory=dict)

    def bot(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["project_id"] == self.project_id]


def _labels(i: int) -> dict[str, str]:
    labels = {"team": "abc"[i % 3]}
    if i % 4 == 0:
        labels["env"] = "prod"
    elif i % 4 == 1:
        labels["env"] = "dev"
    if i < 10:
        labels["tier"] = "gold"
    return labels


def write_known_data(engine: Engine, *, n: int = 60, seed: int = 7) -> KnownData:
    """Project `bot` (n interactions over two models, labels, two metrics) and project `other`."""
    rng = np.random.default_rng(seed)
    bot = create_project(engine, key="bot")
    other = create_project(engine, key="other")
    m1 = create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9/v1"])
    m2 = create_model(engine, key="m2", upstream_urls=["http://127.0.0.1:9/v1"])
    for project in ("bot", "other"):
        for model in ("m1", "m2"):
            attach_model(engine, project_key=project, model_key=model)
    assert bot.id is not None and other.id is not None
    now = utcnow().replace(microsecond=0)
    data = KnownData(now=now, project_id=bot.id, other_project_id=other.id)
    for i in range(n):
        data.records.append(
            {
                "completion_id": str(uuid7()),
                "project_id": bot.id,
                "model_id": m1.id if i % 2 == 0 else m2.id,
                "model": "m1" if i % 2 == 0 else "m2",
                "session_id": str(uuid.uuid4()),
                "user_id": f"user{i % 5}",
                "created_at": (now - timedelta(hours=i)).isoformat(),
                "labels": _labels(i),
                "messages": [{"role": "user", "content": f"question number {i} about billing"}],
                "completion": f"answer {i}" + (" refund_ok" if i % 6 == 0 else ""),
                "latency_ms": float(np.round(rng.gamma(4.0, 50.0), 3)),
                "ttft_ms": float(np.round(rng.gamma(2.0, 10.0), 3)),
                "prompt_tokens": int(rng.integers(5, 50)),
                "completion_tokens": int(rng.integers(5, 80)),
                "status": "error" if i % 7 == 0 else "ok",
            }
        )
    for i in range(5):
        data.records.append(
            {
                "completion_id": str(uuid7()),
                "project_id": other.id,
                "model_id": m1.id,
                "model": "m1",
                "session_id": str(uuid.uuid4()),
                "created_at": (now - timedelta(minutes=i)).isoformat(),
                "labels": {"team": "a", "env": "prod"},
                "messages": [{"role": "user", "content": "secret of other"}],
                "completion": "other answer",
                "latency_ms": 1.0,
                "status": "ok",
            }
        )
    write_interactions(engine, [{k: v for k, v in r.items() if k != "model"} for r in data.records])
    with engine.begin() as connection:
        for key, kind in (("quality", "scalar"), ("thumbs", "bool")):
            for project_id in (bot.id, other.id):
                result = connection.execute(
                    insert(METRIC_TABLE).values(
                        project_id=project_id,
                        key=key,
                        name=key.title(),
                        kind=kind,
                        scoring="higher_is_better",
                        created_at=now,
                    )
                )
                if project_id == bot.id:
                    data.metric_ids[key] = int(result.inserted_primary_key[0])  # type: ignore[index]
        values = []
        for i, record in enumerate(data.bot()):
            cid = record["completion_id"]
            if i % 3 != 2:
                # Two values on some completions: the completion's score is their mean.
                first = float(np.round(rng.uniform(0, 1), 4))
                scores = [first, float(np.round(rng.uniform(0, 1), 4))] if i % 8 == 0 else [first]
                data.quality[cid] = float(np.mean(scores))
                values += [("quality", cid, s) for s in scores]
            if i % 4 != 3:
                thumb = float(rng.uniform() < 0.6)
                data.thumbs[cid] = thumb
                values.append(("thumbs", cid, thumb))
        connection.execute(
            insert(VALUE_TABLE),
            [
                {
                    "id": uuid7(),
                    "completion_id": uuid.UUID(cid),
                    "metric_id": data.metric_ids[key],
                    "value": value,
                    "created_at": now,
                }
                for key, cid, value in values
            ],
        )
    return data


@dataclass
class SharedStore:
    """A migrated store with the known data, shared (read-only) by a module's tests."""

    url: str
    engine: Engine
    data: KnownData


@contextmanager
def shared_store(request: Any, backend: str, tmp_dir: Path) -> Iterator[SharedStore]:
    """Build a store of `backend` with the known data once, for read-only tests."""
    from tests.conftest import create_postgres_database, drop_postgres_database

    if backend == "sqlite":
        path = tmp_dir / "shared.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = create_postgres_database(template=request.getfixturevalue("_postgres_template"))
    engine = create_store_engine(url)
    try:
        yield SharedStore(url=url, engine=engine, data=write_known_data(engine))
    finally:
        drop_lake(engine)
        engine.dispose()
        if backend != "sqlite":
            drop_postgres_database(url)
