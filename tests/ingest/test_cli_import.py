"""`interlog import FILE.jsonl`: direct into the store, or through a gateway's bulk endpoint."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from ingest.app import create_app
from ingest.cli import app
from store.catalog import create_model, create_project
from store.db import create_store_engine
from store.interactions import INTERACTION_TABLE
from store.keys import create_api_key
from store.metrics import create_metric
from store.models import MetricValue
from store.settings import Settings, get_settings
from tests.ingest.chat_double import serve_in_thread


def _lines(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "model_service": "m1",
            "project": "proj",
            "messages": [{"role": "user", "content": f"q{n}"}],
            "completion": f"a{n}",
            "completion_id": str(uuid.UUID(int=n + 1)),
            **extra,
        }
        for n in range(count)
    ]


def _write(path: Path, items: list[Any]) -> Path:
    path.write_bytes(
        b"\n".join(i if isinstance(i, bytes) else orjson.dumps(i) for i in items) + b"\n"
    )
    return path


def _completions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(INTERACTION_TABLE.c.completion)).scalars())


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    create_project(engine, key="proj")
    create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9"])
    return engine


def test_import_writes_good_lines_reports_bad_ones_and_is_repeatable(
    seeded: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items: list[Any] = _lines(5)
    items.insert(2, b"{not json")
    items.append({**_lines(1)[0], "model_service": "nope", "completion_id": str(uuid.uuid4())})
    path = _write(tmp_path / "log.jsonl", items)
    monkeypatch.setenv("INTERLOG_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(app, ["import", str(path), "--batch-size", "2"])
        again = runner.invoke(app, ["import", str(path)])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 1
    assert "line 3: not valid JSON" in first.output
    assert "line 7: model nope not found" in first.output
    assert "imported 5 interactions, 2 bad lines" in first.output
    assert again.exit_code == 1
    assert _completions(seeded) == [f"a{n}" for n in range(5)]


def test_import_reports_metric_values_out_of_range_and_keeps_the_rest(
    seeded: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_metric(seeded, project_key="proj", key="quality")
    values = [0.5, 1e13, -1e308, 1e12]
    items = [
        {**line, "feedbacks": [{"metric": "quality", "value": value}]}
        for line, value in zip(_lines(4), values, strict=True)
    ]
    path = _write(tmp_path / "log.jsonl", items)
    monkeypatch.setenv("INTERLOG_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["import", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "line 2: metric quality: value 10000000000000.0 is out of range" in result.output
    assert "line 3: metric quality: value -1e+308 is out of range" in result.output
    assert "imported 2 interactions, 2 bad lines" in result.output
    assert _completions(seeded) == ["a0", "a3"]
    with seeded.connect() as connection:
        stored = connection.execute(select(MetricValue.value)).scalars().all()  # type: ignore[call-overload]
    assert sorted(stored) == [0.5, 1e12]


def test_import_through_the_gateway_uses_the_keys_project(sqlite_url: str, tmp_path: Path) -> None:
    database_url = sqlite_url
    seeded = create_store_engine(sqlite_url)
    create_project(seeded, key="proj")
    create_model(seeded, key="m1", upstream_urls=["http://127.0.0.1:9"])
    create_project(seeded, key="other")
    key = create_api_key(seeded, project_key="proj").secret
    create_metric(seeded, project_key="proj", key="quality")
    huge = {"metric": "quality", "value": 1e308}
    items = [
        *_lines(3),
        {**_lines(1)[0], "project": "other", "completion_id": str(uuid.uuid4())},
        {**_lines(1)[0], "completion_id": str(uuid.uuid4()), "feedbacks": [huge]},
    ]
    path = _write(tmp_path / "log.jsonl", items)
    settings = Settings(database_url=database_url, journal_dir=tmp_path / "journal")
    with serve_in_thread(create_app(settings)) as url:
        result = CliRunner().invoke(
            app, ["import", str(path), "--url", url, "--api-key", key, "--batch-size", "2"]
        )
    assert result.exit_code == 1
    assert "line 4: project other not found" in result.output
    assert "line 5: metric quality: value 1e+308 is out of range" in result.output
    assert _completions(seeded) == ["a0", "a1", "a2"]
    seeded.dispose()
