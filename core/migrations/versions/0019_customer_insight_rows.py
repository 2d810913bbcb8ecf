"""materialised customer insight: engagement and RFM rows, dirty markers, quintile bounds,
health rows

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = core.domain.base.UTCDateTime(timezone=True)
    op.create_table(
        "customer_insight",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("first_activity_at", moment, nullable=True),
        sa.Column("last_activity_at", moment, nullable=True),
        sa.Column("engagement_stage", sa.String(length=16), nullable=False),
        sa.Column("stage_rank", sa.Integer(), nullable=False),
        sa.Column("last_order_at", moment, nullable=True),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("recency", sa.Integer(), nullable=True),
        sa.Column("frequency", sa.Integer(), nullable=True),
        sa.Column("monetary", sa.Integer(), nullable=True),
        sa.Column("rfm_score", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=16), nullable=True),
        sa.Column("stale_at", moment, nullable=True),
        sa.Column("health_due", sa.Boolean(), nullable=False),
        sa.Column("refreshed_at", moment, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_insight_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_insight")),
    )
    op.create_index("ix_customer_insight_stage", "customer_insight", ["stage_rank", "customer_id"])
    op.create_index("ix_customer_insight_rfm", "customer_insight", ["rfm_score", "customer_id"])
    op.create_index(
        "ix_customer_insight_stage_rfm",
        "customer_insight",
        ["engagement_stage", "rfm_score", "customer_id"],
    )
    op.create_index("ix_customer_insight_segment", "customer_insight", ["segment"])
    op.create_index("ix_customer_insight_stale_at", "customer_insight", ["stale_at"])
    op.create_index(
        "ix_customer_insight_health_due",
        "customer_insight",
        ["health_due", "refreshed_at", "customer_id"],
    )
    op.create_table(
        "insight_dirty",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("marked_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_dirty")),
    )
    op.create_index(
        op.f("ix_insight_dirty_customer_id"), "insight_dirty", ["customer_id"], unique=False
    )
    op.create_table(
        "insight_ranks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bounds", sa.JSON(), nullable=False),
        sa.Column("ranked_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_ranks")),
    )

    op.create_table(
        "customer_health",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("warnings", sa.Integer(), nullable=False),
        sa.Column("computed_at", moment, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_health_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_health")),
    )


def downgrade() -> None:
    op.drop_table("customer_health")
    op.drop_table("insight_ranks")
    op.drop_index(op.f("ix_insight_dirty_customer_id"), table_name="insight_dirty")
    op.drop_table("insight_dirty")
    op.drop_index("ix_customer_insight_health_due", table_name="customer_insight")
    op.drop_index("ix_customer_insight_stale_at", table_name="customer_insight")
    op.drop_index("ix_customer_insight_segment", table_name="customer_insight")
    op.drop_index("ix_customer_insight_stage_rfm", table_name="customer_insight")
    op.drop_index("ix_customer_insight_rfm", table_name="customer_insight")
    op.drop_index("ix_customer_insight_stage", table_name="customer_insight")
    op.drop_table("customer_insight")
