"""The FastAPI application factory; the lifespan owns every long-lived resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ingest import health
from ingest.errors import install_error_handlers
from store.db import engine_from_settings
from store.settings import Settings, get_settings

log = logging.getLogger("interlog")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the Interlog app; the engine is created when the app starts, not here."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_from_settings(settings)
        app.state.engine = engine
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="Interlog",
        summary="LLM interaction logging and analytics gateway",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Routers: one line per API module.
    app.include_router(health.router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app)."""
    return create_app(get_settings())
