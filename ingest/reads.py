"""Relational reads for a request: run in a thread under the read timeout, and cancelled when
the HTTP client goes away (a query nobody waits for must not keep the database busy).

`run_read(request, function, ...)` calls `function(..., guard=ReadGuard)` (store.read_guard) in
a worker thread and, while it runs, asks the server every DISCONNECT_POLL_SECONDS whether the
client is still there; when it is gone, the guard cancels the statement in progress
(PostgreSQL's cancel request, SQLite's interrupt).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

from store.errors import QueryCancelledError
from store.read_guard import ReadGuard

T = TypeVar("T")

#: How often a running read checks that its client is still connected.
DISCONNECT_POLL_SECONDS = 0.1
#: A cancel request can miss a statement that was about to start: it is sent again this often.
_CANCEL_RETRY_SECONDS = 0.5


async def run_read(request: Request, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """FUNCTION(*ARGS, **KWARGS, guard=...) in a thread, cancelled if the client disconnects;
    QueryCancelledError then (its answer goes nowhere) or when the read timeout passes."""
    guard = ReadGuard(request.app.state.settings.read_timeout_seconds)
    task = asyncio.ensure_future(asyncio.to_thread(function, *args, guard=guard, **kwargs))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if not task.done() and await request.is_disconnected():
                break
        if task.done():
            return task.result()
        while not task.done():
            guard.cancel()
            await asyncio.wait({task}, timeout=_CANCEL_RETRY_SECONDS)
        with contextlib.suppress(QueryCancelledError):
            task.result()
        raise QueryCancelledError("the query was cancelled: the client went away")
    finally:
        if not task.done():  # this handler was cancelled itself (e.g. the server stops)
            guard.cancel()
