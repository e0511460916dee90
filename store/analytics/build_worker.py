"""One worker of a parallel first build (store/analytics/build.py): a process of its own that
attaches the store read-only to its DuckDB and writes chunks of rows, already in the analytics
layout, into Parquet files, one `COPY ... TO` at a time.

Protocol, JSON lines: the first line on stdin says how to attach the store
({"extension": "sqlite", "attach": "ATTACH ..."}); then each line is a task
({"sql": SELECT, "path": FILE}), answered on stdout, in order, by {"rows": N} or
{"error": TEXT}. The worker ends when its stdin closes (the sync process ended or died).

    python -m store.analytics.build_worker
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from store.analytics.extensions import load_extensions

ROW_GROUP_ROWS = 16_384  # as the analytics store's own files (store/analytics/lake.py)
MEMORY_LIMIT = "256MB"  # DuckDB's memory in one worker: a row group of each column is buffered
#: How a worker writes a file: as DuckLake writes its own (store/analytics/lake.py).
COPY_OPTIONS = (
    f"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
)


def serve(lines: IO[str], out: IO[str]) -> None:
    """Answer the tasks read from LINES on OUT until LINES ends."""
    import duckdb

    setup = json.loads(lines.readline() or "{}")
    if not setup:
        return
    # No tune_malloc here (unlike the sync and the readers): a worker lives for one build, and
    # unmapping every large block as it is freed cost a third more system time (measured).
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": MEMORY_LIMIT,
            "preserve_insertion_order": False,
            "threads": 1,  # one pipeline per chunk; the parallelism is the processes'
        },
    )
    con.execute("SET TimeZone = 'UTC'")  # the layout's timestamp casts assume it
    load_extensions(con, setup["extension"])
    con.execute(setup["attach"])
    for line in lines:
        task = json.loads(line)
        try:
            quoted = str(task["path"]).replace("'", "''")
            row = con.execute(f"COPY ({task['sql']}) TO '{quoted}' ({COPY_OPTIONS})").fetchone()
            answer: dict[str, Any] = {"rows": int(row[0]) if row else 0}
        except Exception as exc:  # reported to the sync process, which stops the build
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main() -> int:
    serve(sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
