"""How fast this machine runs Python right now: a fixed pure-Python loop, best of five.

The VM these benchmarks run on changes speed by up to 2x within minutes (the same loop took
172 ms and 378 ms half an hour apart, on an idle machine), and everything Interlog does per
request or per interaction scales with it. Each benchmark prints this figure next to its own,
so runs made at different times can be compared: lower is faster.
"""

from __future__ import annotations

import time

LOOP = 2_000_000
ROUNDS = 5


def python_probe_ms() -> float:
    """Milliseconds for LOOP additions in a Python loop (the fastest of ROUNDS runs)."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        total = 0
        for number in range(LOOP):
            total += number
        best = min(best, time.perf_counter() - started)
    return best * 1000
