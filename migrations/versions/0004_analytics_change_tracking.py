"""analytics change tracking: tombstones of deleted rows, and (PostgreSQL) writing transaction ids

The analytics store (store/analytics/) follows the relational store incrementally. It must learn
which rows are new and which were deleted, exactly, whatever order concurrent writers commit in:

- New rows. SQLite has one writer at a time, so a table's rowid grows in commit order: the sync
  reads rowids above the last one it saw (a rowid freed by deleting the newest rows can be used
  again: the tombstone below names it). PostgreSQL commits concurrently: each row of interaction,
  metric_value, comparison and analytics_tombstone gets `change_txid`, the id of the transaction
  that wrote it (a column default, so no writer changes, and COPY fills it too); the sync keeps
  the snapshot it last read (`pg_current_snapshot()`) and reads rows whose transaction is
  visible now and was not then. The column is absent from store.models on purpose (Interlog never
  writes it); migrations.include_object keeps it out of model/migration comparisons. Rows
  written before this migration have NULL: the analytics store's first build reads every row.
- Deleted rows. An AFTER DELETE trigger on each of the three tables writes the deleted row's
  key into analytics_tombstone (per row on SQLite, with its rowid; per statement through a
  transition table on PostgreSQL, so a retention delete of 100,000 rows is one INSERT ... SELECT).
  Nothing else writes there; the sync deletes tombstones once applied, all but the newest, so
  that SQLite (which numbers a row max(id) + 1) never uses an id twice. Interlog updates none of
  these rows; an update made outside Interlog is not seen (a rebuild picks it up).

SQLite: a batch-mode migration of one of these tables (a table rebuild) drops its trigger; such a
migration must create it again (see _sqlite_trigger).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Table and key column of each table the analytics store mirrors.
TRACKED = (("interaction", "completion_id"), ("metric_value", "id"), ("comparison", "id"))
CHANGE_COLUMN = "change_txid"
_TXID = "(pg_current_xact_id()::text::bigint)"


def _sqlite_trigger(table: str, key: str) -> str:
    return (
        f"CREATE TRIGGER {table}_tombstone AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO analytics_tombstone (source, key, row_id) "
        f"VALUES ('{table}', OLD.{key}, OLD.rowid); END"
    )


def upgrade() -> None:
    op.create_table(
        "analytics_tombstone",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            nullable=False,
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_tombstone")),
    )
    if op.get_bind().dialect.name == "sqlite":
        for table, key in TRACKED:
            op.execute(_sqlite_trigger(table, key))
        return
    for table in (*(t for t, _ in TRACKED), "analytics_tombstone"):
        # Nullable and without a default first: adding a column with a volatile default would
        # rewrite every row; the default then applies to new rows only.
        op.execute(f"ALTER TABLE {table} ADD COLUMN {CHANGE_COLUMN} bigint")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {CHANGE_COLUMN} SET DEFAULT {_TXID}")
        op.execute(f"CREATE INDEX ix_{table}_{CHANGE_COLUMN} ON {table} ({CHANGE_COLUMN})")
    for table, key in TRACKED:
        op.execute(
            f"CREATE FUNCTION interlog_{table}_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN INSERT INTO analytics_tombstone (source, key) "
            f"SELECT '{table}', {key}::text FROM gone; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_tombstone AFTER DELETE ON {table} "
            f"REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
            f"EXECUTE FUNCTION interlog_{table}_tombstone()"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _key in TRACKED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_tombstone" + (f" ON {table}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS interlog_{table}_tombstone()")
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_{CHANGE_COLUMN}")
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {CHANGE_COLUMN}")
    op.drop_table("analytics_tombstone")
