"""The analytics sync owner as a loop (`follow`) and as a child process of a gateway.

Every gateway process starts one child (`OwnerProcess`, unless INTERLOG_ANALYTICS_SYNC is
false); the children compete for the sync lock and one wins, so exactly one process syncs
whatever the number of gateways and hosts, and another takes over within RETRY_SECONDS when
it dies. A child, not a thread: the initial build of a large store is seconds of Python work
per 100,000 rows, which must not take the gateway's interpreter from the chat requests; and
DuckDB's memory stays out of the gateway's. The child ends when its stdin closes, i.e. when the
gateway stops or dies.

    python -m store.analytics.owner    # what the gateway runs (settings from INTERLOG_*)
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from store.analytics.lake import SYNC_MEMORY_LIMIT, Lake
from store.analytics.sync import Syncer, SyncLock
from store.settings import Settings

log = logging.getLogger("interlog.analytics")

RETRY_SECONDS = 0.5  # how often a process that does not own the sync tries to take it


def follow(
    settings: Settings,
    stop: threading.Event,
    *,
    on_cycle: Callable[[int], Any] | None = None,
) -> None:
    """Own the sync whenever nobody else does, and keep the analytics store in step until STOP."""
    from store.db import create_store_engine

    engine = create_store_engine(settings.database_url)
    lake = Lake(engine, settings, memory_limit=SYNC_MEMORY_LIMIT)
    lock = SyncLock(lake)
    syncer = Syncer(lake, isolated=True)  # this process never opens the store otherwise
    try:
        while not stop.is_set():
            if not lock.held and not lock.acquire():
                stop.wait(RETRY_SECONDS)
                continue
            started = time.monotonic()
            try:
                applied = syncer.cycle()
                if on_cycle is not None:
                    on_cycle(applied)
                syncer.maintain()
            except Exception:  # the store or the data path may be away for a while: retry
                log.exception("analytics sync failed; retrying")
                stop.wait(RETRY_SECONDS)
                continue
            # A cycle starts every interval (at once after a long one), not an interval after
            # the last one ended: under load the lag stays about one interval.
            stop.wait(max(0.0, settings.analytics_sync_interval - (time.monotonic() - started)))
    finally:
        lock.release()
        lake.close()
        engine.dispose()


def settings_environment(settings: Settings) -> dict[str, str]:
    """The child's INTERLOG_* variables, so that it sees the settings its parent was given."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"INTERLOG_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    return env


NOT_OWNER = 3  # exit status of `--once` when another process owns the sync


def sync_in_child(lake: Lake) -> bool:
    """One catch-up in a child process (`--once`), waiting for it; False when another process
    owns the sync. For a SQLite store, the child reads it through DuckDB, which this process
    must not do (it has the file open through Python's sqlite3)."""
    env = settings_environment(lake.settings)
    env["INTERLOG_DATABASE_URL"] = lake.engine.url.render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "-m", "store.analytics.owner", "--once"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode == NOT_OWNER:
        return False
    if result.returncode != 0:
        raise RuntimeError(f"the analytics sync failed: {result.stderr.strip()[-2000:]}")
    return True


class OwnerProcess:
    """The sync owner child of one gateway process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-m", "store.analytics.owner"],
            stdin=subprocess.PIPE,
            env=settings_environment(self.settings),
        )

    def stop(self, timeout: float = 10.0) -> None:
        child, self.child = self.child, None
        if child is not None:
            end_child(child, timeout)


def end_child(child: subprocess.Popen[bytes], timeout: float) -> None:
    """End a child that watches its stdin (the owner, the reader): close it, so the child
    finishes what it is doing and exits; kill it after TIMEOUT seconds."""
    with contextlib.suppress(OSError):
        assert child.stdin is not None
        child.stdin.close()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()


def main(argv: list[str] | None = None) -> int:
    import signal

    from store.settings import get_settings

    if (argv if argv is not None else sys.argv[1:]) == ["--once"]:
        return _once(get_settings())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the parent ends us
    stop = threading.Event()

    def watch_parent() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):  # unbuffered: no lock left held at exit
                pass
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    follow(get_settings(), stop)
    return 0


def _once(settings: Settings) -> int:
    """One isolated catch-up, if nobody owns the sync (exit NOT_OWNER otherwise)."""
    from store.analytics.sync import sync_now
    from store.db import create_store_engine

    engine = create_store_engine(settings.database_url)
    lake = Lake(engine, settings, memory_limit=SYNC_MEMORY_LIMIT)
    try:
        return 0 if sync_now(lake, isolated=True) is not None else NOT_OWNER
    finally:
        lake.close()
        engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
