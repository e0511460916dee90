"""Analytics answered in a reader child process, so that the asking process stays small.

A gateway that ran analytics itself kept what they cost: DuckDB's buffers, Arrow batches of
message text and the pages glibc's malloc retains (measured on 1M realistic interactions: 127 MB
at start, 464 MB after five REST summaries, 1.1 GB after filtered exports, and it stayed there).
Chat shares that interpreter. So a gateway asks `ReaderProcess` instead: a child
(`python -m store.analytics.reader SOCKET`) that answers the analytics questions and streams the
exports over a Unix socket, and ends itself (the next call starts a new one) once its RSS has
passed `analytics_reader_max_mb` with no call running. The gateway then never loads DuckDB.
`LocalAnalytics` answers the same calls in the calling process (notebooks, the CLI, the
dashboard, gateways with INTERLOG_ANALYTICS_READER=false).

Protocol: one connection per call. The parent sends one frame, `(name, args, kwargs, timeout)`;
the child answers `("value", result)`, or `("chunk", bytes)`... `("end", None)` for a stream, or
`("error", exception)`. A frame is a 4-byte big-endian length and a pickle; the socket lives in
a directory only this user can enter, and pickles pass only between a parent and the child it
started. Closing the connection cancels the call: the parent closes it when its ReadGuard is
cancelled (the HTTP client went away); the child watches each connection and cancels its own
guard (DuckDB's interrupt), and a stream stops at the first chunk it can no longer send.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import select
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from store.analytics.owner import end_child, settings_environment
from store.errors import AnalyticsUnavailableError, QueryCancelledError, StoreError
from store.read_guard import ReadGuard
from store.settings import Settings

log = logging.getLogger("interlog.analytics")

_HEADER = struct.Struct("!I")
#: Seconds a new reader child may take to import and listen.
START_TIMEOUT_SECONDS = 60.0
_READY = b"ready\n"


# -- what may be asked ------------------------------------------------------------------------


def _questions() -> dict[str, Callable[..., Any]]:
    """Calls with one answer: FUNCTION(engine, *args, guard=..., **kwargs)."""
    from store.analytics import questions

    return {
        "summary_answer": questions.summary_answer,
        "label_keys": questions.label_keys,
        "label_values_answer": questions.label_values_answer,
        "ab_test_report": questions.ab_test_report,
    }


def _streams() -> dict[str, Callable[..., Iterator[bytes]]]:
    """Calls answered as a stream of byte chunks: FUNCTION(engine, *args, **kwargs)."""
    from store import exports

    return {"export_chunks": exports.export_chunks}


class LocalAnalytics:
    """The calls answered in this process, with this process's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def call(self, name: str, /, *args: Any, guard: ReadGuard | None = None, **kwargs: Any) -> Any:
        return _questions()[name](self.engine, *args, guard=guard, **kwargs)

    def stream(self, name: str, /, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return _streams()[name](self.engine, *args, **kwargs)

    def start(self) -> None:
        """Nothing to start (the same interface as ReaderProcess)."""

    def stop(self) -> None:
        """Nothing to stop."""


# -- frames -----------------------------------------------------------------------------------


def _send(sock: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)))
    sock.sendall(data)


def _read_exact(sock: socket.socket, size: int) -> bytes:
    parts: list[bytes] = []
    while size:
        part = sock.recv(min(size, 1 << 20))
        if not part:
            raise EOFError("the connection closed")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _receive(sock: socket.socket) -> Any:
    (size,) = _HEADER.unpack(_read_exact(sock, _HEADER.size))
    return pickle.loads(_read_exact(sock, size))


def _portable(exc: BaseException) -> tuple[str, str, tuple[Any, ...], dict[str, Any]]:
    """An exception as (module, class, args, attributes): our errors take keyword-only
    arguments, which pickle cannot pass back to __init__."""
    state = {}
    for key, value in vars(exc).items():
        with contextlib.suppress(Exception):
            pickle.dumps(value)
            state[key] = value
    args = tuple(arg if _picklable(arg) else str(arg) for arg in exc.args)
    return type(exc).__module__, type(exc).__qualname__, args, state


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _rebuild(module: str, qualname: str, args: tuple[Any, ...], state: dict[str, Any]) -> Exception:
    """The child's exception, as the same class here (RuntimeError when that is not possible)."""
    try:
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(qualname)
        exc: Exception = cls.__new__(cls)
        exc.args = args
        exc.__dict__.update(state)
        return exc
    except Exception:
        return RuntimeError(f"{qualname}: {' '.join(str(arg) for arg in args)}")


