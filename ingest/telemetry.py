"""Service counters of the gateway, and their Prometheus text rendering.

One `interlog serve --workers N` is one service: /metrics, whichever worker answers the scrape,
reports the totals of all its worker processes. `interlog serve` makes a fresh private directory
for that (`share_metrics_between_workers`, named in INTERLOG_METRICS_DIR, removed when serve
exits, or by the next serve if it was killed); each worker keeps its numbers in a file of its
own there, mapped into its memory, and holds an flock on that file while it lives. Counting a
chat request is a few stores into that shared memory: no lock, no system call (a fraction of a
microsecond: tests/ingest/test_metrics_workers.py). A scrape reads every worker's file and adds
them up:

- counters and histograms (chat requests, latency, TTFT, not stored, capture errors, written,
  retries, failed) are summed bucket-wise over every worker this serve ever ran, those that have
  exited (crashed, or stopped and restarted by uvicorn) included: what they counted did happen,
  and a service counter that went down when a worker died would read as a reset to Prometheus
  (its rate() would then count the survivors' whole totals again);
- gauges are over the live workers only (a dead worker's journal is adopted and replayed by a
  live one, which then reports it): `interlog_journal_depth` is their sum, and
  `interlog_journal_lag_seconds` the largest lag (the oldest interaction not stored anywhere).

The writer's counters and the journal's depth and lag are kept by the writer and the journal
(ingest/writer.py, ingest/journal.py); each worker copies them into its file every
PUBLISH_SECONDS and when it stops, so another worker's may be that old in a scrape (the
answering worker's own are current). A process without the directory (a gateway run by
uvicorn directly, tests) keeps its numbers in private memory and reports only its own.

No lock is needed: a file is written by its own process only, from its event loop, and a slot
is 8 aligned bytes (a reader sees the old value or the new one). prometheus-client's
multiprocess mode does the same with a file per process and metric type and a lock per
increment, and renders other text (`10.0` for 10); a dozen numbers need neither.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import contextlib
import fcntl
import mmap
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.writer import JournalWriter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The shared directory of this `interlog serve`'s workers (set by `interlog serve` itself).
METRICS_DIR_ENV = "INTERLOG_METRICS_DIR"
#: Seconds between two copies of the writer's counters and the journal gauges to the file.
PUBLISH_SECONDS = 1.0
STATUSES = ("ok", "error", "cancelled")

# A process's numbers: float64 slots (counts are exact up to 2**53).
_REQUESTS = 0  # one slot per status, in STATUSES order
_NOT_STORED = _REQUESTS + len(STATUSES)
_CAPTURE_ERRORS = _NOT_STORED + 1
_HISTOGRAM_SLOTS = len(LATENCY_BUCKETS) + 2  # one count per bucket, +Inf included; the sum
_LATENCY = _CAPTURE_ERRORS + 1
_TTFT = _LATENCY + _HISTOGRAM_SLOTS
_LATENCY_SUM, _TTFT_SUM = _TTFT - 1, _TTFT + _HISTOGRAM_SLOTS - 1
_WRITTEN = _TTFT + _HISTOGRAM_SLOTS  # published: the writer's counters
_RETRIED = _WRITTEN + 1
_FAILED = _RETRIED + 1
_DEPTH = _FAILED + 1  # published: the journal's gauges
_OLDEST = _DEPTH + 1  # wall-clock time the oldest unstored interaction was journaled; 0: none
_SLOTS = _OLDEST + 1
_SIZE = _SLOTS * 8
_COUNTER_SLOTS = range(_DEPTH)  # summed over every process, dead ones included
_STATUS_SLOT = {status: _REQUESTS + i for i, status in enumerate(STATUSES)}
_SUFFIX = ".metrics"


class Histogram:
    """A cumulative Prometheus histogram (seconds), kept in slots of a process's numbers."""

    buckets = LATENCY_BUCKETS

    def __init__(self, values: memoryview[float], offset: int) -> None:
        self._values = values
        self._offset = offset
        self._sum = offset + len(LATENCY_BUCKETS) + 1

    def observe(self, value: float) -> None:
        values = self._values
        values[self._offset + bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        values[self._sum] += value

    @property
    def count(self) -> int:
        return int(sum(self._values[self._offset : self._sum]))

    @property
    def total(self) -> float:
        return float(self._values[self._sum])


def _render_histogram(values: list[float], offset: int, name: str, help_text: str) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    cumulative = 0
    for position, bound in enumerate(LATENCY_BUCKETS):
        cumulative += int(values[offset + position])
        lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
    # +Inf and _count from the buckets too: consistent even if a worker was mid-observe.
    count = cumulative + int(values[offset + len(LATENCY_BUCKETS)])
    lines.append(f'{name}_bucket{{le="+Inf"}} {count}')
    lines.append(f"{name}_sum {values[offset + len(LATENCY_BUCKETS) + 1]:.6f}")
    lines.append(f"{name}_count {count}")
    return lines


class Telemetry:
    """What the capture middleware counts, in this process (the writer keeps its own
    WriterStats); with a directory, in a file there that the other workers' scrapes read."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.path: Path | None = None
        self._fd: int | None = None
        self._publisher: asyncio.Task[None] | None = None
        buffer: bytearray | mmap.mmap
        if self.directory is None:
            buffer = bytearray(_SIZE)
        else:
            fd, name = tempfile.mkstemp(
                prefix=f"{os.getpid()}-", suffix=_SUFFIX, dir=self.directory
            )
            fcntl.flock(fd, fcntl.LOCK_EX)  # held while this process lives: "alive"
            os.ftruncate(fd, _SIZE)
            buffer = mmap.mmap(fd, _SIZE)  # MAP_SHARED: the other workers read the same pages
            self.path, self._fd = Path(name), fd
        self._values: memoryview[float] = memoryview(buffer).cast("d")
        self.latency = Histogram(self._values, _LATENCY)
        self.ttft = Histogram(self._values, _TTFT)

    @classmethod
    def from_env(cls) -> Telemetry:
        """Shared with the other workers of this `interlog serve` if it set the directory."""
        return cls(os.environ.get(METRICS_DIR_ENV) or None)

    # -- counting (the request path) ---------------------------------------------------------

    def observe_chat(self, status: str, latency_s: float, ttft_ms: float | None) -> None:
        values = self._values  # the histograms' observe(), inlined: this is per request
        values[_STATUS_SLOT[status]] += 1
        values[_LATENCY + bisect.bisect_left(LATENCY_BUCKETS, latency_s)] += 1
        values[_LATENCY_SUM] += latency_s
        if ttft_ms is not None:
            ttft_s = ttft_ms / 1000
            values[_TTFT + bisect.bisect_left(LATENCY_BUCKETS, ttft_s)] += 1
            values[_TTFT_SUM] += ttft_s

    @property
    def chat_requests(self) -> dict[str, int]:
        """This process's chat completions by status (statuses counted at least once)."""
        counts = {status: int(self._values[_STATUS_SLOT[status]]) for status in STATUSES}
        return {status: count for status, count in counts.items() if count}

    @property
    def not_stored(self) -> int:
        return int(self._values[_NOT_STORED])

    @not_stored.setter
    def not_stored(self, value: int) -> None:
        self._values[_NOT_STORED] = value

    @property
    def capture_errors(self) -> int:
        return int(self._values[_CAPTURE_ERRORS])

    @capture_errors.setter
    def capture_errors(self, value: int) -> None:
        self._values[_CAPTURE_ERRORS] = value

    # -- the writer's numbers ----------------------------------------------------------------

    def publish(self, writer: JournalWriter) -> None:
        """Copy the writer's counters and the journal's depth and lag into this process's
        numbers (where the other workers' scrapes read them)."""
        values, stats, journal = self._values, writer.stats, writer.journal
        values[_WRITTEN] = stats.written
        values[_RETRIED] = stats.retried
        values[_FAILED] = stats.failed
        depth = journal.depth
        values[_DEPTH] = depth
        values[_OLDEST] = time.time() - journal.oldest_age if depth else 0.0

    def start(self, writer: JournalWriter) -> None:
        """Publish the writer's numbers every PUBLISH_SECONDS (only when shared)."""
        if self.directory is not None and self._publisher is None:
            self._publisher = asyncio.create_task(
                self._publish_every(writer), name="interlog-telemetry"
            )

    async def stop(self, writer: JournalWriter) -> None:
        """Publish the writer's last numbers (call after its final drain); from now on this
        process counts as exited: its counters stay in the totals, its gauges do not."""
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None
        self.publish(writer)
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    async def _publish_every(self, writer: JournalWriter) -> None:
        while True:
            self.publish(writer)
            await asyncio.sleep(PUBLISH_SECONDS)

    # -- totals (a scrape) -------------------------------------------------------------------

    def totals(self) -> list[float]:
        """The numbers of all the processes sharing the directory (just this one without):
        counters summed over all, gauges over the live ones (depth summed; `_OLDEST` the
        earliest)."""
        totals = list(self._values)
        if self.directory is None:
            return totals
        for path in self.directory.glob(f"*{_SUFFIX}"):
            if path == self.path:
                continue
            read = _read_numbers(path)
            if read is None:
                continue
            values, alive = read
            for slot in _COUNTER_SLOTS:
                totals[slot] += values[slot]
            if alive:
                totals[_DEPTH] += values[_DEPTH]
                if values[_OLDEST] and (not totals[_OLDEST] or values[_OLDEST] < totals[_OLDEST]):
                    totals[_OLDEST] = values[_OLDEST]
        return totals


def _read_numbers(path: Path) -> tuple[list[float], bool] | None:
    """Another process's numbers, and whether it still runs (holds its lock); None if gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            alive = False  # nobody holds it: that process has exited
        except BlockingIOError:
            alive = True
        data = os.pread(fd, _SIZE, 0)
    finally:
        os.close(fd)  # also releases our shared lock
    if len(data) < _SIZE:
        return None  # a process still creating its file: nothing counted yet
    return list(memoryview(data).cast("d")), alive


_DIRECTORY_PREFIX = "interlog-metrics-"
_serve_lock: list[int] = []  # the fd holding this serve's lock on its directory


def share_metrics_between_workers() -> Path:
    """For `interlog serve`: a fresh private directory for the numbers of its workers (they
    inherit INTERLOG_METRICS_DIR), locked while this process lives and removed when it exits;
    a serve that could not remove its own (killed, or stopped by a signal that uvicorn raises
    again after its graceful shutdown) leaves it to the next one, which removes the unlocked."""
    parent = Path(tempfile.gettempdir())
    for stale in parent.glob(f"{_DIRECTORY_PREFIX}*"):
        with contextlib.suppress(OSError):  # another user's, or removed meanwhile
            fd = os.open(stale, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its serve has exited
                shutil.rmtree(stale)
            finally:
                os.close(fd)
    # Made and locked under another name, so that no other serve takes it for a stale one.
    staging = Path(tempfile.mkdtemp(prefix=f".new-{_DIRECTORY_PREFIX}"))
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _serve_lock.append(fd)
    directory = parent / f"{_DIRECTORY_PREFIX}{staging.name.rsplit('-', 1)[1]}"
    staging.rename(directory)
    os.environ[METRICS_DIR_ENV] = str(directory)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _metric(name: str, kind: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]


def render_prometheus(telemetry: Telemetry, writer: JournalWriter | None) -> str:
    """All service metrics in Prometheus text exposition format 0.0.4: of all the workers of
    this `interlog serve` (see the module's docstring), of this process without one."""
    if writer is not None:
        telemetry.publish(writer)  # this process's own: current
    values = telemetry.totals()
    lines = [
        "# HELP interlog_chat_requests_total Chat completions answered, by logged status.",
        "# TYPE interlog_chat_requests_total counter",
    ]
    for status in STATUSES:
        count = int(values[_STATUS_SLOT[status]])
        lines.append(f'interlog_chat_requests_total{{status="{status}"}} {count}')
    lines += _render_histogram(
        values,
        _LATENCY,
        "interlog_chat_latency_seconds",
        "Chat completion latency, request to last byte.",
    )
    lines += _render_histogram(
        values,
        _TTFT,
        "interlog_chat_ttft_seconds",
        "Time to the first completion text (upstream latency).",
    )
    lines += _metric(
        "interlog_interactions_not_stored_total",
        "counter",
        "Chat completions answered with store=false (nothing persisted).",
        int(values[_NOT_STORED]),
    )
    lines += _metric(
        "interlog_capture_errors_total",
        "counter",
        "Interactions the capture middleware failed to journal.",
        int(values[_CAPTURE_ERRORS]),
    )
    if writer is not None:
        oldest = values[_OLDEST]
        lines += _metric(
            "interlog_journal_depth",
            "gauge",
            "Interactions journaled, not yet stored (all live workers).",
            int(values[_DEPTH]),
        )
        lines += _metric(
            "interlog_journal_lag_seconds",
            "gauge",
            "Age of the oldest interaction not yet stored (all live workers).",
            round(max(0.0, time.time() - oldest), 3) if oldest else 0.0,
        )
        lines += _metric(
            "interlog_interactions_written_total",
            "counter",
            "Interactions the writer stored.",
            int(values[_WRITTEN]),
        )
        lines += _metric(
            "interlog_writer_retries_total",
            "counter",
            "Batches retried after the store failed (e.g. unreachable).",
            int(values[_RETRIED]),
        )
        lines += _metric(
            "interlog_interactions_failed_total",
            "counter",
            "Interactions the store refused for good (kept in rejected-*.jsonl).",
            int(values[_FAILED]),
        )
    return "\n".join(lines) + "\n"
