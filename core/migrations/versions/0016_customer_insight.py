"""customer insight: surveys, indicator thresholds, tier overrides, referral and payment
activities

Revision ID: 0016
Revises: 0010
Create Date: 2026-12-04 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ("ORDER", "INTERACTION", "COMPLAINT", "LEAVE_INTENT")
NEW_KINDS = (*OLD_KINDS, "REFERRAL", "PAYMENT")


def _kinds(values: Sequence[str]) -> sa.Enum:
    return sa.Enum(
        *values, name="activitykind", native_enum=False, length=32, create_constraint=True
    )


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32, create_constraint=True)


def upgrade() -> None:
    with op.batch_alter_table("activities", recreate="always") as batch_op:
        batch_op.alter_column(
            "kind", existing_type=_kinds(OLD_KINDS), type_=_kinds(NEW_KINDS), nullable=False
        )
        batch_op.add_column(sa.Column("days_late", sa.Integer(), nullable=True))
    op.create_table(
        "surveys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("kind", _enum("surveykind", "NPS", "CES", "SATISFACTION"), nullable=False),
        sa.Column(
            "occasion",
            _enum("surveyoccasion", "QUARTERLY", "POST_HANDOVER", "POST_DELIVERY", "AD_HOC"),
            nullable=False,
        ),
        sa.Column("status", _enum("surveystatus", "SCHEDULED", "ANSWERED"), nullable=False),
        sa.Column("due_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", core.domain.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("handover_id", sa.String(length=40), nullable=True),
        sa.Column("dedupe_key", sa.String(length=160), nullable=True),
        sa.Column("recorded_by_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "score IS NULL OR (kind = 'NPS' AND score BETWEEN 0 AND 10)"
            " OR (kind = 'CES' AND score BETWEEN 1 AND 7)"
            " OR (kind = 'SATISFACTION' AND score BETWEEN 1 AND 5)",
            name=op.f("ck_surveys_score"),
        ),
        sa.CheckConstraint(
            "(status = 'ANSWERED') = (score IS NOT NULL AND answered_at IS NOT NULL)",
            name=op.f("ck_surveys_answered"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_surveys_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"], ["handovers.id"], name=op.f("fk_surveys_handover_id_handovers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_surveys_dedupe_key")),
    )
    op.create_index("ix_surveys_customer_answered", "surveys", ["customer_id", "answered_at"])
    op.create_index("ix_surveys_kind_answered", "surveys", ["kind", "answered_at"])
    op.create_table(
        "indicator_thresholds",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("green", sa.Float(), nullable=False),
        sa.Column("yellow", sa.Float(), nullable=False),
        sa.Column("updated_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_indicator_thresholds")),
    )
    op.create_table(
        "tier_overrides",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("expires_at", core.domain.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("set_by_id", sa.String(length=64), nullable=True),
        sa.Column("set_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_tier_overrides_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "tier", name=op.f("pk_tier_overrides")),
    )


def downgrade() -> None:
    op.drop_table("tier_overrides")
    op.drop_table("indicator_thresholds")
    op.drop_index("ix_surveys_kind_answered", table_name="surveys")
    op.drop_index("ix_surveys_customer_answered", table_name="surveys")
    op.drop_table("surveys")
    with op.batch_alter_table("activities", recreate="always") as batch_op:
        batch_op.drop_column("days_late")
        batch_op.alter_column(
            "kind", existing_type=_kinds(NEW_KINDS), type_=_kinds(OLD_KINDS), nullable=False
        )
