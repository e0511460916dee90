"""Operator endpoints: GET /api/v1/status (journal and writer health) and GET /metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from ingest.auth import PrincipalDep
from ingest.telemetry import Telemetry, render_prometheus

router = APIRouter(tags=["operations"])


@router.get("/api/v1/status")
async def read_status(request: Request, _principal: PrincipalDep) -> dict[str, Any]:
    """Logging health of the process that answers: journal depth and lag, writer counters."""
    state = request.app.state
    telemetry: Telemetry = state.telemetry
    writer = getattr(state, "writer", None)
    body: dict[str, Any] = {
        "chat_requests": dict(telemetry.chat_requests),
        "not_stored": telemetry.not_stored,
        "capture_errors": telemetry.capture_errors,
    }
    if writer is not None:
        stats = writer.stats
        journal = writer.journal
        body["journal"] = {
            "directory": journal.directory.name if journal.directory else None,
            "fsync": journal.fsync,
            "depth": journal.depth,
            "lag_seconds": round(journal.oldest_age, 3),
            "appended": journal.appended,
            "replayed": journal.replayed,
            # Set aside in rejected-*.jsonl, never dropped: records the store refused for good
            # and lines of a journal that were not records (`corrupt`, counted in both).
            "rejected": journal.rejected,
            "corrupt": journal.corrupt,
        }
        body["writer"] = {
            "written": stats.written,
            "batches": stats.batches,
            "retried": stats.retried,
            "failed": stats.failed,
            "last_error": stats.last_error,
            "last_error_age_seconds": (
                None if stats.last_error_at is None else round(time.time() - stats.last_error_at, 3)
            ),
        }
    sqlite_writer = getattr(state, "sqlite_writer", None)
    if sqlite_writer is not None:  # bulk ingest on a SQLite file (store/sqlite_writer.py)
        body["sqlite_writer_process"] = {
            "pid": sqlite_writer.pid,
            "transactions": sqlite_writer.groups,
            "batches": sqlite_writer.batches,
        }
    return body


@router.get("/metrics", response_class=PlainTextResponse)
async def read_metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics of this process: requests, latency, journal depth and lag, writes."""
    state = request.app.state
    text = render_prometheus(state.telemetry, getattr(state, "writer", None))
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
