"""The FastAPI application factory; the lifespan owns every long-lived resource."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest import (
    admin_abtests_api,
    admin_api,
    analytics_api,
    chat,
    export_api,
    feedback_api,
    health,
    ingest_api,
    models_api,
    readback_api,
    status,
)
from ingest.ab_monitor import ab_monitor
from ingest.capture import CaptureMiddleware
from ingest.chat_endpoint import ChatEndpoint, is_chat_request
from ingest.errors import install_error_handlers
from ingest.graphql import create_graphql_router
from ingest.journal import Journal
from ingest.json_bodies import read_body_as_json
from ingest.key_usage import KeyUsage
from ingest.last_known import SAVE_SECONDS, last_known_for
from ingest.limits import LimitsMiddleware
from ingest.process_memory import limit_malloc_arenas
from ingest.routing import RoutingTable
from ingest.telemetry import Telemetry
from ingest.upstream import UpstreamPool
from ingest.writer import JournalWriter
from store.analytics.lake import drop_lake
from store.analytics.owner import OwnerProcess
from store.analytics.reader import LocalAnalytics, ReaderProcess
from store.db import engine_from_settings
from store.settings import Settings, get_settings
from store.sqlite_writer import sqlite_writer_for

log = logging.getLogger("interlog")


class InterlogApp(FastAPI):
    """FastAPI, with chat completions dispatched ahead of its stack (ingest/chat_endpoint.py)."""

    _chat: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_chat_request(scope):
            scope["app"] = self
            if self._chat is None:
                chat = CaptureMiddleware(ChatEndpoint())
                self._chat = LimitsMiddleware(chat, settings=self.state.settings)
            await self._chat(scope, receive, send)
            return
        read_body_as_json(scope)  # one rule for every JSON route (ingest/json_bodies.py)
        await super().__call__(scope, receive, send)


#: Seconds between two rounds of housekeeping (key last-use times, the last-known file).
HOUSEKEEPING_SECONDS = 5.0


async def _housekeeping(app: FastAPI) -> None:
    """Every few seconds, off the request path: write key last-use times, and the last-known
    keys and routes (at most every SAVE_SECONDS)."""
    saved = time.monotonic()
    while True:
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
        try:
            await asyncio.to_thread(app.state.key_usage.flush)
            if time.monotonic() - saved >= SAVE_SECONDS:
                saved = time.monotonic()
                await asyncio.to_thread(app.state.last_known.save)
        except Exception:
            log.exception("housekeeping failed; retrying")


def _save_housekeeping(app: FastAPI) -> None:
    """The last round, at shutdown."""
    try:
        app.state.key_usage.flush()
    except Exception:
        log.exception("could not record key last-use times at shutdown")
    app.state.last_known.save()


def _start_quietly(analytics: LocalAnalytics | ReaderProcess) -> None:
    """Start the reader child; a failure is logged, and the first call tries again."""
    try:
        analytics.start()
    except Exception:
        log.exception("the analytics reader did not start")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the Interlog app; the engine is created when the app starts, not here."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas()  # before any worker thread allocates (ingest/process_memory.py)
        engine = engine_from_settings(settings)
        app.state.engine = engine
        # Chat gateway: routing cache and the one upstream HTTP session of this process.
        # Keys and routes last read from the store, for chat while it is away (also across a
        # restart: ingest/last_known.py); key last-use times written in the background.
        app.state.last_known = last_known_for(settings.journal_dir)
        app.state.key_usage = KeyUsage(engine)
        app.state.routing = RoutingTable(
            engine, ttl=settings.routing_cache_seconds, last_known=app.state.last_known
        )
        app.state.upstream = UpstreamPool(settings)
        await app.state.upstream.start()
        # End of chat gateway setup.
        # Logging: this process's journal and its background writer (ingest/writer.py).
        journal = Journal(settings.journal_dir, fsync=settings.journal_fsync)
        journal.open()
        writer = JournalWriter(
            journal,
            engine,
            batch_size=settings.writer_batch_size,
            interval=settings.writer_interval,
        )
        app.state.journal = journal
        app.state.writer = writer
        await writer.start()
        app.state.telemetry.start(writer)  # its numbers, for the other workers' /metrics
        # Bulk ingest on a SQLite file: rows are written by a child process (started on use).
        app.state.sqlite_writer = (
            sqlite_writer_for(engine) if settings.sqlite_writer_process else None
        )
        # End of logging setup.
        # Analytics: a child process keeps the shared analytics store in sync while it owns
        # the sync lock (one process among all gateways does; store/analytics/owner.py).
        app.state.analytics_owner = OwnerProcess(settings) if settings.analytics_sync else None
        if app.state.analytics_owner is not None:
            app.state.analytics_owner.start()
        # Analytics questions and exports are answered by a reader child, so that what they
        # cost never stays in this process (store/analytics/reader.py); it starts in the
        # background, and the first call waits for it.
        app.state.analytics = (
            ReaderProcess(settings) if settings.analytics_reader else LocalAnalytics(engine)
        )
        threading.Thread(target=_start_quietly, args=(app.state.analytics,), daemon=True).start()
        # Everything made so far lives as long as the process: keep it out of the garbage
        # collector's full passes (they scanned ~170k objects, ~100 ms each, under load). And
        # collect the young generation every 20,000 allocations, not 700: a completion makes
        # a few hundred short-lived objects, and at the default every other request paid for a
        # collection (measured: 16 clients 2,290 -> 2,920 req/s, p50 at 1 client -0.08 ms).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        housekeeping = asyncio.create_task(_housekeeping(app), name="interlog-housekeeping")
        try:
            async with ab_monitor(app, interval=settings.ab_check_seconds):  # A/B auto-ending
                yield
        finally:
            housekeeping.cancel()
            await asyncio.gather(housekeeping, return_exceptions=True)
            await asyncio.to_thread(_save_housekeeping, app)
            await writer.stop()  # final drain of the journal
            await app.state.telemetry.stop(writer)
            if app.state.sqlite_writer is not None:
                await asyncio.to_thread(app.state.sqlite_writer.close)
            await app.state.upstream.close()
            if app.state.analytics_owner is not None:
                await asyncio.to_thread(app.state.analytics_owner.stop)
            await asyncio.to_thread(app.state.analytics.stop)
            drop_lake(engine)  # analytics: detach this process's connection to the analytics store
            engine.dispose()

    app = InterlogApp(
        title="Interlog",
        summary="LLM interaction logging and analytics gateway",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.telemetry = Telemetry.from_env()  # shared by `interlog serve`'s workers
    # Chat completions are captured on their own path (InterlogApp); other routes get the limits.
    app.add_middleware(LimitsMiddleware, settings=settings)  # outermost: refuse bad input first
    install_error_handlers(app)
    # Routers: one line per API module.
    # The chat route documents the endpoint; requests take InterlogApp's raw ASGI path.
    app.include_router(chat.router)
    app.include_router(health.router)
    app.include_router(feedback_api.router)
    app.include_router(export_api.router)  # before readback's /interactions/{completion_id}
    app.include_router(analytics_api.router)
    app.include_router(readback_api.router)
    app.include_router(models_api.router)
    app.include_router(create_graphql_router())
    app.include_router(status.router)
    app.include_router(ingest_api.router)
    app.include_router(admin_api.router)
    app.include_router(admin_abtests_api.router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app)."""
    return create_app(get_settings())
