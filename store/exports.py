"""Exports of every interaction matching the filters (not a page), streamed batch by batch.

Formats: CSV and Parquet (one row per interaction with a column per metric key, as
`analytics.interactions`), and JSONL in OpenAI's fine-tuning chat format: one
`{"messages": [...prompt..., {"role": "assistant", "content": completion}]}` per completion.
In JSONL, multi-part contents are flattened to their text parts joined by newlines and image
parts are omitted (the fine-tuning text format has no place for our stored image references);
interactions without a completion (errors, cancellations) are skipped. Only completions whose
metric passes a threshold: put the condition in `Filters(metrics=["quality>=0.8"])`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import orjson
from sqlalchemy import Engine

from store.analytics.questions import copy_interactions, interaction_batches
from store.errors import InvalidInputError
from store.filters import Filters, Scope

if TYPE_CHECKING:  # pyarrow loads on the first export: the gateway imports this module
    import pyarrow as pa

ExportFormat = Literal["csv", "parquet", "jsonl"]
#: Rows per batch (and per Parquet row group) of an export: about 30 MB of realistic text, so
#: that a gateway streaming an export stays small.
EXPORT_BATCH_ROWS = 10_000
FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "jsonl": ("application/jsonl", "jsonl"),
}


class _Chunks(io.RawIOBase):
    """A write-only file that hands over what was written since the last drain."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        return len(chunk)

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def check_format(format: str) -> ExportFormat:
    """Validate an export format name."""
    if format not in FORMATS:
        raise InvalidInputError(f"unknown export format {format!r}: use csv, parquet or jsonl")
    return format  # type: ignore[return-value]


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = [part.get("text", "") for part in content if isinstance(part, dict)]
    return "\n".join(p for p in parts if p and isinstance(p, str))


def fine_tuning_example(messages_json: str | None, completion: str | None) -> bytes | None:
    """One JSONL line: the prompt messages (text only) plus the completion as the assistant turn."""
    if not completion:
        return None
    messages = orjson.loads(messages_json) if messages_json else []
    turns = [{"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in messages]
    turns.append({"role": "assistant", "content": completion})
    return orjson.dumps({"messages": turns}) + b"\n"


def _jsonl_chunk(batch: pa.RecordBatch) -> bytes:
    lines = (
        fine_tuning_example(m, c)
        for m, c in zip(
            batch.column("messages").to_pylist(),
            batch.column("completion").to_pylist(),
            strict=True,
        )
    )
    return b"".join(line for line in lines if line)


def export_chunks(
    engine: Engine,
    filters: Filters | None = None,
    *,
    scope: Scope,
    format: str,
    batch_size: int = EXPORT_BATCH_ROWS,
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export as a stream of byte chunks (one per batch); `on_rows(n)` after each batch."""
    kind = check_format(format)
    sink = _Chunks()
    writer: Any = None
    try:
        for batch in interaction_batches(engine, filters, scope=scope, batch_size=batch_size):
            if kind == "jsonl":
                chunk = _jsonl_chunk(batch)
            else:
                if writer is None:
                    import pyarrow.csv as pacsv
                    import pyarrow.parquet as pq

                    writer = (
                        pacsv.CSVWriter(sink, batch.schema)
                        if kind == "csv"
                        else pq.ParquetWriter(sink, batch.schema, compression="zstd")
                    )
                writer.write_batch(batch)
                chunk = sink.drain()
            if on_rows is not None:
                on_rows(batch.num_rows)
            if chunk:
                yield chunk
        if writer is not None:
            writer.close()
            writer = None
        tail = sink.drain()
        if tail:
            yield tail
    finally:
        if writer is not None:
            writer.close()


def export_interactions(
    engine: Engine,
    destination: str | Path | BinaryIO,
    filters: Filters | None = None,
    *,
    scope: Scope,
    format: str,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write every matching interaction to a file (path or binary file); returns rows read.
    Parquet or CSV to a path without a progress callback: DuckDB writes the file itself."""
    if isinstance(destination, str | Path) and on_rows is None and format in ("parquet", "csv"):
        return copy_interactions(engine, destination, filters, scope=scope, format=format)
    rows = 0

    def count(n: int) -> None:
        nonlocal rows
        rows += n
        if on_rows is not None:
            on_rows(n)

    chunks = export_chunks(engine, filters, scope=scope, format=format, on_rows=count)
    if isinstance(destination, str | Path):
        with open(destination, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
    else:
        for chunk in chunks:
            destination.write(chunk)
    return rows
