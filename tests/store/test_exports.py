"""Exports on SQLite and PostgreSQL: every matching row, read back and compared."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from store import analytics
from store.exports import export_chunks, export_interactions, fine_tuning_example
from store.filters import Filters
from store.keys import Principal
from tests.conftest import BACKENDS
from tests.store.analytics_data import SharedStore, shared_store


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStore]:
    with shared_store(request, request.param, tmp_path_factory.mktemp("exports")) as shared:
        yield shared


def test_parquet_and_csv_hold_every_matching_row(store: SharedStore, tmp_path: Path) -> None:
    data = store.data
    filters = Filters(labels=["team=a|b"], metrics=["quality>=0.3"])
    expected = {
        r["completion_id"]
        for r in data.bot()
        if r["labels"]["team"] in "ab" and data.quality.get(r["completion_id"], -1) >= 0.3
    }
    assert expected
    # Batches smaller than the result: the stream is several chunks, not one page.
    chunks = list(
        export_chunks(store.engine, filters, scope=data.project_id, format="parquet", batch_size=4)
    )
    assert len(chunks) > 1
    table = pq.read_table(io.BytesIO(b"".join(chunks)))
    assert set(table.column("completion_id").to_pylist()) == expected
    frame = table.to_pandas().set_index("completion_id")
    for cid in expected:
        assert frame.loc[cid, "quality"] == pytest.approx(data.quality[cid])
    path = tmp_path / "out.csv"
    rows = export_interactions(store.engine, path, filters, scope=data.project_id, format="csv")
    csv = pd.read_csv(path)
    assert rows == len(csv) == len(expected)
    assert set(csv["completion_id"]) == expected
    reference = analytics.interactions(store.engine, filters, scope=data.project_id, limit=None)
    assert list(csv.columns) == list(reference.columns)
    # Both in storage order, which no one promises to repeat: compare by completion.
    csv, reference = csv.sort_values("completion_id"), reference.sort_values("completion_id")
    assert csv["latency_ms"].tolist() == pytest.approx(reference["latency_ms"].tolist())


def test_jsonl_is_openai_fine_tuning_chat_format(store: SharedStore, tmp_path: Path) -> None:
    data = store.data
    path = tmp_path / "train.jsonl"
    filters = Filters(metrics=["thumbs=true"], status="ok")
    export_interactions(store.engine, path, filters, scope=data.project_id, format="jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    expected = [
        r for r in data.bot() if data.thumbs.get(r["completion_id"]) == 1.0 and r["status"] == "ok"
    ]
    assert len(lines) == len(expected) > 0
    by_answer = {r["completion"]: r for r in expected}
    for line in lines:
        messages = line["messages"]
        assert set(line) == {"messages"}
        assert messages[-1]["role"] == "assistant"
        record = by_answer[messages[-1]["content"]]
        assert messages[:-1] == record["messages"]


def test_exports_respect_project_scope(store: SharedStore) -> None:
    data = store.data
    key = Principal(is_admin=False, project_id=data.other_project_id, project_key="other")
    table = pq.read_table(
        io.BytesIO(b"".join(export_chunks(store.engine, scope=key, format="parquet")))
    )
    assert table.num_rows == 5
    assert set(table.column("project").to_pylist()) == {"other"}
    empty = b"".join(export_chunks(store.engine, Filters(project="bot"), scope=key, format="csv"))
    assert empty.decode().count("\n") == 1  # the header only


def test_fine_tuning_example_flattens_text_and_omits_images() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "interlog://sha256/abc"}},
                {"type": "text", "text": "answer in French"},
            ],
        },
    ]
    line = fine_tuning_example(json.dumps(messages), "un chat")
    assert line is not None
    assert json.loads(line) == {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is this?\nanswer in French"},
            {"role": "assistant", "content": "un chat"},
        ]
    }
    assert fine_tuning_example(json.dumps(messages), None) is None
