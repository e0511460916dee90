"""Interactions logged from outside the gateway (REST, bulk, JSONL import), with their feedback.

Callers hand over ready InteractionRecords plus each one's metric values; one transaction
stores them all, and each item succeeds or fails on its own: an item whose feedback names an
unknown metric (or has the wrong kind) is reported and not stored, the others are kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlmodel import col

from store.bulk_insert import insert_ignoring_conflicts, writer_kind
from store.errors import AlreadyExistsError, NotFoundError, StoreError

# Package-private helpers of the feedback store, shared so both word errors the same way.
from store.feedback import METRIC_VALUE_TABLE, _completion_projects, _conflicts, _prepare
from store.interactions import (
    INTERACTION_TABLE,
    InteractionRecord,
    PreparedRows,
    RowBatch,
    insert_prepared,
    prepare_rows,
    row_batch,
    write_transaction,
)
from store.models import Metric, Model, Project


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


def _prepare_values(
    connection: Connection,
    records: Sequence[InteractionRecord],
    feedbacks: Sequence[Sequence[Mapping[str, Any]]],
    results: list[LoggedResult | None],
) -> dict[int, list[dict[str, Any]]]:
    """Every item's metric values as rows (metrics resolved once per project and key); an item
    with a bad value gets its error in RESULTS instead."""
    metrics: dict[int, dict[str, Metric]] = {}
    prepared: dict[int, list[dict[str, Any]]] = {}
    for index, values in enumerate(feedbacks):
        if not values or results[index] is not None:
            continue
        record = records[index]
        project_id = record["project_id"]
        try:
            prepared[index] = [
                _prepare(
                    connection,
                    project_id=project_id,
                    item=value,
                    metrics=metrics.setdefault(project_id, {}),
                    completion_id=value.get("completion_id") or record["completion_id"],
                )
                for value in values
            ]
        except StoreError as exc:
            results[index] = LoggedResult(error=exc)
    return prepared


def _store_values(
    connection: Connection,
    records: Sequence[InteractionRecord],
    prepared: dict[int, list[dict[str, Any]]],
    results: list[LoggedResult | None],
) -> None:
    """Insert the values of every item whose completion is its project's and whose ids are not
    taken by other values; the others get their error. Each item's values go in all or none."""
    rows = [row for item_rows in prepared.values() for row in item_rows]
    projects = _completion_projects(connection, [row["completion_id"] for row in rows])
    taken = _conflicts(connection, rows)  # ids stored already with other content
    batch: dict[uuid.UUID, tuple[Any, ...]] = {}
    kept: list[dict[str, Any]] = []
    for index, item_rows in prepared.items():
        project_id = records[index]["project_id"]
        error: StoreError | None = None
        for row in item_rows:
            content = (row["completion_id"], row["metric_id"], row["value"])
            if projects.get(row["completion_id"]) != project_id:
                error = NotFoundError("completion", row["completion_id"])
            elif row["id"] in taken or batch.get(row["id"], content) != content:
                error = AlreadyExistsError("feedback", f"{row['id']} (different value)")
            if error is not None:
                break
        if error is not None:
            results[index] = LoggedResult(error=error)
            continue
        for row in item_rows:
            batch[row["id"]] = (row["completion_id"], row["metric_id"], row["value"])
        kept.extend(item_rows)
        results[index] = LoggedResult(feedback_ids=[row["id"] for row in item_rows])
    insert_ignoring_conflicts(connection, METRIC_VALUE_TABLE, kept)


def _unusable_ids(
    connection: Connection,
    records: Sequence[InteractionRecord],
    chosen: Sequence[bool] | None,
    results: list[LoggedResult | None],
) -> None:
    """Set the error of each item that cannot be stored under its completion id: a later item
    with the id of an earlier, different item of this request, and an id that another
    project's interaction has (both used to be ignored silently, answered "stored"). An id this
    project has already is a retry of the same item and stays idempotent. CHOSEN: which ids the
    client gave (ids made here cannot collide); None: all of them."""
    candidates = [i for i in range(len(records)) if chosen is None or chosen[i]]
    if not candidates:
        return
    first: dict[uuid.UUID, int] = {}
    for index in candidates:
        completion_id = uuid.UUID(str(records[index]["completion_id"]))
        if completion_id not in first:
            first[completion_id] = index
        elif _content(records[index]) != _content(records[first[completion_id]]):
            message = f"{completion_id} (given twice in this request; the first is stored)"
            results[index] = LoggedResult(error=AlreadyExistsError("completion", message))
    table = INTERACTION_TABLE
    ids = list(first)
    for start in range(0, len(ids), 1000):
        found = connection.execute(
            select(table.c.completion_id, table.c.project_id).where(
                table.c.completion_id.in_(ids[start : start + 1000])
            )
        ).all()
        for completion_id, project_id in found:
            index = first[uuid.UUID(str(completion_id))]
            if records[index]["project_id"] != project_id:
                results[index] = LoggedResult(error=AlreadyExistsError("completion", completion_id))


def _content(record: InteractionRecord) -> dict[str, Any]:
    """What makes two items with one completion id the same item (a retry): everything but the
    session id, which is made up per item when the client sends none."""
    return {key: value for key, value in record.items() if key != "session_id"}


def write_logged_interactions(
    engine: Engine,
    *,
    records: Sequence[InteractionRecord],
    feedbacks: Sequence[Sequence[Mapping[str, Any]]],
    rows: PreparedRows | None = None,
    write_rows: Callable[[RowBatch], object] | None = None,
    chosen: Sequence[bool] | None = None,
) -> list[LoggedResult]:
    """Store interactions and their metric values in one transaction, reporting per item.

    An item whose values name an unknown metric or have the wrong kind is not stored at all;
    one whose values cannot be attached (its completion id belongs to another project, or a
    value id is taken by a different value) keeps its interaction and reports the error.
    Idempotent on completion_id within a project (an existing interaction is left as it is); an
    id another project has, or an id given twice in one request (the later items), is refused
    (AlreadyExistsError, 409): nothing is dropped silently. CHOSEN: which completion ids the
    client gave (None: all). Metric values with a client id are idempotent too (store.feedback).
    Values are checked and written for the whole batch at once (a few queries, one insert), not
    item by item.

    ROWS: the records' rows, if the caller made them already (`prepare_rows(records,
    writer_kind(engine))`). WRITE_ROWS, if given, writes a batch without feedback in its own
    transaction instead of this thread (a store.sqlite_writer.SqliteWriterProcess's `write`,
    for ENGINE's file).
    """
    if len(records) != len(feedbacks):
        raise ValueError("one feedback list per record")
    results: list[LoggedResult | None] = [None] * len(records)
    if rows is None:
        rows = prepare_rows(records, writer_kind(engine))  # before this store's one write turn
    if write_rows is not None and not any(feedbacks):
        with engine.connect() as connection:
            _unusable_ids(connection, records, chosen, results)
        write_rows(row_batch(rows, [result is None for result in results]))
        return [result or STORED for result in results]
    with write_transaction(engine) as connection:
        _unusable_ids(connection, records, chosen, results)
        prepared = _prepare_values(connection, records, feedbacks, results)
        insert_prepared(connection, rows, keep=[result is None for result in results])
        if prepared:
            _store_values(connection, records, prepared, results)
    return [result or STORED for result in results]
