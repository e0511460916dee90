"""When each API key was last used, recorded in the background, never on a request's path.

Recording it is a write. On SQLite a write waits for any other writer (up to the 30 s busy
timeout), so a key-cache miss that wrote `last_used_at` itself stalled chat requests for as
long as another process held a write lock. Now a request only notes the key id; the gateway's
housekeeping task writes the noted ids every few seconds in a worker thread, and a failed write
keeps them for the next round.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from store.keys import touch_key

log = logging.getLogger("interlog.keys")


class KeyUsage:
    """Key ids used since the last flush."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._used: set[int] = set()

    def used(self, key_id: int) -> None:
        with self._lock:
            self._used.add(key_id)

    def flush(self) -> int:
        """Write `last_used_at` of the noted keys (blocking: call it in a thread); how many."""
        with self._lock:
            noted, self._used = self._used, set()
        written = 0
        for key_id in sorted(noted):
            try:
                touch_key(self.engine, key_id=key_id)
                written += 1
            except DBAPIError as exc:  # the store is away or locked: next round
                with self._lock:
                    self._used.update(noted)
                log.debug("key usage not recorded yet: %s", exc)
                break
        return written
