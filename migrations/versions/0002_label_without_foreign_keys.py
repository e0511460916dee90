"""interaction_label without foreign keys

The label table is a derived index of interaction.labels, written in the same transaction as
its interaction (store.interactions) and only there. Its two foreign keys (to interaction and
to project) made PostgreSQL run a referential check per label row: with two labels per
interaction that was four checks, about 22 µs of database CPU per interaction and over a third
of the database's work in bulk ingest (bench/ingest.py, perf). The interaction row keeps its
own foreign keys. Interlog deletes a project only when it holds no interactions, and then
removes any label rows of it explicitly (store.catalog_admin.delete_project).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TO_INTERACTION = "fk_interaction_label_completion_id_interaction"
_TO_PROJECT = "fk_interaction_label_project_id_project"


def upgrade() -> None:
    with op.batch_alter_table("interaction_label", schema=None) as batch_op:
        batch_op.drop_constraint(_TO_INTERACTION, type_="foreignkey")
        batch_op.drop_constraint(_TO_PROJECT, type_="foreignkey")


def downgrade() -> None:
    # Label rows without their interaction (none, unless written or deleted outside
    # Interlog) would block the constraints: remove them first.
    op.execute(
        "DELETE FROM interaction_label WHERE NOT EXISTS (SELECT 1 FROM interaction "
        "WHERE interaction.completion_id = interaction_label.completion_id)"
    )
    with op.batch_alter_table("interaction_label", schema=None) as batch_op:
        batch_op.create_foreign_key(
            _TO_INTERACTION, "interaction", ["completion_id"], ["completion_id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            _TO_PROJECT, "project", ["project_id"], ["id"], ondelete="CASCADE"
        )
