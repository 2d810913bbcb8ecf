"""customer paths compared byte by byte on PostgreSQL (subtrees as index ranges)

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _path_collation(collation: str | None) -> None:
    # SQLite compares text byte by byte already; PostgreSQL rebuilds ix_customers_path.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "customers",
        "path",
        type_=sa.String(length=512, collation=collation),
        existing_type=sa.String(length=512),
        existing_nullable=False,
    )


def upgrade() -> None:
    _path_collation("C")


def downgrade() -> None:
    _path_collation(None)
