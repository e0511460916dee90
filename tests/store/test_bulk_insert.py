"""Bulk inserts (store/bulk_insert.py) of batches of every awkward length, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from store.bulk_insert import statement_sizes, writer_kind
from store.catalog import create_project
from store.interactions import (
    INTERACTION_TABLE,
    LABEL_TABLE,
    insert_row_batch,
    prepare_rows,
    row_batch,
    write_transaction,
)
from tests.store.records import interaction_record


@pytest.mark.parametrize("per_statement", [250, 7, 1])
def test_statement_sizes_cover_every_row_with_few_distinct_statements(per_statement: int) -> None:
    shapes: set[int] = set()
    for rows in range(0, 1201):
        sizes = list(statement_sizes(rows, per_statement))
        assert sum(sizes) == rows
        assert all(0 < size <= per_statement for size in sizes)
        # Full statements first, then a strictly shrinking rest: few steps per batch.
        rest = [size for size in sizes if size != per_statement]
        assert rest == sorted(set(rest), reverse=True)
        shapes.update(sizes)
    # One prepared statement per distinct size: at most the full one and the powers of two
    # below it, whatever lengths the batches have (sqlite3 caches 128 per connection).
    assert len(shapes) <= per_statement.bit_length() + 1
    assert per_statement in shapes


def test_batches_of_odd_lengths_store_each_interaction_and_label_once(engine: Engine) -> None:
    project = create_project(engine, key="p")
    lengths = [1, 3, 100, 249, 250, 251, 517]
    batches = [
        [interaction_record(project.id or 0, labels={"n": str(i)}) for i in range(length)]
        for length in lengths
    ]
    kind = writer_kind(engine)
    for records in batches:
        with write_transaction(engine) as connection:
            assert insert_row_batch(connection, row_batch(prepare_rows(records, kind))) == len(
                records
            )
    # A replayed batch (the journal after a crash) adds nothing.
    with write_transaction(engine) as connection:
        insert_row_batch(connection, row_batch(prepare_rows(batches[-1], kind)))

    with engine.connect() as connection:
        ids = connection.execute(select(INTERACTION_TABLE.c.completion_id)).scalars()
        stored = [str(ident) for ident in ids]
        labels = connection.execute(select(func.count()).select_from(LABEL_TABLE)).scalar_one()
    expected = {record["completion_id"] for records in batches for record in records}
    assert len(stored) == len(expected) and set(stored) == expected
    assert labels == sum(lengths)
