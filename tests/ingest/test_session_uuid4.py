"""The gateway's new session ids: version 4 UUIDs from the pooled random bytes (store.ids)."""

from __future__ import annotations

import uuid

from store.ids import uuid4


def test_uuid4_is_a_valid_random_version_4_uuid() -> None:
    ids = [uuid4() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:500]:
        parsed = uuid.UUID(str(value))
        assert parsed == value and hash(parsed) == hash(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # Every one of the 122 random bits varies.
    varying = 0
    for value in ids[1:]:
        varying |= value.int ^ ids[0].int
    assert bin(varying).count("1") == 122
