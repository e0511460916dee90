"""The first page's work that needs no browser, begun as soon as the dashboard's server listens.

A new dashboard process used to do everything for its first page after the browser asked for it:
import SQLAlchemy, the store, DuckDB, pandas and pyarrow, attach the analytics store (DuckDB and
its extensions), check that it is fresh, then read. None of that depends on the browser, so
the server (dashboard/streamlit_server.py) calls `start()` once it listens: a thread does it
while the browser loads Streamlit's page (about a second of the browser's own work), and
DuckDB's queries, which run without the GIL, overlap with the first run's own work. (Started
with the process instead, its imports shared the GIL with Streamlit's start, which then
answered the browser later: the first page took longer.)

The thread computes the values the first run asks for, each under the key the page reads it by
(`dashboard.queries._cached`, `dashboard.context`), and hands each over once: `take(key, read)`
returns the thread's value (waiting for it when it is still being computed), or `read()`
when the thread has none, has failed (the page then fails the same way, and says so), or its
value is older than the page's cache would have kept it. Values are computed as the page
would compute them, with its functions: a value taken is the one the page would have read.

What is computed: the projects and the data version (the freshness check) always; with sign-in
switched off, the principal is known (admin), so also the reads of the first page with the
filter bar's defaults: the overview of every interaction, label keys, models and metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from dashboard import timing

log = logging.getLogger("interlog.dashboard")
T = TypeVar("T")
Key = tuple[str, ...]  # what a value is read by: its name, then what it depends on
#: Values no page took within this many seconds are dropped (e.g. those of a data version the
#: page never saw, because the data changed before it asked).
KEEP_SECONDS = 300.0

_lock = threading.Lock()
_values: dict[Key, tuple[float, Future[Any]]] = {}  # key -> (when begun, value)
_local = threading.local()  # .active: this thread is the warm-up's
_thread: threading.Thread | None = None


def take(key: Key, read: Callable[[], T], *, max_age: float | None = None) -> T:
    """The warm-up's value of KEY (once), else read()."""
    with _lock:
        found = _values.pop(key, None)
        now = time.monotonic()
        for old in [k for k, (begun, _) in _values.items() if now - begun > KEEP_SECONDS]:
            del _values[old]
    if found is None:
        return read()
    begun, future = found
    if max_age is not None and time.monotonic() - begun > max_age:
        return read()
    try:
        value: T = future.result()
    except Exception:  # the page reads it again, and shows the error itself
        return read()
    return value


def untaken() -> list[Key]:
    """Keys of the values computed and not taken (yet)."""
    with _lock:
        return list(_values)


def active() -> bool:
    """Whether this thread is the warm-up's (whose reads `compute` keeps for the page)."""
    return bool(getattr(_local, "active", False))


def compute(key: Key, read: Callable[[], T]) -> T:
    """read(), kept under KEY for the page; the page waits for it from now on."""
    future: Future[Any] = Future()
    with _lock:
        _values[key] = (time.monotonic(), future)
    try:
        value = read()
    except BaseException as exc:
        future.set_exception(exc)
        raise
    future.set_result(value)
    return value


def start() -> threading.Thread:
    """Start the warm-up thread (once per process)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="interlog-warm-up", daemon=True)
            _thread.start()
        return _thread


def _run() -> None:
    try:
        _in_warm_up(_warm_up)
    finally:
        timing.mark("warm-up: done")


def _in_warm_up(work: Callable[[], Any]) -> None:
    """work() with this thread's reads kept for the page (`compute`); a failure is the page's
    to meet and show."""
    _local.active = True
    try:
        work()
    except Exception:
        log.debug("dashboard warm-up stopped", exc_info=True)


def _warm_up() -> None:
    from dashboard import engines
    from store.analytics.lake import lake_for
    from store.settings import get_settings

    settings = get_settings()
    url = settings.database_url
    engine = engines.engine_for(url)
    lake = lake_for(engine)
    timing.mark("warm-up: imported the store")
    lake.open()  # DuckDB, its extensions, the analytics store attached (None: not built yet)
    timing.mark("warm-up: attached the analytics store")
    from dashboard import context  # with Streamlit, which the server has imported

    data = compute(context.data_version_key(url), lambda: context.read_data_version(engine))
    timing.mark("warm-up: data version")
    projects = compute(context.projects_key(url), lambda: context.read_projects(url))
    from dashboard import queries
    from store.filters import Filters
    from store.keys import Principal

    timing.mark("warm-up: imported the pages' modules")
    if settings.dashboard_auth:  # who signs in, and so what they may read, is not known yet
        return
    ctx = context.PageContext(
        settings=settings,
        engine=engine,
        principal=Principal(is_admin=True),
        projects=projects,
        data=data,
    )
    filters = Filters()  # the filter bar's defaults (tests/dashboard/test_first_page.py)

    def overview() -> None:
        queries.overview(ctx, filters)
        timing.mark("warm-up: overview")

    # DuckDB answers the overview without the GIL, beside this thread's Python.
    answering = threading.Thread(
        target=_in_warm_up, args=(overview,), name="interlog-warm-up-overview", daemon=True
    )
    answering.start()
    import pyarrow  # noqa: F401  (the overview's frames, meanwhile)

    queries.label_keys(ctx, project=None)
    queries.model_keys(ctx, project=None)
    queries.metric_keys(ctx, project=None)
    queries.filter_warnings(ctx, filters)
    timing.mark("warm-up: filter bar")
    from dashboard import auth, charts, filter_bar  # noqa: F401  (the first run's other modules)

    answering.join()
