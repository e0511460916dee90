"""interaction without foreign keys

PostgreSQL checks a foreign key row by row (an AFTER trigger that locks the parent row): in
bulk ingest the interaction's checks on project and model cost 13-15 µs of database CPU per
interaction, a quarter of the database's work (bench/ingest.py, alternating runs: 48-58 µs with
the keys, 35-41 µs without). Logging tables take rows at a high rate and their parents are
never deleted under them, so, as migration 0002 did for labels, the keys go:

- a project is deleted only when it holds no interactions (store.catalog_admin.delete_project),
  so the ON DELETE CASCADE never fired; and Interlog deletes no model and no A/B test, so the
  ON DELETE SET NULL never fired either;
- ids are resolved from keys before any write (routing, the ingest API's catalog lookup).

What changes: an interaction whose project was deleted at the same moment (an empty project,
deleted between the catalog lookup and the write) is kept, with an id that names no project,
where the cascade would have deleted it with the project; rows deleted or written outside
Interlog are not checked. On SQLite the table is rebuilt (batch mode copies its rows).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Name, column, parent table and ON DELETE action of each key, as 0001 made them.
_KEYS = (
    ("fk_interaction_project_id_project", "project_id", "project", "CASCADE"),
    ("fk_interaction_model_id_model", "model_id", "model", "SET NULL"),
    ("fk_interaction_ab_test_id_ab_test", "ab_test_id", "ab_test", "SET NULL"),
)


def upgrade() -> None:
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        for name, _column, _parent, _action in _KEYS:
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    # Rows naming a parent that no longer exists would block the constraints: do what the
    # keys would have done when the parent was deleted.
    for _name, column, parent, action in _KEYS:
        orphan = (
            f"{column} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {parent} WHERE {parent}.id = interaction.{column})"
        )
        if action == "CASCADE":
            op.execute(f"DELETE FROM interaction WHERE {orphan}")
        else:
            op.execute(f"UPDATE interaction SET {column} = NULL WHERE {orphan}")
    op.execute(
        "DELETE FROM interaction_label WHERE NOT EXISTS (SELECT 1 FROM interaction "
        "WHERE interaction.completion_id = interaction_label.completion_id)"
    )
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        for name, column, parent, action in _KEYS:
            batch_op.create_foreign_key(name, parent, [column], ["id"], ondelete=action)
