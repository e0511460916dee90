"""Interactions written as a gateway of an older schema wrote them, for upgrade tests.

Today's writer (store.interactions.write_interactions) writes every column of today's schema,
tool_calls (migration 0006) included, so it cannot write into a store at an older revision."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from store.interactions import INTERACTION_TABLE, LABEL_TABLE

#: Values of the NOT NULL columns a record may leave out (the writer's defaults).
_DEFAULTS: dict[str, Any] = {
    "labels": {},
    "messages": [],
    "params": {},
    "choice_index": 0,
    "status": "ok",
    "source": "LIVE",
}


def as_stored(value: Any, nul: str) -> Any:
    """VALUE with U+0000 as the writer stores it (PostgreSQL's json and text cannot hold it)."""
    if isinstance(value, str):
        return value.replace("\x00", nul)
    if isinstance(value, dict):
        return {as_stored(k, nul): as_stored(v, nul) for k, v in value.items()}
    if isinstance(value, list):
        return [as_stored(item, nul) for item in value]
    return value


def write_before_0006(engine: Engine, records: Sequence[Any]) -> None:
    """RECORDS (journal records) and their label rows, in one transaction, with the columns of
    revisions 0001-0005 only."""
    nul = "\ufffd" if engine.dialect.name == "postgresql" else "\x00"
    rows = [
        {
            **_DEFAULTS,
            **record,
            "messages": as_stored(record.get("messages", []), nul),
            "completion_id": uuid.UUID(record["completion_id"]),
            "session_id": uuid.UUID(record["session_id"]),
            "created_at": datetime.fromisoformat(record["created_at"]),
        }
        for record in records
    ]
    labels = [
        {
            "completion_id": row["completion_id"],
            "project_id": row["project_id"],
            "key": k,
            "value": v,
        }
        for row in rows
        for k, v in row["labels"].items()
    ]
    with engine.begin() as connection:
        connection.execute(INTERACTION_TABLE.insert(), rows)
        if labels:
            connection.execute(LABEL_TABLE.insert(), labels)
