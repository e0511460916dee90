"""The store's exceptions; each API surface renders them in its own error shape.

StoreError
 ├── NotFoundError        an entity named by the caller does not exist (or is not visible)
 ├── AlreadyExistsError   a create would duplicate a unique key
 └── InvalidInputError    the request is well-formed but not acceptable (wrong kind, ...)
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of errors raised by store functions."""


class NotFoundError(StoreError, LookupError):
    """An entity does not exist, or is not visible to the caller."""

    def __init__(self, entity: str, key: object, hint: str | None = None) -> None:
        self.entity = entity
        self.key = key
        self.hint = hint
        message = f"{entity} {key!s} not found"
        super().__init__(f"{message}. {hint}" if hint else message)


class AlreadyExistsError(StoreError):
    """A unique key is already taken."""

    def __init__(self, entity: str, key: object) -> None:
        self.entity = entity
        self.key = key
        super().__init__(f"{entity} {key!s} already exists")


class InvalidInputError(StoreError, ValueError):
    """Input that parses but cannot be accepted; the message says why."""
