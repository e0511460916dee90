"""Export files for the download button, built by the store's streamed exports (store.exports).

The dashboard holds the file in memory for the browser, so it refuses very large sets and points
to `interlog export`, which streams to disk.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from dashboard.context import PageContext
from store.exports import export_interactions
from store.filters import Filters

MAX_DASHBOARD_EXPORT_ROWS = 200_000


@dataclass(frozen=True)
class ExportFormat:
    label: str
    extension: str
    mime: str
    help: str


FORMATS = {
    "csv": ExportFormat("CSV", "csv", "text/csv", "One row per interaction, metrics as columns."),
    "parquet": ExportFormat(
        "Parquet", "parquet", "application/vnd.apache.parquet", "Typed columns, for pandas/DuckDB."
    ),
    "jsonl": ExportFormat(
        "Fine-tuning JSONL",
        "jsonl",
        "application/jsonl",
        'OpenAI chat fine-tuning format: {"messages": [...]} with the completion as the '
        "assistant turn.",
    ),
}


def export_bytes(ctx: PageContext, filters: Filters, fmt: str) -> bytes:
    """The whole filtered set in one format, through the store's streamed exports."""
    buffer = io.BytesIO()
    export_interactions(ctx.engine, buffer, filters, scope=ctx.principal, format=fmt)
    return buffer.getvalue()
