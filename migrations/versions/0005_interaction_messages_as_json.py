"""interaction.messages as json, not jsonb (PostgreSQL)

The messages of an interaction are stored and read back whole: nothing queries them with jsonb
operators. Reading them as text is what costs: the analytics store's first build reads every
interaction (`messages::text`), and converting jsonb to text took 2.3 s of PostgreSQL CPU per
100,000 realistic interactions (~2 KB of messages each), most of the build's PostgreSQL side,
where reading the completions (text) of the same rows took 0.08 s. A json value is its text as
sent: its output is the stored text, and it keeps the document as the gateway logged it (key
order, duplicate keys), which suits a log better than jsonb's normalised form.

json accepts a `\\u0000` escape that jsonb refuses (and that cannot become text): Interlog never
writes one (store.bulk_insert replaces U+0000 by U+FFFD in json as it did in jsonb), so the
downgrade's conversion back to jsonb holds for Interlog's rows.

PostgreSQL: ALTER COLUMN ... TYPE rewrites the table and its indexes, under an ACCESS EXCLUSIVE
lock (minutes for millions of rows); the column's neighbours keep their defaults (change_txid
of 0004) and the table its statement-level triggers. SQLite: nothing to do (JSON is text there;
no batch mode either, whose table rebuild would drop 0004's triggers).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Table and column of each document changed here.
COLUMNS = (("interaction", "messages"),)


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {to} USING {column}::text::{to}"
        )


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
