"""risk warnings the health sweep found raised; leases of open subscription connections

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_warning_states",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("signal", sa.String(length=100), nullable=False),
        sa.Column("indicator", sa.String(length=100), nullable=True),
        sa.Column("raised_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_risk_warning_states_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "code", name=op.f("pk_risk_warning_states")),
    )
    op.create_table(
        "subscription_leases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("opened_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_leases")),
    )
    op.create_index("ix_subscription_leases_user", "subscription_leases", ["user_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_subscription_leases_user", table_name="subscription_leases")
    op.drop_table("subscription_leases")
    op.drop_table("risk_warning_states")
