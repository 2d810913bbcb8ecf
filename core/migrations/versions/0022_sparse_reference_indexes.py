"""indexes of mostly empty customer references hold only the rows that have one

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed here, not imported from the models: a migration keeps meaning what it meant.
COLUMNS = ("backup_owner_id", "parent_id", "group_director_id")


def _reindex(partial: bool) -> None:
    with op.batch_alter_table("customers") as batch_op:
        for column in COLUMNS:
            name = f"ix_customers_{column}"
            where = sa.text(f"{column} IS NOT NULL") if partial else None
            batch_op.drop_index(name)
            batch_op.create_index(name, [column], sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _reindex(partial=True)


def downgrade() -> None:
    _reindex(partial=False)
