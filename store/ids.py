"""Time-ordered UUIDs (RFC 9562 version 7): the id sorts by creation time, like the row."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_B_MASK = (1 << 62) - 1
_MAX_MS = (1 << 48) - 1
#: Version 4 and the RFC 9562 variant: bits 76-79 are 0100, bits 62-63 are 10.
_UUID4_CLEAR = ~((0xF << 76) | (0b11 << 62))
_UUID4_SET = (0x4 << 76) | (0b10 << 62)
_new_uuid = object.__new__
_set = object.__setattr__
#: Random bytes from os.urandom, read 4 KiB at a time: one system call per ~400 ids.
_POOL_SIZE = 4096
_pool = b""
_pool_at = _POOL_SIZE


def _forget_pool() -> None:
    """A forked child must not reuse its parent's random bytes (the same ids would follow)."""
    global _pool, _pool_at
    _pool, _pool_at = b"", _POOL_SIZE


os.register_at_fork(after_in_child=_forget_pool)


def _random_bytes(size: int) -> bytes:
    """`size` random bytes from the OS's CSPRNG (call with _lock held)."""
    global _pool, _pool_at
    if _pool_at + size > len(_pool):
        _pool, _pool_at = os.urandom(_POOL_SIZE), 0
    start = _pool_at
    _pool_at += size
    return _pool[start : start + size]


def _random80() -> int:
    """80 random bits from the OS's CSPRNG (call with _lock held)."""
    return int.from_bytes(_random_bytes(10), "big")


def _uuid7_int() -> int:
    global _last_ms, _counter
    with _lock:
        random = _random80()  # 62 bits for rand_b, 10 for the counter's random start
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms += 1
                _counter = 0
        else:
            _counter = (random >> 64) & 0x3FF  # a random start, leaving room to count up
        _last_ms = ms
        counter = _counter
    return (ms << 80) | (counter << 64) | _VERSION_AND_VARIANT | (random & _RAND_B_MASK)


def uuid7() -> uuid.UUID:
    """A new UUIDv7; ids made in one process are strictly increasing."""
    # uuid.UUID(int=...) re-validates what is valid by construction; this is what it stores.
    value = _new_uuid(uuid.UUID)
    _set(value, "int", _uuid7_int())
    _set(value, "is_safe", uuid.SafeUUID.unknown)
    return value


def uuid4() -> uuid.UUID:
    """A random (version 4) UUID from the pooled random bytes: `uuid.uuid4()` makes a
    getrandom system call per id (one per chat completion without a session_id)."""
    with _lock:
        random = int.from_bytes(_random_bytes(16), "big")
    value = _new_uuid(uuid.UUID)
    _set(value, "int", (random & _UUID4_CLEAR) | _UUID4_SET)
    _set(value, "is_safe", uuid.SafeUUID.unknown)
    return value


def _text(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_str() -> str:
    """A new UUIDv7 in its canonical text form (cheaper than `str(uuid7())`)."""
    return _text(_uuid7_int())


#: The last moment given to uuid7_text_at and the text of its time bits ("tttttttt-tttt-7"): a
#: bulk request stamps thousands of items with one moment. A tuple, replaced whole.
_last_moment: tuple[datetime | None, str] = (None, "")
#: The variant (0b10) and two random bits, from the hex digit of those two bits.
_VARIANT_DIGIT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}


def uuid7_text_at(moment: datetime) -> str:
    """A UUIDv7 carrying `moment` (a logged interaction's own time, so ids sort by created_at),
    in canonical text; its 74 other bits are random (no per-process ordering within a ms).

    Made as text directly (hex of pooled random bytes), with the time part reused while the
    moment repeats: this ran once or twice per item of a bulk request."""
    global _last_moment
    last = _last_moment
    if moment is last[0]:
        head = last[1]
    else:
        ms = min(max(0, int(moment.timestamp() * 1000)), _MAX_MS)
        time_hex = f"{ms:012x}"
        head = f"{time_hex[:8]}-{time_hex[8:]}-7"
        _last_moment = (moment, head)
    with _lock:
        digits = _random_bytes(10).hex()
    return f"{head}{digits[:3]}-{_VARIANT_DIGIT[digits[3]]}{digits[4:7]}-{digits[7:19]}"


def uuid7_hex() -> str:
    """A new UUIDv7 as 32 hex digits (request ids)."""
    return f"{_uuid7_int():032x}"


def uuid7_time_ms(value: uuid.UUID) -> int:
    """The unix time in milliseconds carried by a UUIDv7."""
    return value.int >> 80
