"""workflow events outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handover_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_workflow_events_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"], ["handovers.id"], name=op.f("fk_workflow_events_handover_id_handovers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_workflow_events_dedupe_key")),
    )
    with op.batch_alter_table("workflow_events") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_events_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_workflow_events_handover_id"), ["handover_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("workflow_events")
