"""e-mail notices, their outbox cursor, and each user's locale

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-04 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0015"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=8), nullable=True))
    op.create_table(
        "email_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("recipient_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "SENT",
                "FAILED",
                name="noticestatus",
                native_enum=False,
                length=32,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", core.domain.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_email_notices_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["workflow_events.id"],
            name=op.f("fk_email_notices_event_id_workflow_events"),
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["users.id"], name=op.f("fk_email_notices_recipient_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_notices")),
        sa.UniqueConstraint("key", name=op.f("uq_email_notices_key")),
    )
    for column in ("event_id", "customer_id", "recipient_id", "status", "next_attempt_at"):
        op.create_index(op.f(f"ix_email_notices_{column}"), "email_notices", [column])
    op.create_table(
        "email_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_cursor")),
    )


def downgrade() -> None:
    op.drop_table("email_cursor")
    for column in ("event_id", "customer_id", "recipient_id", "status", "next_attempt_at"):
        op.drop_index(op.f(f"ix_email_notices_{column}"), table_name="email_notices")
    op.drop_table("email_notices")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locale")
