"""The analytics store's process gives the memory of a question back (store/analytics/lake.py):
glibc's malloc is tuned when the lake attaches, and freed heap pages are trimmed after each
question. Each check runs in a new process, since the tuning is process-wide and once only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import interlog_env

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="the malloc tuning is glibc's",
)

#: Open a lake, then ask glibc whether a freed 4 MB block's successor is mapped on its own
#: (mallinfo2's hblks) and count the trims of two questions; with ARGV[2] the lake's malloc
#: tuning is switched off (glibc's default: the threshold rises to a freed block's size).
LAKE = r"""
import ctypes, json, sys
import migrations
import store.analytics.lake as lake_module
from store.db import create_store_engine
from store.settings import get_settings

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if len(sys.argv) > 2:
    lake_module.tune_malloc = lambda: False
trims = []
release = lake_module.release_free_memory
lake_module.release_free_memory = lambda: (trims.append(1), release())
url = sys.argv[1]
migrations.upgrade(url)
lake = lake_module.Lake(create_store_engine(url), get_settings())
lake.open(create=True)
libc.free(libc.malloc(4 << 20))
mapped = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
mapped = libc.mallinfo2().hblks - mapped
libc.free(block)
for _ in range(2):
    with lake.reading() as cursor:
        cursor.execute("SELECT quantile_cont(i::DOUBLE, 0.5) FROM range(100000) t(i)").fetchall()
print(json.dumps({"mapped": mapped, "trims": len(trims)}))
"""


def _run(code: str, *args: str, threshold: str | None = None) -> str:
    """CODE's last line of output, run in a new process (with MALLOC_MMAP_THRESHOLD_ set to
    THRESHOLD, or unset)."""
    env = interlog_env({})
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = threshold
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_large_blocks_are_mapped_unless_the_environment_says_otherwise() -> None:
    code = "from store.analytics.lake import tune_malloc; print(tune_malloc())"
    assert _run(code) == "True"
    assert _run(code, threshold="131072") == "False"  # the user's own setting stands


def test_the_lake_maps_large_blocks_and_trims_after_each_question(tmp_path: Path) -> None:
    """A quantile's values live outside DuckDB's memory limit, in glibc's heap: tuned, a large
    block gets its own mapping (unmapped when freed) even after one of its size was freed;
    untuned, glibc would serve it from the heap and keep it there."""
    tuned = json.loads(_run(LAKE, f"sqlite:///{tmp_path / 'tuned.db'}"))
    untuned = json.loads(_run(LAKE, f"sqlite:///{tmp_path / 'untuned.db'}", "off"))
    assert tuned == {"mapped": 1, "trims": 2}
    assert untuned["mapped"] == 0
