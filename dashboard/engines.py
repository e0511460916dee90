"""One SQLAlchemy engine per store URL for the whole dashboard process: every session and the
first page's warm-up (dashboard/warmup.py) share it, and so share the analytics store attached to
it (store.analytics.lake keeps one per engine). No Streamlit here: the warm-up takes the engine
while Streamlit is still starting."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_for(database_url: str) -> Engine:
    """The process's pooled engine for the store at DATABASE_URL."""
    from store.db import create_store_engine

    with _lock:
        engine = _engines.get(database_url)
        if engine is None:
            engine = _engines[database_url] = create_store_engine(database_url)
        return engine
