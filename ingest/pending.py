"""Read-your-writes for feedback: wait briefly for completions that are still being logged.

A client may post a metric the moment a completion's response arrives, while the interaction is
still in a gateway's journal. Before answering "completion not found", ask this process's writer
to store the ids it holds, then look again a few times to cover another gateway process whose
writer runs every `INTERLOG_WRITER_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence

from fastapi import FastAPI

log = logging.getLogger("interlog.feedback")

#: Seconds between re-checks after the local writer has flushed (another process's writer).
RECHECK_DELAYS = (0.05, 0.1, 0.2, 0.3)


async def wait_for_completions(
    app: FastAPI, ids: Sequence[uuid.UUID], find_missing: Callable[[Sequence[uuid.UUID]], list]
) -> list[uuid.UUID]:
    """The ids still missing after flushing this process's journal and a short grace period.

    `find_missing` is a blocking store call (run in a thread) returning the ids not yet visible.
    """
    missing = await asyncio.to_thread(find_missing, ids)
    if not missing:
        return []
    writer = getattr(app.state, "writer", None)
    if writer is not None:
        try:
            await writer.ensure_written(missing)
        except TimeoutError:
            log.warning("completions %s not stored within the writer's timeout", missing)
        missing = await asyncio.to_thread(find_missing, missing)
    for delay in RECHECK_DELAYS:
        if not missing:
            break
        await asyncio.sleep(delay)
        missing = await asyncio.to_thread(find_missing, missing)
    return list(missing)
