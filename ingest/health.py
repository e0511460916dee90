"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from store.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database does not answer."}})
async def read_readiness(request: Request) -> JSONResponse:
    """Readiness: the store answers a trivial query."""
    try:
        await asyncio.to_thread(ping, request.app.state.engine)
    except Exception as exc:  # any driver error means "not ready"
        return JSONResponse(
            status_code=503, content={"status": "unavailable", "database": str(exc)[:500]}
        )
    return JSONResponse({"status": "ok", "database": "ok"})
