"""an index on customers.first_contact_id, for the scope's first-contact branch

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 12:30:00

A narrow scope's customer page reads the scope's customers branch by branch, each through an
index (``CustomerScope.ids``); the first-contact branch had none and scanned every customer.
Sparse, like the other customer references (0022): it holds only the rows that have one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_customers_first_contact_id"


def upgrade() -> None:
    present = sa.text("first_contact_id IS NOT NULL")
    op.create_index(
        NAME, "customers", ["first_contact_id"], sqlite_where=present, postgresql_where=present
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="customers")
