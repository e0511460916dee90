"""interaction.tool_calls: the tool calls of an answer

An answer with `tool_calls` and `content: null` was stored as `completion = ''`: the tool names
and arguments were in no column. They are kept as OpenAI's `message.tool_calls` list
([{id, type, function: {name, arguments}}]; a stream's deltas assembled by the gateway), JSON
like the messages (PostgreSQL `json`: stored and read back whole), NULL when the answer called
no tool.

Adding a nullable column without a default changes no row: instant on PostgreSQL (no rewrite),
a plain ALTER TABLE ADD COLUMN on SQLite (no batch mode, whose table rebuild would drop 0004's
triggers). The analytics store's layout follows (store/analytics/layout.py LAYOUT_VERSION 4):
its next sync rebuilds it from the relational store.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_text = sa.JSON().with_variant(postgresql.JSON(), "postgresql")
    op.add_column("interaction", sa.Column("tool_calls", json_text, nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("interaction", "tool_calls")
        return
    # SQLite 3.35+ drops a column in place (batch mode would rebuild the table without the
    # change-tracking triggers of 0004).
    op.execute("ALTER TABLE interaction DROP COLUMN tool_calls")
