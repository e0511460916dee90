"""The relational store's tables (SQLModel). Alembic migrations mirror this module exactly.

Ids: integer keys for the small configuration tables, UUIDv7 for interactions, metric values and
comparisons (the id sorts by time). Every timestamp is timezone-aware UTC. JSON columns are JSONB
on PostgreSQL, except interaction.messages: json, stored and read back whole (migration 0005).
Labels live twice on purpose: as a JSON map on the interaction (read-back in one row) and as
rows of interaction_label (indexed by project, key, value for filters).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Uuid as SAUuid
from sqlmodel import Field, SQLModel

from store.ids import uuid7
from store.types import JSONText, JSONType, UTCDateTime, utcnow

# Deterministic constraint names, so migrations can drop and alter them on every backend.
SQLModel.metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class MetricKind(StrEnum):
    SCALAR = "scalar"
    BOOL = "bool"


class ScoringType(StrEnum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class InteractionStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"


class InteractionSource(StrEnum):
    LIVE = "LIVE"
    OFFLINE = "OFFLINE"
    AUTOMATION = "AUTOMATION"
    DATASET = "DATASET"
    EVALUATION = "EVALUATION"


class AbTestMode(StrEnum):
    METRIC = "metric"
    PREFERENCE = "preference"


class AbTestStatus(StrEnum):
    ACTIVE = "active"
    DONE = "done"
    CANCELLED = "cancelled"


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow if not nullable else None,
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


class Project(SQLModel, table=True):
    """A tenant: its interactions, metrics, keys and A/B tests belong to it."""

    __tablename__ = "project"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=128)
    name: str = Field(max_length=256)
    description: str | None = Field(default=None, sa_type=Text)
    default_model_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("model.id", ondelete="SET NULL"), nullable=True),
    )
    created_at: datetime = _ts()


class Model(SQLModel, table=True):
    """A deployed model: one or more OpenAI-compatible upstream replicas."""

    __tablename__ = "model"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=128)
    name: str = Field(max_length=256)
    upstream_urls: list[str] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    upstream_model: str | None = Field(default=None, max_length=256)
    api_key_env: str | None = Field(default=None, max_length=128)
    multimodal: bool = Field(default=False)
    connect_timeout: float | None = Field(default=None)
    timeout: float | None = Field(default=None)
    created_at: datetime = _ts()


class ProjectModel(SQLModel, table=True):
    """Which models a project may route to."""

    __tablename__ = "project_model"

    project_id: int = Field(
        sa_column=Column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    )
    model_id: int = Field(
        sa_column=Column(ForeignKey("model.id", ondelete="CASCADE"), primary_key=True)
    )
    created_at: datetime = _ts()


class ApiKey(SQLModel, table=True):
    """An API key, stored only as a hash; scoped to one project, or admin."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(index=True, max_length=32)
    secret_hash: str = Field(unique=True, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    project_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("project.id", ondelete="CASCADE"), nullable=True, index=True),
    )
    is_admin: bool = Field(default=False)
    created_at: datetime = _ts()
    last_used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)


class AbTest(SQLModel, table=True):
    """An A/B test: variants (model keys with traffic weights) share a project's traffic."""

    __tablename__ = "ab_test"
    __table_args__ = (UniqueConstraint("project_id", "key", name="uq_ab_test_project_key"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(
        sa_column=Column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    )
    key: str = Field(max_length=128)
    metric_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("metric.id", ondelete="SET NULL"), nullable=True),
    )
    mode: str = Field(default=AbTestMode.METRIC.value, max_length=16)
    variants: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    status: str = Field(default=AbTestStatus.ACTIVE.value, max_length=16)
    auto_deploy: bool = Field(default=False)
    winner: str | None = Field(default=None, max_length=128)
    end_reason: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _ts()
    ended_at: datetime | None = _ts(nullable=True)


class Interaction(SQLModel, table=True):
    """One completion (one choice of one chat request) with its prompt, timings and outcome."""

    __tablename__ = "interaction"
    __table_args__ = (
        Index("ix_interaction_project_created", "project_id", "created_at"),
        Index("ix_interaction_project_model_created", "project_id", "model_id", "created_at"),
        Index("ix_interaction_session", "session_id"),
    )

    completion_id: uuid.UUID = Field(
        default_factory=uuid7, sa_column=Column(SAUuid(), primary_key=True)
    )
    request_id: str | None = Field(default=None, max_length=64)
    choice_index: int = Field(default=0)
    # Ids of project, model and A/B test, without foreign keys (migration 0003): PostgreSQL
    # checked them row by row, a quarter of its work in bulk ingest. Interlog resolves them
    # before writing and never deletes a parent that has interactions.
    project_id: int = Field(sa_column=Column(Integer, nullable=False))
    model_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    ab_test_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    ab_variant: str | None = Field(default=None, max_length=128)
    replica: str | None = Field(default=None, max_length=512)
    session_id: uuid.UUID = Field(sa_column=Column(SAUuid(), nullable=False))
    user_id: str | None = Field(default=None, max_length=256)
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    # json, not jsonb, on PostgreSQL (migration 0005): stored and read back whole, as sent.
    messages: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONText, nullable=False)
    )
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    completion: str | None = Field(default=None, sa_type=Text)
    # The answer's tool calls, as OpenAI's `message.tool_calls` ([{id, type, function: {name,
    # arguments}}]; a stream's deltas assembled); None when it called none (migration 0006).
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSONText, nullable=True)
    )
    finish_reason: str | None = Field(default=None, max_length=64)
    prompt_tokens: int | None = Field(default=None)
    completion_tokens: int | None = Field(default=None)
    ttft_ms: float | None = Field(default=None)
    latency_ms: float | None = Field(default=None)
    status: str = Field(default=InteractionStatus.OK.value, max_length=16)
    error: str | None = Field(default=None, sa_type=Text)
    source: str = Field(default=InteractionSource.LIVE.value, max_length=16)
    created_at: datetime = _ts()


