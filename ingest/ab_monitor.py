"""The gateway's A/B monitor: ends significant tests (store.ab_sequential) and reroutes at once.

Every gateway process runs the check every `ab_check_seconds`; ending is a conditional UPDATE
(`WHERE status = 'active'`), so with several processes exactly one ends a test and deploys its
winner. The process that ends a test (or changes a project through the admin API) forgets that
project's cached routes at once; other processes follow within `routing_cache_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from store.ab_sequential import conclude_ab_tests
from store.db_errors import driver_message

log = logging.getLogger("interlog.abtests")


def forget_routes(app: FastAPI, project_key: str | None = None) -> None:
    """Make this process's router read the project's routes (or all) from the store again."""
    routing = getattr(app.state, "routing", None)
    if routing is not None:
        routing.invalidate(project_key)


async def check_ab_tests(app: FastAPI) -> list[str]:
    """End every significant active test now; returns the keys of the tests ended."""
    ended = await asyncio.to_thread(conclude_ab_tests, app.state.engine)
    for test in ended:
        log.info("A/B test %s of project %s ended by the sequential test", test.key, test.project)
        forget_routes(app, test.project)
    return [test.key for test in ended]


async def _monitor(app: FastAPI, interval: float) -> None:
    """Check every INTERVAL; a failing store is logged once when the checks start failing and
    once when they work again (not a traceback every interval through an outage)."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await check_ab_tests(app)
        except SQLAlchemyError as exc:
            if not failing:
                log.warning(
                    "A/B checks failing (%s); retrying every %g s",
                    driver_message(exc), interval,
                )  # fmt: skip
            failing = True
            continue
        if failing:
            log.warning("A/B checks work again")
            failing = False


@contextlib.asynccontextmanager
async def ab_monitor(app: FastAPI, *, interval: float) -> AsyncIterator[None]:
    """Run the periodic check for the lifetime of the app (disabled when interval <= 0)."""
    if interval <= 0:
        yield
        return
    task = asyncio.create_task(_monitor(app, interval), name="interlog-ab-monitor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
