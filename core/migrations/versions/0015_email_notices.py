"""e-mail notices, their outbox cursor, each user's locale; NOTIFY on new workflow events

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-04 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every worker LISTENs here for new outbox events (core.notify.subscriptions); the payload is
# only the event id, and PostgreSQL delivers it when the inserting transaction commits.
NOTIFY_FUNCTION = """
CREATE FUNCTION baton_notify_workflow_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('baton_workflow_events', NEW.id::text);
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER workflow_events_notify AFTER INSERT ON workflow_events
FOR EACH ROW EXECUTE FUNCTION baton_notify_workflow_event()
"""


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
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER workflow_events_notify ON workflow_events")
        op.execute("DROP FUNCTION baton_notify_workflow_event()")
    op.drop_table("email_cursor")
    for column in ("event_id", "customer_id", "recipient_id", "status", "next_attempt_at"):
        op.drop_index(op.f(f"ix_email_notices_{column}"), table_name="email_notices")
    op.drop_table("email_notices")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locale")
