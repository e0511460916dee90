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


def test_nul_characters_from_a_model_are_stored_not_refused(engine: Engine) -> None:
    """Models do emit U+0000. SQLite keeps it; PostgreSQL cannot hold it in text or jsonb and
    refused the whole COPY, so the batch's interactions were set aside; there it is U+FFFD."""
    project = create_project(engine, key="p")
    nul = interaction_record(
        project.id or 0,
        completion="a\x00b",
        user_id="u\x00",
        messages=[{"role": "user", "content": "x\x00y", "extra\x00": ["\x00"]}],
        params={"stop": ["\x00"]},
        labels={"k\x00": "v\x00"},
    )
    literal = interaction_record(project.id or 0, completion="a literal \\u0000 is kept")
    for _ in range(2):  # the second time as a replay: only new rows (none) are kept
        with write_transaction(engine) as connection:
            batch = row_batch(prepare_rows([nul, literal], writer_kind(engine)))
            insert_row_batch(connection, batch)

    kept = "\x00" if engine.dialect.name == "sqlite" else "\ufffd"
    names = ("completion", "user_id", "messages", "params")
    columns = [INTERACTION_TABLE.c[name] for name in names]
    with engine.connect() as connection:
        rows = {
            str(row.completion_id): row
            for row in connection.execute(select(INTERACTION_TABLE.c.completion_id, *columns))
        }
        labels = connection.execute(
            select(LABEL_TABLE.c.key, LABEL_TABLE.c.value).where(
                LABEL_TABLE.c.completion_id == INTERACTION_TABLE.c.completion_id,
                INTERACTION_TABLE.c.completion == f"a{kept}b",
            )
        ).all()
    assert len(rows) == 2
    row = rows[nul["completion_id"]]
    assert (row.completion, row.user_id) == (f"a{kept}b", f"u{kept}")
    assert row.messages == [{"role": "user", "content": f"x{kept}y", f"extra{kept}": [kept]}]
    assert row.params == {"stop": [kept]}
    assert labels == [(f"k{kept}", f"v{kept}")]
    assert rows[literal["completion_id"]].completion == "a literal \\u0000 is kept"
