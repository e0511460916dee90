"""The one filter grammar of Interlog.

A `Filters` value is plain data (it can come from a notebook, the dashboard, REST query strings,
GraphQL or the CLI), parsed and checked once here: label conditions `k=v`, `k!=v` (also true
when the key is absent), `k=a|b` (one of), `k` (has the key); metric conditions `quality>=0.8`
(the mean of a completion's values; `>`, `>=`, `<`, `<=`, `=`, `!=`; bools take true/false);
at most MAX_LABEL_CONDITIONS label and MAX_METRIC_CONDITIONS metric conditions per query; a
status is one of STATUSES. Two compilers translate it, both restricted to the caller's scope:
`store.analytics.compiler.compile_filters` into one WHERE clause over the analytics store's
`interactions` (alias `i`), `store.readback.filter_conditions` into SQLAlchemy conditions over
the relational `interaction` table.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from store.errors import InvalidInputError
from store.keys import Principal
from store.models import InteractionStatus

LabelOp = Literal["=", "!=", "in", "exists"]
MetricOp = Literal[">=", ">", "<=", "<", "=", "!="]
Scope = Principal | int
"""Who asks: a Principal (admin sees every project, a project key only its own) or a project id."""

#: Most label conditions one query may carry (each is a subquery; 2,000 once ran for minutes).
MAX_LABEL_CONDITIONS = 50
#: Most metric conditions one query may carry.
MAX_METRIC_CONDITIONS = 20
#: The values of an interaction's status.
STATUSES = tuple(status.value for status in InteractionStatus)
#: Label keys that name a dedicated filter: a label of that name is usually a mistake.
DEDICATED_FILTERS = ("project", "model", "user", "session", "status", "variant")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_METRIC = re.compile(
    r"^\s*([A-Za-z0-9_.:-]+)\s*(>=|<=|!=|==|=|>|<)\s*(-?[0-9.eE+-]+|true|false)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LabelFilter:
    """One label condition: `key = value`, `key != value` (also true when the key is absent),
    `key in (values)`, or `key exists`."""

    key: str
    op: LabelOp = "="
    values: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> LabelFilter:
        """Parse `k=v`, `k!=v`, `k=a|b` (in), `k in a,b`, or a bare `k` (exists)."""
        text = text.strip()
        if "!=" in text:
            key, _, value = text.partition("!=")
            return cls(_label_key(key, text), "!=", (value.strip(),))
        if "=" in text:
            key, _, value = text.partition("=")
            values = tuple(v for v in value.split("|"))
            return cls(_label_key(key, text), "in" if len(values) > 1 else "=", values)
        match = re.match(r"^(\S+)\s+in\s+(.+)$", text)
        if match:
            values = tuple(v.strip() for v in match.group(2).strip("()").split(","))
            return cls(match.group(1), "in", values)
        return cls(_label_key(text, text), "exists")


@dataclass(frozen=True)
class MetricFilter:
    """A range condition on a completion's metric (mean of its values), e.g. quality >= 0.8."""

    key: str
    op: MetricOp
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricFilter:
        """Parse `quality>=0.8`, `thumbs=true`, `latency_score < 3`."""
        match = _METRIC.match(text)
        if not match:
            raise InvalidInputError(
                f"bad metric condition {text!r}: expected KEY OP NUMBER, e.g. quality>=0.8"
            )
        key, op, raw = match.groups()
        op = "=" if op == "==" else op
        number = {"true": 1.0, "false": 0.0}.get(raw.lower())
        try:
            value = float(raw) if number is None else number
        except ValueError as exc:
            raise InvalidInputError(f"bad number in metric condition {text!r}") from exc
        if not math.isfinite(value):
            raise InvalidInputError(f"bad number in metric condition {text!r}: not finite")
        return cls(key, op, value)  # type: ignore[arg-type]


def _label_key(key: str, text: str) -> str:
    key = key.strip()
    if not key or any(char.isspace() for char in key):
        raise InvalidInputError(f"bad label filter {text!r}: use k=v, k!=v, k=a|b or k")
    return key


LabelsArg = Mapping[str, str | Sequence[str] | None] | Iterable[LabelFilter | str]


