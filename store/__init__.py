"""Interlog's data layer; `from store import connect` opens the notebook API (store.notebook)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so importing the store (the gateway does) never pulls in DuckDB and pandas.
    if name == "connect":
        from store.notebook import connect

        return connect
    raise AttributeError(f"module 'store' has no attribute {name!r}")
