"""The local write-ahead journal: interactions are appended here before a response finishes.

Layout: `INTERLOG_JOURNAL_DIR/<host>-<pid>-<random>/seg-<n>.jsonl`, one directory per process,
claimed with an exclusive `fcntl.flock` on its `lock` file for the process's lifetime. Segments
are JSON lines (orjson). A line that cannot be read back as a record (a torn last line after a
crash, or a corrupt line anywhere) is never dropped: its raw bytes (base64) and the reason are
moved to the rejected file (`rejected-<directory>.jsonl`), logged and counted (`rejected`,
`corrupt`). A segment is deleted once the writer has stored all of its entries. On start (and
periodically) a process claims the directories of dead processes (their lock is free), copies
their entries into its own journal and deletes them, so several gateway processes or hosts never
share a journal and nothing is lost when one dies. Every append is written (to the OS) before it
returns, so it survives a process crash; when it is also on disk follows INTERLOG_JOURNAL_FSYNC:
`entry` (fsync before the append returns; concurrent appends share one fsync: group commit),
`batch` (the writer fsyncs once per batch cycle, off the response path: an OS crash or power
loss can lose the appends of the last cycle, INTERLOG_WRITER_INTERVAL) or `never` (the OS
decides).

Memory: the first MEMORY_ENTRIES pending records are kept in memory for the writer; beyond
that (a long store outage) only their place in the segment file is, and the writer reads them
back from disk when it gets to them, so an outage grows the journal on disk, not the process.

The journal is used from one event loop only (the middleware and the writer task).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

log = logging.getLogger("interlog.journal")

LOCK_FILE = "lock"
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".jsonl"
#: A segment larger than this is closed and a new one started (finished segments are deleted).
SEGMENT_MAX_BYTES = 16 * 1024 * 1024
#: Pending records kept in memory; later ones are read back from their segment when needed.
MEMORY_ENTRIES = 5_000

FsyncPolicy = Literal["entry", "batch", "never"]


@dataclass
class PendingEntry:
    """One journaled record waiting for the writer."""

    segment: int
    completion_id: str
    record: Mapping[str, Any]
    appended_at: float


@dataclass
class _Pending:
    """A pending entry as the journal keeps it: the record, or only where it lies on disk."""

    segment: int
    completion_id: str
    record: Mapping[str, Any] | None
    appended_at: float
    offset: int
    length: int


@dataclass
class _Segment:
    path: Path
    fd: int | None
    entries: int = 0
    done: int = 0
    size: int = 0


def segment_name(number: int) -> str:
    return f"{SEGMENT_PREFIX}{number:012d}{SEGMENT_SUFFIX}"


@dataclass
class CorruptLine:
    """A segment line that is not a journal record: kept, raw, in the rejected file."""

    path: Path
    line: int  # 1-based; 0 when only the byte offset is known
    raw: bytes
    reason: str
    offset: int | None = None

    def rejected_entry(self) -> dict[str, Any]:
        """Its line in the rejected file: the reason, where it was, and its exact bytes."""
        where = f"{self.path}:{self.line}" if self.offset is None else f"{self.path}@{self.offset}"
        entry: dict[str, Any] = {
            "error": self.reason,
            "source": where,
            "raw_base64": base64.b64encode(self.raw).decode("ascii"),
        }
        with contextlib.suppress(UnicodeDecodeError):
            entry["raw"] = self.raw.decode("utf-8")  # readable too, when it is text
        return entry


def read_segment(path: Path, corrupt: list[CorruptLine] | None = None) -> Iterator[dict[str, Any]]:
    """The records of one segment file. A line that is not a record (a torn last line after a
    crash, a corrupt line, JSON that is not an object with a `completion_id`) is skipped, and
    added to `corrupt` when given, so the caller can keep it (Journal moves it to the rejected
    file; nothing is dropped)."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    last = len(lines) - 1
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if number == last:
                reason = f"torn last line of a journal segment (an append cut short): {exc}"
                log.warning("journal %s: torn last line (%d bytes)", path, len(line))
            else:
                reason = f"corrupt line in a journal segment: {exc}"
                log.error("journal %s: corrupt line %d (%d bytes)", path, number + 1, len(line))
            if corrupt is not None:
                corrupt.append(CorruptLine(path, number + 1, line, reason))
            continue
        if isinstance(record, dict) and "completion_id" in record:
            yield record
            continue
        log.error("journal %s: line %d is not a journal record", path, number + 1)
        if corrupt is not None:
            reason = "line in a journal segment is not a record (an object with a completion_id)"
            corrupt.append(CorruptLine(path, number + 1, line, reason))


