"""Authentication: `Authorization: Bearer <key>` to a Principal, with a short-lived cache.

Keys are looked up by hash (store.keys); a verified key is cached for AUTH_CACHE_SECONDS, so a
revoked key stops working within that time. Dependencies: `PrincipalDep` (any valid key),
`AdminDep` (admin keys only), and `require_project_access` for project-scoped resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError

from ingest.errors import Forbidden, NotFound, Unauthorized
from ingest.key_usage import KeyUsage
from ingest.last_known import LastKnown
from store.keys import Principal, authenticate_key, touch_key

AUTH_CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000


def _bearer(header: str | None) -> str:
    if not header:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected `Bearer <key>`")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """The principal of the request's key; 401 if it is missing, unknown or revoked."""
    return await authenticate_header(request.app.state, request.headers.get("authorization"))


async def authenticate_header(app_state: Any, header: str | None) -> Principal:
    """The principal of an `Authorization` header value (the chat endpoint's raw ASGI path)."""
    secret = _bearer(header)
    cache: dict[str, tuple[float, Principal]] = app_state.__dict__.setdefault("auth_cache", {})
    digest = hashlib.sha256(secret.encode()).hexdigest()
    now = time.monotonic()
    cached = cache.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    last_known: LastKnown | None = getattr(app_state, "last_known", None)
    try:
        principal = await asyncio.to_thread(
            authenticate_key, app_state.engine, secret, admin_key=app_state.settings.admin_key
        )
    except DBAPIError:
        # The store is unreachable: a key verified within the last hour stands (ingest/
        # last_known.py); otherwise the error reaches the client as 503 store_unavailable.
        if last_known is not None:
            known = last_known.key(digest)
            if known is not None:
                return known
        elif cached is not None:
            return cached[1]
        raise
    if principal is None:
        raise Unauthorized("invalid API key")
    if last_known is not None:
        last_known.remember_key(digest, principal)
    if principal.key_id is not None:  # last use, noted at most once per cache period
        usage: KeyUsage | None = getattr(app_state, "key_usage", None)
        if usage is not None:
            usage.used(principal.key_id)  # written in the background (ingest/key_usage.py)
        else:
            with contextlib.suppress(DBAPIError):
                await asyncio.to_thread(touch_key, app_state.engine, key_id=principal.key_id)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[digest] = (now + AUTH_CACHE_SECONDS, principal)
    return principal


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this endpoint needs an admin key")
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]
AdminDep = Annotated[Principal, Depends(require_admin)]


def require_project_access(principal: Principal, *, project_id: int, what: str) -> None:
    """404 (not 403) when a project key touches another project: existence must not leak."""
    if not principal.can_access(project_id):
        raise NotFound(f"{what} not found")


def check_project_key(principal: Principal, project_key: str) -> None:
    """Refuse a project key acting on another project named in the request."""
    if not principal.is_admin and principal.project_key != project_key:
        raise NotFound(
            f"project {project_key} not found (this key belongs to project {principal.project_key})"
        )
