"""The malloc arena cap the gateway sets at start."""

from __future__ import annotations

import platform

import pytest

from ingest.process_memory import limit_malloc_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_arena_cap() -> None:
    assert limit_malloc_arenas(2) is True
    assert limit_malloc_arenas(8) is True  # and a later change (tests share the process)
