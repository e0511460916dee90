"""DuckDB extensions (sqlite, postgres, ducklake), installed from their pip packages, never
from the network (none is reachable here), into one directory per user shared by every process."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


def _extension_directory() -> Path:
    path = Path(tempfile.gettempdir()) / f"interlog-duckdb-extensions-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Install (from the pip packages, never from the network) and load DuckDB extensions."""
    import duckdb_extensions

    directory = _extension_directory()
    con.execute(f"SET extension_directory = '{directory}'")
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process installs at a time
        for name in names:
            try:
                con.execute(f"LOAD {name}")
            except Exception:  # duckdb.IOException: not installed here yet
                duckdb_extensions.import_extension(name, con=con)
                con.execute(f"LOAD {name}")
