"""Liveness and readiness probes.

/readyz is unauthenticated (load balancers, orchestrators), so it says only ok / not ok per
check: a driver's error names hosts, ports, users and database names. The reason of a failing
check is logged, and is in the answer (`detail`) only for a request with an admin key.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

import migrations
from ingest.auth import authenticate_header

log = logging.getLogger("interlog.health")

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def _store_problem(engine: Engine) -> str | None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        return migrations.schema_problem(connection)


async def _is_admin(request: Request) -> bool:
    """Whether the request carries an admin key; never raises (no key, a bad one, or a store
    that cannot check a stored key: no details). The bootstrap INTERLOG_ADMIN_KEY is checked
    without the store, so it sees the details while the store is down."""
    header = request.headers.get("authorization")
    if not header:
        return False
    try:
        principal = await authenticate_header(request.app.state, header)
    except Exception:
        return False
    return principal.is_admin


def _log_problem(request: Request, problem: str) -> None:
    """Log a failing check's reason once per change (probes call every few seconds)."""
    if request.app.state.__dict__.get("readiness_problem") != problem:
        request.app.state.readiness_problem = problem
        log.warning("not ready: database: %s", problem)


@router.get(
    "/readyz",
    responses={
        503: {
            "description": 'A check failed: `{"status": "unavailable", "database": '
            '"not ok"}`; with an admin key also `detail`, the reason per failing check.'
        }
    },
)
async def read_readiness(request: Request) -> JSONResponse:
    """Readiness: the store answers, and its schema is this code's (not older). Says ok / not
    ok per check; why a check fails only to an admin key (`Authorization: Bearer <admin key>`)."""
    try:
        problem = await asyncio.to_thread(_store_problem, request.app.state.engine)
    except Exception as exc:  # any driver error means "not ready"
        problem = str(exc)[:500]
    if problem is None:
        request.app.state.readiness_problem = None
        return JSONResponse({"status": "ok", "database": "ok"})
    _log_problem(request, problem)
    content: dict[str, object] = {"status": "unavailable", "database": "not ok"}
    if await _is_admin(request):
        content["detail"] = {"database": problem}
    return JSONResponse(status_code=503, content=content)