class InteractionLabel(SQLModel, table=True):
    """One label of an interaction, indexed for `key = value` filters within a project.

    A derived index of `interaction.labels`, written only with its interaction, in the same
    transaction (store.interactions). It has no foreign keys: PostgreSQL checks those row by
    row, and the four checks per interaction were over a third of the database's work in bulk
    ingest (migration 0002). Deleting a project removes its labels explicitly
    (store.catalog_admin).
    """

    __tablename__ = "interaction_label"
    __table_args__ = (
        PrimaryKeyConstraint("completion_id", "key", name="pk_interaction_label"),
        Index("ix_interaction_label_project_key_value", "project_id", "key", "value"),
    )

    completion_id: uuid.UUID = Field(sa_column=Column(SAUuid(), nullable=False))
    project_id: int = Field(sa_column=Column(Integer, nullable=False))
    key: str = Field(max_length=128)
    value: str = Field(sa_type=Text)


class Attachment(SQLModel, table=True):
    """An image, stored once per content hash; messages reference it by `sha256`."""

    __tablename__ = "attachment"

    sha256: str = Field(primary_key=True, max_length=64)
    mime_type: str = Field(max_length=64)
    size_bytes: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts()


class Metric(SQLModel, table=True):
    """A feedback metric of a project: scalar or bool, higher or lower is better."""

    __tablename__ = "metric"
    __table_args__ = (UniqueConstraint("project_id", "key", name="uq_metric_project_key"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(
        sa_column=Column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    )
    key: str = Field(max_length=128)
    name: str = Field(max_length=256)
    kind: str = Field(default=MetricKind.SCALAR.value, max_length=16)
    scoring: str = Field(default=ScoringType.HIGHER_IS_BETTER.value, max_length=32)
    description: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _ts()


class MetricValue(SQLModel, table=True):
    """A score attached to one completion (a client-supplied id makes it idempotent)."""

    __tablename__ = "metric_value"
    __table_args__ = (
        Index("ix_metric_value_completion", "completion_id"),
        Index("ix_metric_value_metric_created", "metric_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid7, sa_column=Column(SAUuid(), primary_key=True))
    completion_id: uuid.UUID = Field(
        sa_column=Column(
            SAUuid(), ForeignKey("interaction.completion_id", ondelete="CASCADE"), nullable=False
        )
    )
    metric_id: int = Field(
        sa_column=Column(ForeignKey("metric.id", ondelete="CASCADE"), nullable=False)
    )
    value: float
    details: str | None = Field(default=None, sa_type=Text)
    reason: str | None = Field(default=None, max_length=64)
    user_id: str | None = Field(default=None, max_length=256)
    created_at: datetime = _ts()


class Comparison(SQLModel, table=True):
    """A preference between two completions for a metric; `tie` is null, 'good' or 'bad'."""

    __tablename__ = "comparison"
    __table_args__ = (Index("ix_comparison_metric_created", "metric_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid7, sa_column=Column(SAUuid(), primary_key=True))
    project_id: int = Field(
        sa_column=Column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    )
    metric_id: int = Field(
        sa_column=Column(ForeignKey("metric.id", ondelete="CASCADE"), nullable=False)
    )
    preferred_completion_id: uuid.UUID = Field(
        sa_column=Column(
            SAUuid(), ForeignKey("interaction.completion_id", ondelete="CASCADE"), nullable=False
        )
    )
    other_completion_id: uuid.UUID = Field(
        sa_column=Column(
            SAUuid(), ForeignKey("interaction.completion_id", ondelete="CASCADE"), nullable=False
        )
    )
    tie: str | None = Field(default=None, max_length=8)
    user_id: str | None = Field(default=None, max_length=256)
    created_at: datetime = _ts()


class AnalyticsTombstone(SQLModel, table=True):
    """A row deleted from interaction, metric_value or comparison, for the analytics store.

    Written only by triggers of migration 0004 (never by Interlog's code): the analytics sync
    (store/analytics/sync.py) reads them to delete the same rows from the analytics store, then
    prunes them, all but the newest (so that a SQLite id, max + 1, is never used twice).
    `row_id` is the deleted row's SQLite rowid (a later row may reuse it). On
    PostgreSQL the table, like interaction, metric_value and comparison, also has a
    `change_txid` column (the writing transaction's id, a default of migration 0004) that is
    not declared here: Interlog never writes it, only the sync reads it (CHANGE_COLUMN).
    """

    __tablename__ = "analytics_tombstone"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    source: str = Field(max_length=32)
    key: str = Field(max_length=64)
    row_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


#: The PostgreSQL column (not in these models) holding the id of the transaction that wrote a row
#: of interaction, metric_value, comparison or analytics_tombstone (migration 0004).
CHANGE_COLUMN = "change_txid"

metadata = SQLModel.metadata
