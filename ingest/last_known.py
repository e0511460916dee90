"""The last-known keys and routes, so that chat keeps answering while the store is away.

Each verified key and each project's routes are remembered with the wall-clock time they were
read from the store. When the store cannot be reached, authentication and routing use what was
read within the last GRACE_SECONDS (an hour); older knowledge, or none, is a 503
`store_unavailable`. A key revoked during an outage therefore keeps working until the store is
back, as it does for the few seconds of the auth cache normally.

Every SAVE_SECONDS the gateway writes this memory to `last-known.json` in the journal directory
(atomically, mode 0600: it holds key hashes, as the store's api_key table does), and a process
that starts while the store is away loads it: it serves chat for the keys and projects its
predecessors served in the last hour. Processes sharing a journal directory share the file; the
last writer wins, which is fine for a cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ingest.routing import AbRoutes, ProjectRoutes, UpstreamModel
from store.keys import Principal

log = logging.getLogger("interlog.last_known")

#: How old knowledge may be and still be used while the store is away.
GRACE_SECONDS = 3600.0
#: How often the gateway writes the file (when something changed).
SAVE_SECONDS = 30.0
FILE_NAME = "last-known.json"
_VERSION = 1


class LastKnown:
    """Keys and routes last read from the store, with when; thread-safe."""

    def __init__(self, path: Path | None, *, grace: float = GRACE_SECONDS) -> None:
        self.path = path
        self.grace = grace
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._routes: dict[str, tuple[float, ProjectRoutes]] = {}
        self._changed = False

    # -- remembering (every successful read from the store) ------------------------------------

    def remember_key(self, digest: str, principal: Principal) -> None:
        with self._lock:
            self._keys[digest] = (time.time(), principal)
            self._changed = True

    def remember_routes(self, project_key: str, routes: ProjectRoutes | None) -> None:
        with self._lock:
            if routes is None:
                self._routes.pop(project_key, None)
            else:
                self._routes[project_key] = (time.time(), routes)
            self._changed = True

    # -- using (only when the store is away) ---------------------------------------------------

    def key(self, digest: str) -> Principal | None:
        """The principal of a key verified within the grace period, else None."""
        with self._lock:
            found = self._keys.get(digest)
        return found[1] if found is not None and self._recent(found[0]) else None

    def routes(self, project_key: str) -> ProjectRoutes | None:
        """A project's routes loaded within the grace period, else None."""
        with self._lock:
            found = self._routes.get(project_key)
        return found[1] if found is not None and self._recent(found[0]) else None

    def _recent(self, seen_at: float) -> bool:
        return time.time() - seen_at <= self.grace

    # -- the file ------------------------------------------------------------------------------

    def save(self) -> bool:
        """Write the file if anything changed since the last save; True if written."""
        if self.path is None:
            return False
        with self._lock:
            if not self._changed:
                return False
            self._changed = False
            data = {
                "version": _VERSION,
                "keys": {d: [t, dataclasses.asdict(p)] for d, (t, p) in self._keys.items()},
                "routes": {k: [t, dataclasses.asdict(r)] for k, (t, r) in self._routes.items()},
            }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                temporary.unlink()
            return False
        return True

    def load(self) -> int:
        """Read the file (entries older than the grace period are skipped); how many entries.
        A missing or unreadable file is no knowledge, never an error."""
        if self.path is None or not self.path.exists():
            return 0
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != _VERSION:
                return 0
            keys = {d: (t, Principal(**p)) for d, (t, p) in data["keys"].items()}
            routes = {k: (t, _routes_from(r)) for k, (t, r) in data["routes"].items()}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return 0
        with self._lock:
            for digest, entry in keys.items():
                if self._recent(entry[0]) and digest not in self._keys:
                    self._keys[digest] = entry
            for project_key, loaded in routes.items():
                if self._recent(loaded[0]) and project_key not in self._routes:
                    self._routes[project_key] = loaded
            return len(self._keys) + len(self._routes)


def _routes_from(data: dict[str, Any]) -> ProjectRoutes:
    models = {
        key: UpstreamModel(**{**model, "urls": tuple(model["urls"])})
        for key, model in data["models"].items()
    }
    ab = data.get("ab_test")
    ab_test = None
    if ab is not None:
        variants = tuple((str(name), float(weight)) for name, weight in ab["variants"])
        ab_test = AbRoutes(id=ab["id"], key=ab["key"], variants=variants)
    return ProjectRoutes(
        project_id=data["project_id"],
        project_key=data["project_key"],
        models=models,
        default_model=data["default_model"],
        ab_test=ab_test,
    )


def last_known_for(journal_dir: Path) -> LastKnown:
    """The last-known keys and routes of the gateways journaling into JOURNAL_DIR, loaded."""
    journal_dir.mkdir(parents=True, exist_ok=True)
    known = LastKnown(journal_dir / FILE_NAME)
    count = known.load()
    if count:
        log.info("loaded %d last-known keys and routes from %s", count, known.path)
    return known
