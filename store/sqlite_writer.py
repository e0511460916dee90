"""A child process that inserts prepared interaction rows into a SQLite file for its parent.

Why a process: sqlite3 releases the GIL while a statement runs and must take it back after
each one. In a gateway whose other threads are busy parsing bulk requests, that took up to a
switch interval (5 ms) every time: a 1000-item write spent 25-35 ms of its ~60 ms waiting for
the GIL, and the one SQLite writer, which everything queues behind, ran at half speed. A child
process has its own interpreter: it writes while the parent parses, on the other core.

Group commit: callers that arrive while a write is under way are written together, in the
next transaction. With random session ids every interaction dirties a page of the session
index; a bigger transaction writes each such page to the WAL once for several interactions.
A transaction that fails is retried batch by batch, so one refused batch (say, a row missing a
required value) never sinks another caller's.

Protocol, over the child's stdin and stdout: frames of a 4-byte big-endian length and a
`marshal` payload (both ends are this module, run by the same interpreter, and rows hold plain
values only: str, int, float, bytes, None). Parent -> child: a list of marshalled RowBatch
tuples. Child -> parent: one result per batch, None when stored, else the sqlite3 exception's
class name and message, which the parent raises again as that class (what the driver raises
when the parent writes itself). The child exits when its stdin closes, e.g. when the parent
dies; a child that died is started again and the group sent once more (inserts skip existing
completion ids, so a group the child committed before dying is not stored twice).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import marshal
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, event

from store.db import create_store_engine
from store.interactions import RowBatch, file_of, insert_row_batch, write_transaction

log = logging.getLogger("interlog.sqlite_writer")

_LENGTH = struct.Struct(">I")


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload, or None at the end of the stream."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    payload = stream.read(length)
    return payload if len(payload) == length else None


class WriterProcessError(RuntimeError):
    """The writer process ended twice while writing a group, or was closed."""


#: The result of every batch of a group the child did not answer, twice.
_DIED = ("WriterProcessError", "the SQLite writer process ended twice while writing")


def _raised(error: tuple[str, str]) -> Exception:
    """The child's error as the exception the parent raises."""
    name, message = error
    if name == "WriterProcessError":
        return WriterProcessError(message)
    cls = getattr(sqlite3, name, None)
    if isinstance(cls, type) and issubclass(cls, sqlite3.Error):
        return cls(message)
    return RuntimeError(f"SQLite writer process: {name}: {message}")


@dataclass
class _Ticket:
    payload: bytes
    done: bool = False
    error: tuple[str, str] | None = None


class SqliteWriterProcess:
    """Writes RowBatches into the SQLite file at DATABASE_URL through one child process.

    `write` blocks its caller until its batch is committed (or refused) and is safe from any
    number of threads; the child is started on the first write. Close it when done."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()  # one exchange with the child at a time
        self._child: subprocess.Popen[bytes] | None = None
        self._closed = False
        self.groups = 0  # transactions asked of the child
        self.batches = 0  # batches written in them

    def write(self, batch: RowBatch) -> None:
        """Insert BATCH in one transaction (perhaps shared with other callers' batches);
        raises the sqlite3 error that refused it."""
        ticket = _Ticket(marshal.dumps(tuple(batch)))
        with self._queue_lock:
            self._queue.append(ticket)
        with self._turn:
            if not ticket.done:  # else an earlier turn wrote it along with its own
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._exchange(group)
        if ticket.error is not None:
            raise _raised(ticket.error)

    def _exchange(self, group: list[_Ticket]) -> None:
        """Send GROUP to the child and record each ticket's result (holding the turn); every
        ticket of GROUP is done afterwards, whatever happens."""
        results: list[tuple[str, str] | None] = [_DIED] * len(group)
        try:
            request = marshal.dumps([ticket.payload for ticket in group])
            for attempt in (1, 2):
                answer = self._ask(request)
                if answer is not None:
                    results = marshal.loads(answer)
                    break
                log.warning("SQLite writer process ended (attempt %d): starting another", attempt)
                self._stop_child()
            self.groups += 1
            self.batches += len(group)
        finally:
            for ticket, result in zip(group, results, strict=True):
                ticket.error = result
                ticket.done = True

    def _ask(self, request: bytes) -> bytes | None:
        """The child's answer to REQUEST, or None if it ended first."""
        child = self._running_child()
        assert child.stdin is not None and child.stdout is not None
        try:
            _write_frame(child.stdin, request)
            return _read_frame(child.stdout)
        except OSError:  # BrokenPipeError: it had ended already
            return None

    def _running_child(self) -> subprocess.Popen[bytes]:
        if self._closed:
            raise WriterProcessError("the SQLite writer process was closed")
        if self._child is None or self._child.poll() is not None:
            package_root = str(Path(__file__).resolve().parent.parent)
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, path]))}
            self._child = subprocess.Popen(
                [sys.executable, "-m", "store.sqlite_writer", self.database_url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        return self._child

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            child.wait(timeout=30)  # stdin closed: it finishes its transaction and exits
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        return self._child.pid if self._child is not None else None

    def close(self) -> None:
        """Stop the child (after the write under way, if any). Idempotent."""
        with self._turn:
            self._closed = True
            self._stop_child()


def sqlite_writer_for(engine: Engine) -> SqliteWriterProcess | None:
    """A writer process for ENGINE's store if it is a SQLite file, else None."""
    path = file_of(engine) if engine.dialect.name == "sqlite" else None
    # The absolute path: the child then opens the same file whatever its working directory.
    return SqliteWriterProcess(f"sqlite:///{path}") if path is not None else None


def _written(engine: Engine, batches: list[RowBatch]) -> tuple[str, str] | None:
    """Write BATCHES in one transaction: None, or the error that refused them."""
    try:
        with write_transaction(engine) as connection:
            for batch in batches:
                insert_row_batch(connection, batch)
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    return None


def _write_group(engine: Engine, group: list[bytes]) -> list[tuple[str, str] | None]:
    """Write the batches of GROUP in one transaction, or each alone if that one fails."""
    batches = [RowBatch(*marshal.loads(payload)) for payload in group]
    error = _written(engine, batches)
    if error is None or len(batches) == 1:
        return [error] * len(batches)
    return [_written(engine, [batch]) for batch in batches]


#: The writer's page cache, KiB (SQLite's default is 2 MiB). The session index takes random
#: session ids, so each insert lands on a random page of it; at 100k interactions it is ~4 MB
#: and no longer fitted, and each insert read its page back from the OS. This process does
#: nothing else, so its memory can go to the cache: about 8% less CPU per interaction.
WRITER_CACHE_KIB = 64 * 1024


def _larger_page_cache(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")


def main(argv: list[str]) -> int:
    """The child: serve write requests on stdin until it closes."""
    [database_url] = argv
    # Ctrl-C reaches the whole process group: the parent decides when this process ends (it
    # closes stdin), so a write under way finishes and the parent's last batches still land.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # stdout carries the protocol: anything else printed goes to stderr instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    engine = create_store_engine(database_url)
    event.listen(engine, "connect", _larger_page_cache)
    # Rows are tuples of plain values, freed by reference counting: the young generation's
    # collections would only scan them.
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 50)
    try:
        while (request := _read_frame(requests)) is not None:
            _write_frame(channel, marshal.dumps(_write_group(engine, marshal.loads(request))))
    except BrokenPipeError:
        pass
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
