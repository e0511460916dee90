"""Where a new dashboard process's first page spends its time, for bench/dashboard.py.

With INTERLOG_DASHBOARD_TIMING=FILE set, `mark(step)` appends one line per step to FILE:
`<wall clock seconds> <pid> <seconds the step took or -> <step>`; without it, nothing is done
(one environment lookup). `interlog dashboard`, the Streamlit server and the script's first run
mark their steps; the benchmark subtracts its own start time and prints the steps in order.
Standard library only: the CLI imports it before anything else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "INTERLOG_DASHBOARD_TIMING"


def mark(step: str, seconds: float | None = None) -> None:
    """Note that STEP ended now (and took SECONDS, when given)."""
    path = os.environ.get(ENV)
    if not path:
        return
    took = "-" if seconds is None else f"{seconds:.4f}"
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{time.time():.4f} {os.getpid()} {took} {step}\n")


@contextmanager
def timed(step: str) -> Iterator[None]:
    """Mark STEP when the block ends, with the seconds it took."""
    if not os.environ.get(ENV):
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        mark(step, time.perf_counter() - started)


def read(path: str, since: float) -> list[tuple[float, float | None, str]]:
    """The steps noted in PATH as (seconds after SINCE, seconds taken or None, step), in the
    order they ended."""
    steps = []
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                at, _pid, took, step = line.rstrip("\n").split(" ", 3)
                steps.append((float(at) - since, None if took == "-" else float(took), step))
    except FileNotFoundError:
        return []
    return sorted(steps, key=lambda item: item[0])
