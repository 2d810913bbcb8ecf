"""account hierarchy and account teams

Revision ID: 0017
Revises: 0010
Create Date: 2026-12-04 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STRATEGIES = ("FIXED_OWNER", "FIRST_CONTACT", "ROUND_ROBIN", "LEAST_LOADED")
NEW_STRATEGIES = (*OLD_STRATEGIES, "INHERIT_PARENT_OWNER")
TEAM_ROLES = ("SERVICE", "PRE_SALES", "TECHNICAL", "FINANCE_CONTACT", "EXECUTIVE_SPONSOR")


def _strategies(values: tuple[str, ...]) -> str:
    return "strategy IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _set_strategies(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("assignment_rules", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_assignment_rules_strategy"), type_="check")
        batch_op.create_check_constraint(op.f("ck_assignment_rules_strategy"), _strategies(values))


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("root_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("path", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("depth", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("group_director_id", sa.String(length=64), nullable=True))
    # Every existing customer is a top-level account.
    op.execute("UPDATE customers SET root_id = id, path = id || '/', depth = 0")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.alter_column("root_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("path", existing_type=sa.String(length=512), nullable=False)
        batch_op.alter_column("depth", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            op.f("fk_customers_parent_id_customers"), "customers", ["parent_id"], ["id"]
        )
        batch_op.create_foreign_key(
            op.f("fk_customers_group_director_id_users"), "users", ["group_director_id"], ["id"]
        )
        batch_op.create_index("ix_customers_parent_id", ["parent_id"])
        batch_op.create_index("ix_customers_root_id", ["root_id"])
        batch_op.create_index("ix_customers_path", ["path"])
        batch_op.create_index("ix_customers_group_director_id", ["group_director_id"])

    op.create_table(
        "team_members",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                *TEAM_ROLES, name="teamrole", native_enum=False, length=32, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("added_at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("added_by_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_team_members_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_team_members_user_id_users")
        ),
        sa.PrimaryKeyConstraint("customer_id", "user_id", name=op.f("pk_team_members")),
    )
    op.create_index("ix_team_members_user_id", "team_members", ["user_id"])
    _set_strategies(NEW_STRATEGIES)
    # Team changes reach the outbox without a handover.
    with op.batch_alter_table("workflow_events", schema=None) as batch_op:
        batch_op.alter_column("handover_id", existing_type=sa.String(length=40), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM workflow_events WHERE handover_id IS NULL")
    with op.batch_alter_table("workflow_events", schema=None) as batch_op:
        batch_op.alter_column("handover_id", existing_type=sa.String(length=40), nullable=False)
    op.execute("DELETE FROM assignment_rules WHERE strategy = 'INHERIT_PARENT_OWNER'")
    _set_strategies(OLD_STRATEGIES)
    op.drop_index("ix_team_members_user_id", table_name="team_members")
    op.drop_table("team_members")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_group_director_id")
        batch_op.drop_index("ix_customers_path")
        batch_op.drop_index("ix_customers_root_id")
        batch_op.drop_index("ix_customers_parent_id")
        batch_op.drop_constraint(op.f("fk_customers_group_director_id_users"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_customers_parent_id_customers"), type_="foreignkey")
        batch_op.drop_column("group_director_id")
        batch_op.drop_column("depth")
        batch_op.drop_column("path")
        batch_op.drop_column("root_id")
        batch_op.drop_column("parent_id")
