"""Custom scalars of the Adaptive schema subset: UUID (strawberry's own), IdOrKey, JSON,
Timestamp (milliseconds since the epoch; GraphQL's Int is only 32 bits) and InputDatetime.

Each is a NewType mapped to its GraphQL definition in SCALARS (strawberry's `scalar_map`), so
annotations stay ordinary types for mypy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["JSON", "SCALARS", "IdOrKey", "InputDatetime", "Timestamp", "to_timestamp"]

IdOrKey = NewType("IdOrKey", str)
Timestamp = NewType("Timestamp", int)
InputDatetime = NewType("InputDatetime", datetime)


def _id_or_key(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"IdOrKey must be a string or an integer, not {value!r}")
    return str(value)


def _timestamp(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Timestamp must be an integer (milliseconds), not {value!r}")
    return value


def _input_datetime(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError("InputDatetime must be milliseconds or an ISO 8601 string")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError("InputDatetime must be milliseconds or an ISO 8601 string")


def to_timestamp(moment: datetime) -> Timestamp:
    """Milliseconds since the epoch, as Adaptive's `createdAt` fields carry them."""
    return Timestamp(int(moment.timestamp() * 1000))


SCALARS: dict[object, ScalarDefinition] = {
    IdOrKey: strawberry.scalar(
        name="IdOrKey",
        description="An entity's id or its key.",
        serialize=str,
        parse_value=_id_or_key,
    ),
    Timestamp: strawberry.scalar(
        name="Timestamp",
        description="Milliseconds since the Unix epoch.",
        serialize=int,
        parse_value=_timestamp,
    ),
    InputDatetime: strawberry.scalar(
        name="InputDatetime",
        description="A point in time: milliseconds since the epoch, or an ISO 8601 string.",
        serialize=lambda value: int(value.timestamp() * 1000),
        parse_value=_input_datetime,
    ),
}
