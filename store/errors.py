"""The store's exceptions; each API surface renders them in its own error shape.

StoreError
 ├── NotFoundError        an entity named by the caller does not exist (or is not visible)
 ├── AlreadyExistsError   a create would duplicate a unique key
 ├── InvalidInputError    the request is well-formed but not acceptable (wrong kind, ...)
 │    └── ValueOutOfRangeError   a number that is not finite or outside its documented range
 ├── QueryCancelledError  a read ran past its timeout, or its client went away
 ├── AnalyticsNotReadyError  the analytics store is still being built
 └── AnalyticsUnavailableError  the process answering analytics could not be reached
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


class ValueOutOfRangeError(InvalidInputError):
    """A number that is not finite or lies outside its documented range (REST answers 422)."""

    code = "value_out_of_range"

    def __init__(self, message: str, *, param: str = "value") -> None:
        self.param = param
        super().__init__(message)


class QueryCancelledError(StoreError):
    """A read query stopped before its answer: it ran past the read timeout (`timed_out`,
    REST 503) or its client went away."""

    code = "query_timeout"

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        self.timed_out = timed_out
        super().__init__(message)


class AnalyticsNotReadyError(StoreError):
    """The analytics store is not built yet and this process may not build it (REST 503)."""

    code = "analytics_not_ready"


class AnalyticsUnavailableError(StoreError):
    """The analytics reader child could not be started, or ended during a call (REST 503)."""

    code = "analytics_unavailable"
