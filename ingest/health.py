"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

import migrations

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def _store_problem(engine: Engine) -> str | None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        return migrations.schema_problem(connection)


@router.get(
    "/readyz",
    responses={503: {"description": "The database does not answer, or is not migrated."}},
)
async def read_readiness(request: Request) -> JSONResponse:
    """Readiness: the store answers, and its schema is this code's (not older)."""
    try:
        problem = await asyncio.to_thread(_store_problem, request.app.state.engine)
    except Exception as exc:  # any driver error means "not ready"
        problem = str(exc)[:500]
    if problem is not None:
        return JSONResponse(status_code=503, content={"status": "unavailable", "database": problem})
    return JSONResponse({"status": "ok", "database": "ok"})