def parse_time(value: datetime | str | None, *, now: datetime | None = None) -> datetime | None:
    """`7d`, `24h`, `30m` (that long ago), an ISO datetime, or a datetime (naive means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    match = _DURATION.match(value)
    if match:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(
            f"bad time {value!r}: use a duration like 7d / 24h / 30m or an ISO datetime"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _label_filters(labels: LabelsArg | None) -> tuple[LabelFilter, ...]:
    if not labels:
        return ()
    if isinstance(labels, str | LabelFilter):
        labels = [labels]
    if isinstance(labels, Mapping):
        out: list[LabelFilter] = []
        for key, value in labels.items():
            if value is None:
                out.append(LabelFilter(key, "exists"))
            elif isinstance(value, str):
                out.append(LabelFilter(key, "=", (value,)))
            else:
                out.append(LabelFilter(key, "in", tuple(str(v) for v in value)))
        return tuple(out)
    return tuple(
        item if isinstance(item, LabelFilter) else LabelFilter.parse(item) for item in labels
    )


def _metric_filters(metrics: Any) -> tuple[MetricFilter, ...]:
    if not metrics:
        return ()
    if isinstance(metrics, str | MetricFilter):
        metrics = [metrics]
    return tuple(m if isinstance(m, MetricFilter) else MetricFilter.parse(m) for m in metrics)


@dataclass(frozen=True)
class Filters:
    """Every filter an analytics question accepts; all given conditions are combined with AND.

    labels: a mapping ({"team": "x"}, a list means `in`, None means `exists`) or a list of
    LabelFilter / strings ("k=v", "k!=v", "k=a|b", "k"). project / model / ab_test are keys.
    since / until: "7d", "24h", ISO text or datetimes. metrics: "quality>=0.8" strings or
    MetricFilter. status: one of STATUSES. search: case-insensitive text in the prompt or the
    completion. More than MAX_LABEL_CONDITIONS label or MAX_METRIC_CONDITIONS metric conditions,
    a malformed condition or an unknown status raise InvalidInputError, on every surface.
    """

    labels: Any = ()
    project: str | None = None
    model: str | None = None
    ab_test: str | None = None
    variant: str | None = None
    since: datetime | str | None = None
    until: datetime | str | None = None
    session: str | uuid.UUID | None = None
    user: str | None = None
    status: str | None = None
    metrics: Any = ()
    search: str | None = None
    label_filters: tuple[LabelFilter, ...] = field(init=False, repr=False, compare=False)
    metric_filters: tuple[MetricFilter, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_filters", _label_filters(self.labels))
        object.__setattr__(self, "metric_filters", _metric_filters(self.metrics))
        check_condition_counts(labels=len(self.label_filters), metrics=len(self.metric_filters))
        if self.status is not None:
            check_status(self.status)
        object.__setattr__(self, "since", parse_time(self.since))
        object.__setattr__(self, "until", parse_time(self.until))
        if self.session is not None:
            try:
                object.__setattr__(self, "session", uuid.UUID(str(self.session)))
            except ValueError as exc:
                raise InvalidInputError(f"bad session id {self.session!r}") from exc


def check_condition_counts(*, labels: int, metrics: int) -> None:
    """InvalidInputError when a query has more label or metric conditions than allowed."""
    if labels > MAX_LABEL_CONDITIONS:
        raise InvalidInputError(
            f"too many label conditions: {labels}; at most {MAX_LABEL_CONDITIONS} per query"
        )
    if metrics > MAX_METRIC_CONDITIONS:
        raise InvalidInputError(
            f"too many metric conditions: {metrics}; at most {MAX_METRIC_CONDITIONS} per query"
        )


def check_status(status: str) -> str:
    """STATUS if it is an interaction status; InvalidInputError naming the valid ones otherwise."""
    if status not in STATUSES:
        raise InvalidInputError(f"unknown status {status!r}: use {', '.join(STATUSES)}")
    return status


def missing_label_key_warning(key: str) -> str:
    """The warning for a label key that no interaction in scope has (the answer is then empty,
    or everything for `key!=value`); a key named like a dedicated filter points to it."""
    warning = f"no interaction has label key {key!r}"
    if key in DEDICATED_FILTERS:
        warning += f"; to filter by {key} use {key}=..."
    return warning


def scope_project_id(scope: Scope) -> int | None:
    """The one project a scope may see, or None for an admin (every project)."""
    if isinstance(scope, Principal):
        if scope.is_admin:
            return None
        if scope.project_id is None:
            raise InvalidInputError("a non-admin principal without a project sees nothing")
        return scope.project_id
    if isinstance(scope, bool) or not isinstance(scope, int):
        raise InvalidInputError("scope must be a Principal or a project id")
    return scope