# -- the child --------------------------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False  # server_close() waits for the calls in progress
    block_on_close = True

    def __init__(self, path: str, engine: Engine, max_rss: int) -> None:
        self.engine = engine
        self.max_rss = max_rss
        self.questions = _questions()
        self.streams = _streams()
        self._lock = threading.Lock()
        self._running = 0
        self._retiring = False
        super().__init__(path, _Handler)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                retire = not self._running and not self._retiring and _rss() > self.max_rss
                self._retiring = self._retiring or retire
            if retire:  # shutdown() waits for serve_forever: not from a thread it waits on
                log.info("analytics reader: RSS %d MB, ending (a new one starts)", _rss() >> 20)
                threading.Thread(target=self.shutdown, daemon=True).start()


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        with self.server.running():
            try:
                name, args, kwargs, timeout = _receive(sock)
            except (EOFError, OSError):
                return
            if name in self.server.streams:
                self._stream(sock, self.server.streams[name], args, kwargs)
            elif name in self.server.questions:
                self._answer(sock, self.server.questions[name], args, kwargs, timeout)
            else:
                self._reply(sock, ("error", _portable(ValueError(f"unknown call {name!r}"))))

    def _answer(
        self,
        sock: socket.socket,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> None:
        guard = ReadGuard(timeout)
        done = threading.Event()
        watcher = threading.Thread(target=_cancel_on_close, args=(sock, guard, done), daemon=True)
        watcher.start()
        try:
            reply: Any = ("value", function(self.server.engine, *args, guard=guard, **kwargs))
        except Exception as exc:
            _log_unexpected(exc)
            reply = ("error", _portable(exc))
        finally:
            done.set()
        if not guard.cancelled:
            self._reply(sock, reply)

    def _stream(
        self,
        sock: socket.socket,
        function: Callable[..., Iterator[bytes]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        chunks = function(self.server.engine, *args, **kwargs)
        try:
            for chunk in chunks:
                _send(sock, ("chunk", chunk))
            _send(sock, ("end", None))
        except OSError:  # the parent closed the connection: its client went away
            return
        except Exception as exc:
            _log_unexpected(exc)
            self._reply(sock, ("error", _portable(exc)))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _reply(sock: socket.socket, message: Any) -> None:
        with contextlib.suppress(OSError):
            _send(sock, message)


def _cancel_on_close(sock: socket.socket, guard: ReadGuard, done: threading.Event) -> None:
    """Cancel GUARD when the parent closes the connection before the answer is ready."""
    while not done.is_set():
        try:
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable and not sock.recv(1, socket.MSG_PEEK):
                break  # end of file: the parent gave up on this call
        except (OSError, ValueError):
            break
    if not done.is_set():
        guard.cancel()


def _log_unexpected(exc: Exception) -> None:
    if not isinstance(exc, StoreError):
        log.error("analytics reader: a call failed", exc_info=exc)


def serve(settings: Settings, path: str, ready: Callable[[], None] | None = None) -> None:
    """Answer calls on the Unix socket PATH until stdin closes or the RSS limit is passed."""
    from store.analytics.lake import drop_lake
    from store.db import create_store_engine

    engine = create_store_engine(settings.database_url)
    server = _Server(path, engine, settings.analytics_reader_max_mb << 20)

    def watch_parent() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        server.shutdown()

    threading.Thread(target=watch_parent, daemon=True).start()
    if ready is not None:
        ready()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # new calls fail at once (the parent starts another child)
        server.server_close()  # the calls in progress finish first
        drop_lake(engine)
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    import signal

    from store.settings import get_settings

    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m store.analytics.reader SOCKET", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the parent ends us
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def ready() -> None:
        sys.stdout.buffer.write(_READY)
        sys.stdout.buffer.flush()

    serve(get_settings(), args[0], ready)
    return 0


# -- the parent -------------------------------------------------------------------------------


class ReaderProcess:
    """The reader child of one process: started on `start()` or the first call, started again
    when it ended (RSS limit, crash); calls from any thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._directory: str | None = None
        self.starts = 0  # children started so far (one more after each RSS limit or crash)

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def start(self) -> None:
        """Start the child now (the first call would otherwise wait for its imports)."""
        with self._lock:
            self._spawn_if_needed()

    def call(self, name: str, /, *args: Any, guard: ReadGuard | None = None, **kwargs: Any) -> Any:
        """NAME's answer, computed by the child; its exceptions are raised here."""
        timeout = guard.timeout if guard is not None else self.settings.read_timeout_seconds
        kind, value = self._exchange((name, args, kwargs, timeout), guard)
        if kind == "error":
            raise _rebuild(*value)
        return value

    def stream(self, name: str, /, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        """NAME's chunks as the child makes them (it waits while this iterator is not read)."""
        sock, first = self._open((name, args, kwargs, None), None)
        try:
            message = first
            while True:
                kind, value = message
                if kind == "end":
                    return
                if kind == "error":
                    raise _rebuild(*value)
                yield value
                try:
                    message = _receive(sock)
                except (EOFError, OSError) as exc:
                    raise AnalyticsUnavailableError(
                        "the analytics reader stopped during the export"
                    ) from exc
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            child, self._child = self._child, None
            directory, self._directory = self._directory, None
        if child is not None:
            end_child(child, timeout)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    # -- one call ------------------------------------------------------------------------------

    def _exchange(self, request: Any, guard: ReadGuard | None) -> Any:
        sock, reply = self._open(request, guard)
        sock.close()
        return reply

    def _open(self, request: Any, guard: ReadGuard | None) -> tuple[socket.socket, Any]:
        """A connection with REQUEST sent and the first reply frame read. A child that ended
        between calls (its RSS limit) answers nothing: the request goes once more to a new one."""
        for attempt in (1, 2):
            sock = self._connect()
            try:
                _send(sock, request)
                with _closing_on_cancel(guard, sock):
                    return sock, _receive(sock)
            except (EOFError, OSError) as exc:
                sock.close()
                if guard is not None and guard.cancelled:
                    raise QueryCancelledError(
                        "the query was cancelled: the client went away"
                    ) from exc
                if attempt == 2:
                    raise AnalyticsUnavailableError(
                        f"the analytics reader stopped during a call: {exc}"
                    ) from exc
                self._forget_ended_child()
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        for attempt in (1, 2):
            with self._lock:
                path = self._spawn_if_needed()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except OSError as exc:  # the child is ending (its RSS limit) or died
                sock.close()
                if attempt == 2:
                    raise AnalyticsUnavailableError(
                        f"cannot reach the analytics reader: {exc}"
                    ) from exc
                self._forget_ended_child()
        raise AssertionError("unreachable")

    def _forget_ended_child(self) -> None:
        """Wait for a child that is ending, so that the next call starts a new one."""
        with self._lock:
            child = self._child
            if child is None:
                return
            try:
                child.wait(START_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:  # alive but not answering: replace it
                end_child(child, 1.0)
            self._child = None

    # -- the child's life ----------------------------------------------------------------------

    def _socket_path(self) -> str:
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="interlog-reader-")  # mode 0700
        return str(Path(self._directory) / "reader.sock")

    def _spawn_if_needed(self) -> str:
        """The socket of a live, listening child (started now if there is none). Under _lock."""
        path = self._socket_path()
        child = self._child
        if child is not None and child.poll() is None:
            if not self._ready:
                self._wait_ready(child)
            return path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

        self._child = subprocess.Popen(
            [sys.executable, "-m", "store.analytics.reader", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=settings_environment(self.settings),
        )
        self._ready = False
        self.starts += 1
        self._wait_ready(self._child)
        return path

    def _wait_ready(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        readable, _, _ = select.select([child.stdout], [], [], START_TIMEOUT_SECONDS)
        line = child.stdout.readline() if readable else b""
        if line != _READY:
            end_child(child, 1.0)
            self._child = None
            raise AnalyticsUnavailableError(
                f"the analytics reader did not start (exit status {child.returncode}); "
                "see the gateway's log"
            )
        self._ready = True


@contextlib.contextmanager
def _closing_on_cancel(guard: ReadGuard | None, sock: socket.socket) -> Iterator[None]:
    if guard is None:
        yield
        return
    with guard.on_cancel(lambda: _shutdown(sock)):
        yield


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


if __name__ == "__main__":
    raise SystemExit(main())
