"""Exports of every interaction matching the filters (not a page), streamed batch by batch.

Formats: CSV and Parquet (one row per interaction with a column per metric key, as
`analytics.interactions`), and JSONL in OpenAI's fine-tuning chat format: one
`{"messages": [...prompt..., {"role": "assistant", "content": completion}]}` per completion.
Tools stay intact: the request's `tools` go on the line (`"tools": [...]`), an earlier
assistant turn keeps its `tool_calls` and a tool message its `tool_call_id`, and an answer that
called tools ends the line with `{"role": "assistant", "tool_calls": [...]}` (its text as
`content` when it had some). In JSONL, multi-part contents are flattened to their text parts
joined by newlines and image parts are omitted (the fine-tuning text format has no place for
our stored image references); interactions with neither a completion nor tool calls (errors,
cancellations) are skipped. Only completions whose
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


#: Message fields a fine-tuning line keeps beside role and content.
_TURN_FIELDS = ("name", "tool_calls", "tool_call_id", "weight")


def _turn(message: dict[str, Any]) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": message.get("role", "user")}
    content = _text(message.get("content"))
    if content or not message.get("tool_calls"):  # an assistant turn of tool calls only: none
        turn["content"] = content
    turn.update((key, message[key]) for key in _TURN_FIELDS if message.get(key) is not None)
    return turn


def _loaded(document: Any) -> Any:
    return orjson.loads(document) if isinstance(document, str | bytes) else document


def fine_tuning_example(
    messages_json: str | None,
    completion: str | None,
    tool_calls_json: str | None = None,
    params_json: str | None = None,
) -> bytes | None:
    """One JSONL line: the prompt messages (text only, tool calls and tool messages intact),
    the answer as the assistant turn, and the request's tools; None for an answer with
    neither text nor tool calls."""
    tool_calls = _loaded(tool_calls_json) if tool_calls_json else None
    if not completion and not tool_calls:
        return None
    messages = _loaded(messages_json) if messages_json else []
    turns = [_turn(m) for m in messages if isinstance(m, dict)]
    answer: dict[str, Any] = {"role": "assistant"}
    if completion or not tool_calls:
        answer["content"] = completion
    if tool_calls:
        answer["tool_calls"] = tool_calls
    turns.append(answer)
    line: dict[str, Any] = {"messages": turns}
    params = _loaded(params_json) if params_json else None
    if isinstance(params, dict) and params.get("tools"):
        line["tools"] = params["tools"]
    return orjson.dumps(line) + b"\n"


def _jsonl_chunk(batch: pa.RecordBatch) -> bytes:
    lines = (
        fine_tuning_example(m, c, t, p)
        for m, c, t, p in zip(
            batch.column("messages").to_pylist(),
            batch.column("completion").to_pylist(),
            batch.column("tool_calls").to_pylist(),
            batch.column("params").to_pylist(),
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
