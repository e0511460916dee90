"""Interactions logged from outside the gateway (REST, bulk, JSONL import), with their feedback.

Callers hand over ready InteractionRecords plus each one's metric values; one transaction
stores them all, and each item succeeds or fails on its own: an item whose feedback names an
unknown metric (or has the wrong kind) is reported and not stored, the others are kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from store.errors import StoreError
from store.feedback import add_metric_values, check_metric_values
from store.interactions import InteractionRecord, insert_interactions, write_transaction
from store.models import Model, Project


@dataclass(frozen=True)
class CatalogNames:
    """Project and model keys to ids, read once per batch (both tables are small)."""

    projects: dict[str, int]
    models: dict[str, int]


def read_catalog_names(engine: Engine) -> CatalogNames:
    with engine.connect() as connection:
        projects = connection.execute(select(col(Project.key), col(Project.id))).all()
        models = connection.execute(select(col(Model.key), col(Model.id))).all()
    return CatalogNames(
        projects={key: ident for key, ident in projects if ident is not None},
        models={key: ident for key, ident in models if ident is not None},
    )


@dataclass(frozen=True)
class LoggedResult:
    """The outcome of one item: its feedback ids, or the error that kept it out."""

    feedback_ids: list[uuid.UUID] | None = None
    error: StoreError | None = None


#: The result of every item stored without feedback (shared: read it, never change it).
STORED = LoggedResult(feedback_ids=[])


def write_logged_interactions(
    engine: Engine,
    *,
    records: Sequence[InteractionRecord],
    feedbacks: Sequence[Sequence[Mapping[str, Any]]],
) -> list[LoggedResult]:
    """Store interactions and their metric values in one transaction, reporting per item.

    Idempotent on completion_id (an existing interaction is left as it is); metric values with
    a client id are idempotent too (see store.feedback).
    """
    if len(records) != len(feedbacks):
        raise ValueError("one feedback list per record")
    results: list[LoggedResult | None] = [None] * len(records)
    with write_transaction(engine) as connection:
        for index, values in enumerate(feedbacks):
            if not values:
                continue
            try:
                check_metric_values(
                    connection, project_id=records[index]["project_id"], values=values
                )
            except StoreError as exc:
                results[index] = LoggedResult(error=exc)
        insert_interactions(connection, [r for i, r in enumerate(records) if results[i] is None])
        for index, values in enumerate(feedbacks):
            if results[index] is not None:
                continue
            if not values:
                results[index] = STORED
                continue
            record = records[index]
            try:
                with connection.begin_nested():
                    ids = add_metric_values(
                        connection,
                        project_id=record["project_id"],
                        values=values,
                        completion_id=record["completion_id"],
                    )
            except StoreError as exc:
                results[index] = LoggedResult(error=exc)
            else:
                results[index] = LoggedResult(feedback_ids=ids)
    return [result or STORED for result in results]