def _segments_of(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}")
        if path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)].isdigit()
    )


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """This process's journal directory: append records, hand them to the writer, forget them."""

    def __init__(
        self, base: Path, *, fsync: FsyncPolicy = "batch", memory_entries: int = MEMORY_ENTRIES
    ) -> None:
        self.base = Path(base)
        self.fsync: FsyncPolicy = fsync
        self.memory_entries = memory_entries
        self._in_memory = 0
        self.directory: Path | None = None
        self._lock_fd: int | None = None
        self._segments: dict[int, _Segment] = {}
        self._current = 0
        self._pending: deque[_Pending] = deque()
        self._pending_ids: dict[str, int] = {}
        self._written_seq = 0
        self._synced_seq = 0
        self._sync_lock = asyncio.Lock()
        self.appended = 0
        self.replayed = 0
        #: Entries moved to the rejected file: refused by the store, or unreadable lines.
        self.rejected = 0
        #: Of those, unreadable lines: of adopted segments (corrupt, torn, not a record), or
        #: pending entries whose bytes were damaged on disk before the writer read them back.
        self.corrupt = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create and lock this process's directory, then claim journals of dead processes."""
        self.base.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Lock under a hidden name first, so no other process can mistake it for an orphan.
        staging = self.base / f".new-{name}"
        staging.mkdir()
        fd = _try_lock(staging / LOCK_FILE)
        if fd is None:  # pragma: no cover - the name is unique
            raise RuntimeError(f"cannot lock new journal directory {staging}")
        directory = self.base / name
        staging.rename(directory)
        _fsync_directory(self.base)
        self.directory = directory
        self._lock_fd = fd
        self._open_segment(1)
        self.claim_orphans()

    def close(self) -> None:
        """Close files; delete the directory if everything was stored, else leave it for replay."""
        for segment in self._segments.values():
            if segment.fd is not None:
                if self.fsync != "never":
                    os.fsync(segment.fd)
                os.close(segment.fd)
                segment.fd = None
        if self.directory is not None and not self._pending:
            shutil.rmtree(self.directory, ignore_errors=True)
        elif self.directory is not None:
            log.warning(
                "journal %s keeps %d interactions not yet stored; the next start replays them",
                self.directory,
                len(self._pending),
            )
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def claim_orphans(self) -> int:
        """Move the entries of dead processes' journals into this one; returns how many."""
        claimed = 0
        for directory in sorted(self.base.iterdir()):
            if directory == self.directory or directory.name.startswith("."):
                continue
            if not directory.is_dir():
                continue
            fd = _try_lock(directory / LOCK_FILE)
            if fd is None:
                continue  # a live process owns it
            try:
                claimed += self._adopt(directory)
            finally:
                os.close(fd)
        if claimed:
            log.info("journal: replaying %d interactions of stopped processes", claimed)
        return claimed

    def _adopt(self, directory: Path) -> int:
        records: list[dict[str, Any]] = []
        corrupt: list[CorruptLine] = []
        for path in _segments_of(directory):
            records.extend(read_segment(path, corrupt))
        if records:
            self._write(records)
            assert self.directory is not None
            segment = self._segments[self._current]
            if segment.fd is not None:
                os.fsync(segment.fd)
        if corrupt:  # kept (fsynced) before the directory holding them is deleted
            self._keep_rejected([orjson.dumps(line.rejected_entry()) + b"\n" for line in corrupt])
            self.corrupt += len(corrupt)
            log.error(
                "journal: %d unreadable lines of %s moved to %s",
                len(corrupt),
                directory,
                self.rejected_path,
            )
        shutil.rmtree(directory, ignore_errors=True)
        self.replayed += len(records)
        return len(records)

    # -- appending ---------------------------------------------------------------------------

    def _open_segment(self, number: int) -> None:
        assert self.directory is not None
        path = self.directory / segment_name(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments[number] = _Segment(path=path, fd=fd)
        self._current = number

    def _write(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Write records to the current segment (one write call) and queue them; no fsync."""
        if self.directory is None:
            raise RuntimeError("journal is not open")
        segment = self._segments[self._current]
        if segment.size >= SEGMENT_MAX_BYTES:
            self._rotate()
            segment = self._segments[self._current]
        assert segment.fd is not None
        lines = [orjson.dumps(record) + b"\n" for record in records]
        data = b"".join(lines)
        offset = segment.size
        view = memoryview(data)
        while view:
            written = os.write(segment.fd, view)
            view = view[written:]
        segment.size += len(data)
        segment.entries += len(records)
        now = time.monotonic()
        for record, line in zip(records, lines, strict=True):
            completion_id = str(record["completion_id"])
            kept: Mapping[str, Any] | None = None
            if self._in_memory < self.memory_entries:
                kept = record
                self._in_memory += 1
            pending = _Pending(self._current, completion_id, kept, now, offset, len(line))
            self._pending.append(pending)
            offset += len(line)
            self._pending_ids[completion_id] = self._pending_ids.get(completion_id, 0) + 1
        self.appended += len(records)
        self._written_seq += 1
        return self._written_seq

    def append_nowait(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append without waiting for fsync (used while a request is being cancelled)."""
        if records:
            self._write(records)

    async def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append records; returns once they are as durable as INTERLOG_JOURNAL_FSYNC says."""
        if not records:
            return
        sequence = self._write(records)
        if self.fsync == "entry":
            await self._sync_through(sequence)

    async def sync(self) -> None:
        """fsync every append so far (the writer calls this once per cycle under `batch`)."""
        await self._sync_through(self._written_seq)

    @property
    def unsynced(self) -> int:
        """Appends written to the OS but not yet fsynced by this journal."""
        return self._written_seq - self._synced_seq

    async def _sync_through(self, sequence: int) -> None:
        # Group commit: whoever holds the lock fsyncs everything written so far.
        if self._synced_seq >= sequence:
            return
        async with self._sync_lock:
            if self._synced_seq >= sequence:
                return
            target = self._written_seq
            await asyncio.to_thread(os.fsync, self._current_fd())
            self._synced_seq = target

    def _current_fd(self) -> int:
        fd = self._segments[self._current].fd
        assert fd is not None
        return fd

    def _rotate(self) -> None:
        old = self._segments[self._current]
        if old.fd is not None and self.fsync != "never":
            os.fsync(old.fd)
        # The old fd is closed in _delete_finished, never under a running fsync thread.
        self._open_segment(self._current + 1)
        self._delete_finished()

    # -- handing entries to the writer -------------------------------------------------------

    @property
    def rejected_path(self) -> Path:
        """Where entries the store refused for good are kept, next to the journal directories."""
        assert self.directory is not None
        return self.base / f"rejected-{self.directory.name}.jsonl"

    @property
    def depth(self) -> int:
        """Interactions journaled but not yet stored."""
        return len(self._pending)

    @property
    def oldest_age(self) -> float:
        """Seconds the oldest pending interaction has waited (the writer's lag)."""
        if not self._pending:
            return 0.0
        return max(0.0, time.monotonic() - self._pending[0].appended_at)

    def is_pending(self, completion_id: str) -> bool:
        return completion_id in self._pending_ids

    @property
    def in_memory(self) -> int:
        """Pending records held in memory (the rest are read back from disk by `peek`)."""
        return self._in_memory

    def peek(self, limit: int) -> list[PendingEntry]:
        """The oldest `limit` pending entries (they stay pending until `mark_done`).

        An entry kept only on disk that no longer reads back as its record (the segment was
        damaged) is moved, raw, to the rejected file and stops being pending, so the entries
        returned are still the oldest pending ones and `mark_done(len(result))` stays right."""
        entries: list[PendingEntry] = []
        files: dict[int, BinaryIO] = {}  # segments of entries kept only on disk, opened once
        try:
            index = 0
            while len(entries) < limit and index < len(self._pending):
                entry = self._pending[index]
                record = entry.record
                if record is None:
                    try:
                        record = self._read_back(entry, files)
                    except (orjson.JSONDecodeError, RuntimeError) as exc:
                        self._drop_unreadable(index, entry, files, exc)
                        continue  # the next entry is at `index` now
                entries.append(
                    PendingEntry(entry.segment, entry.completion_id, record, entry.appended_at)
                )
                index += 1
            return entries
        finally:
            for file in files.values():
                file.close()

    def _drop_unreadable(
        self, index: int, entry: _Pending, files: dict[int, BinaryIO], exc: Exception
    ) -> None:
        """Move a pending entry whose bytes on disk are damaged to the rejected file."""
        file = files[entry.segment]
        file.seek(entry.offset)
        raw = file.read(entry.length).rstrip(b"\n")
        reason = f"journal entry {entry.completion_id} no longer reads back from its segment: {exc}"
        line = CorruptLine(self._segments[entry.segment].path, 0, raw, reason, entry.offset)
        log.error("journal %s: %s", line.path, reason)
        self._keep_rejected([orjson.dumps(line.rejected_entry()) + b"\n"])
        self.corrupt += 1
        del self._pending[index]
        self._forget(entry)

    def _read_back(self, entry: _Pending, files: dict[int, BinaryIO]) -> Mapping[str, Any]:
        path = self._segments[entry.segment].path
        file = files.get(entry.segment)
        if file is None:
            file = files[entry.segment] = path.open("rb")
        file.seek(entry.offset)
        record = orjson.loads(file.read(entry.length))
        if not isinstance(record, dict) or str(record.get("completion_id")) != entry.completion_id:
            raise RuntimeError(f"journal {path}: entry at {entry.offset} does not match")
        return record

    def _forget(self, entry: _Pending) -> None:
        """An entry taken off the pending queue (stored, or set aside): no longer pending, and
        one more done in its segment."""
        remaining = self._pending_ids.get(entry.completion_id, 0) - 1
        if remaining > 0:
            self._pending_ids[entry.completion_id] = remaining
        else:
            self._pending_ids.pop(entry.completion_id, None)
        segment = self._segments.get(entry.segment)
        if segment is not None:
            segment.done += 1

    def mark_done(self, count: int) -> None:
        """The oldest `count` pending entries are in the store: forget them, drop old segments."""
        for _ in range(count):
            entry = self._pending.popleft()
            if entry.record is not None:
                self._in_memory -= 1
            self._forget(entry)
        current = self._segments[self._current]
        if not self._pending and current.entries and current.done >= current.entries:
            self._rotate()
        else:
            self._delete_finished()

    def reject(self, entries: Iterable[PendingEntry], reason: str) -> None:
        """Keep entries the store refuses for good in `rejected-*.jsonl`; never drop them."""
        lines = [orjson.dumps({"error": reason, "record": e.record}) + b"\n" for e in entries]
        self._keep_rejected(lines)

    def _keep_rejected(self, lines: Sequence[bytes]) -> None:
        """Append lines to the rejected file, on disk (file and, when new, its name) on return."""
        assert self.directory is not None
        path = self.rejected_path
        new = not path.exists()
        with path.open("ab") as out:
            out.write(b"".join(lines))
            out.flush()
            os.fsync(out.fileno())
        if new:
            _fsync_directory(self.base)
        self.rejected += len(lines)

    def _delete_finished(self) -> None:
        syncing = self._sync_lock.locked()
        for number in list(self._segments):
            segment = self._segments[number]
            if number == self._current:
                continue
            if segment.fd is not None and not syncing:
                os.close(segment.fd)
                segment.fd = None
            if segment.fd is None and segment.done >= segment.entries:
                segment.path.unlink(missing_ok=True)
                del self._segments[number]
