"""Interaction records as the journal and the writers carry them, for store tests."""

from __future__ import annotations

import uuid
from typing import Any

from store.ids import uuid7
from store.interactions import InteractionRecord
from store.types import utcnow


def interaction_record(project_id: int, **extra: Any) -> InteractionRecord:
    """A new interaction of PROJECT_ID with two labels; EXTRA overrides or adds fields."""
    record: InteractionRecord = {
        "completion_id": str(uuid7()),
        "project_id": project_id,
        "session_id": str(uuid.uuid4()),
        "created_at": utcnow().isoformat(),
        "labels": {"team": "a", "env": "prod"},
        "messages": [{"role": "user", "content": "hi"}],
        "completion": "hello",
    }
    record.update(extra)  # type: ignore[typeddict-item]
    return record
