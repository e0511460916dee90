"""The background writer: moves journal entries into the store in batches, then forgets them.

An asyncio task gathers up to INTERLOG_WRITER_BATCH_SIZE entries (waiting at most
INTERLOG_WRITER_INTERVAL seconds), writes them in one transaction in a worker thread
(store.interactions.write_interactions: idempotent on completion_id), and only then marks them
done in the journal; under INTERLOG_JOURNAL_FSYNC=batch it first fsyncs the journal's new
appends, once per cycle. If the database is unreachable, it retries with exponential backoff while
the gateway keeps answering and the journal grows. A batch the database refuses for its data
(is_transient: by SQLSTATE / SQLite result code) is split until each bad record is alone; a
record refused on its own is moved to the journal's `rejected-*.jsonl` file with the reason,
logged and counted, so one bad record never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine

from ingest.journal import Journal, PendingEntry
from store.db_errors import is_transient
from store.interactions import write_interactions

log = logging.getLogger("interlog.writer")

BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
#: How often the writer looks for journals left behind by stopped processes.
ORPHAN_SCAN_INTERVAL = 30.0


@dataclass
class WriterStats:
    """Counters of this process's writer, shown by /api/v1/status and /metrics."""

    written: int = 0
    batches: int = 0
    retried: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


class JournalWriter:
    """Drains one Journal into the store; `ensure_written` gives read-your-writes."""

    def __init__(
        self, journal: Journal, engine: Engine, *, batch_size: int = 2000, interval: float = 0.05
    ) -> None:
        self.journal = journal
        self.engine = engine
        self.batch_size = batch_size
        self.interval = interval
        self.stats = WriterStats()
        self._wake = asyncio.Event()
        # Ends a back-off early: only a caller waiting for its rows (ensure_written) or the
        # shutdown, never new traffic (capture wakes the writer on every append once a batch is
        # waiting, which during an outage turned the back-off into a retry per request).
        self._hurry = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_orphan_scan = time.monotonic()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="interlog-writer")

    def wake(self) -> None:
        """Write now instead of waiting for the batch interval."""
        self._wake.set()

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Drain what is pending (at most `drain_timeout` seconds), stop, close the journal."""
        self._stopping = True
        self._wake.set()
        self._hurry.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=drain_timeout)
            except TimeoutError:
                log.warning("writer: drain timed out with %d pending", self.journal.depth)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        self.journal.close()

    async def ensure_written(
        self, completion_ids: Collection[uuid.UUID], timeout: float = 5.0
    ) -> None:
        """Return once the listed ids pending in this process's journal are stored.

        Ids not pending here return at once (stored already, or unknown to this process).
        Raises TimeoutError if the store cannot take them within `timeout` seconds.
        """
        wanted = {str(completion_id) for completion_id in completion_ids}
        deadline = time.monotonic() + timeout
        while True:
            waiting = [cid for cid in wanted if self.journal.is_pending(cid)]
            if not waiting:
                return
            self._wake.set()
            self._hurry.set()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(waiting)} interactions are not yet stored")
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), timeout=remaining)
            except TimeoutError:
                continue

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = BACKOFF_START
        while True:
            if self.journal.depth < self.batch_size and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()
            self._scan_orphans()
            if self.journal.depth == 0:
                if self._stopping:
                    return
                continue
            if self.journal.fsync == "batch" and self.journal.unsynced:
                try:
                    await self.journal.sync()  # INTERLOG_JOURNAL_FSYNC=batch: once per cycle
                except OSError as exc:
                    log.error("writer: cannot fsync the journal: %s", exc)
            batch = self.journal.peek(self.batch_size)
            try:
                refused = await asyncio.to_thread(self._write_batch, batch)
            except Exception as exc:
                self._note_error(exc, len(batch))
                self.stats.retried += 1
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            self.journal.mark_done(len(batch))
            self.stats.written += len(batch) - refused
            self.stats.batches += 1
            self._progress.set()

    async def _sleep(self, seconds: float) -> None:
        """Back off, but wake early when asked by ensure_written or the shutdown (not by new
        traffic)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), timeout=seconds)
        self._hurry.clear()

    def _write_batch(self, batch: list[PendingEntry]) -> int:
        """Store a batch (runs in a thread); returns how many records the store refused.

        A batch refused for its data is split in halves until each bad record is alone (a
        bad record among 2,000 costs about 2 x 11 transactions, not 2,000); that record goes to
        the rejected file, the others are stored. A transient error (raised) retries the whole
        batch later.
        """
        try:
            write_interactions(self.engine, [entry.record for entry in batch])
            return 0
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(batch) == 1:
                self._refuse(batch[0], exc)
                return 1
            log.warning("writer: batch of %d refused (%s); splitting it", len(batch), exc)
        middle = len(batch) // 2
        return self._write_batch(batch[:middle]) + self._write_batch(batch[middle:])

    def _refuse(self, entry: PendingEntry, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        self.journal.reject([entry], reason)
        self.stats.failed += 1
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()
        log.error(
            "writer: store refused interaction %s (%s); kept in %s",
            entry.completion_id,
            reason,
            self.journal.rejected_path,
        )

    def _note_error(self, exc: Exception, size: int) -> None:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()
        log.warning(
            "writer: cannot store %d interactions (%d journaled), retrying: %s",
            size,
            self.journal.depth,
            reason,
        )

    def _scan_orphans(self) -> None:
        now = time.monotonic()
        if now - self._last_orphan_scan < ORPHAN_SCAN_INTERVAL:
            return
        self._last_orphan_scan = now
        try:
            self.journal.claim_orphans()
        except OSError as exc:
            log.warning("writer: cannot scan for orphaned journals: %s", exc)
