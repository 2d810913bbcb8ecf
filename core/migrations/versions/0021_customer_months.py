"""the monthly roll-up of orders and referrals per customer (filled from the activities), and
the warnings of each stored health

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ``core.insight.rollup.sql_month`` as it stands today, per dialect.
_MONTH = {
    "sqlite": "CAST(substr(at, 1, 4) AS INTEGER) * 12 + CAST(substr(at, 6, 2) AS INTEGER) - 1",
    "postgresql": "CAST(EXTRACT(year FROM timezone('UTC', at)) AS INTEGER) * 12"
    " + CAST(EXTRACT(month FROM timezone('UTC', at)) AS INTEGER) - 1",
}


def upgrade() -> None:
    op.create_table(
        "customer_months",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("referrals", sa.Integer(), nullable=False),
        sa.Column("prev_order_month", sa.Integer(), nullable=True),
        sa.Column("prev_referral_month", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_months_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "month", name=op.f("pk_customer_months")),
    )
    month = _MONTH[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO customer_months (customer_id, month, orders, amount, referrals, "
        "prev_order_month, prev_referral_month) "
        "SELECT customer_id, m, orders, amount, referrals, "
        "MAX(CASE WHEN orders > 0 THEN m END) OVER w, "
        "MAX(CASE WHEN referrals > 0 THEN m END) OVER w "
        f"FROM (SELECT customer_id, {month} AS m, "
        "SUM(CASE WHEN kind = 'ORDER' THEN 1 ELSE 0 END) AS orders, "
        "COALESCE(SUM(CASE WHEN kind = 'ORDER' THEN amount ELSE 0 END), 0) AS amount, "
        "SUM(CASE WHEN kind = 'REFERRAL' THEN 1 ELSE 0 END) AS referrals "
        "FROM activities WHERE kind IN ('ORDER', 'REFERRAL') GROUP BY customer_id, m) AS g "
        "WINDOW w AS (PARTITION BY customer_id ORDER BY m "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    op.create_index(
        "ix_customer_months_month",
        "customer_months",
        ["month", "customer_id"],
        postgresql_include=[
            "orders",
            "amount",
            "referrals",
            "prev_order_month",
            "prev_referral_month",
        ],
    )
    op.create_table(
        "customer_health_warnings",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("signal", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_health_warnings_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "code", name=op.f("pk_customer_health_warnings")),
    )
    op.create_index(
        "ix_customer_health_warnings_signal",
        "customer_health_warnings",
        ["signal", "customer_id"],
    )
    # The stored healths so far have no warning rows: store them again (as a re-rank does).
    op.execute("UPDATE customer_insight SET health_due = true")


def downgrade() -> None:
    op.drop_index("ix_customer_health_warnings_signal", table_name="customer_health_warnings")
    op.drop_table("customer_health_warnings")
    op.drop_index("ix_customer_months_month", table_name="customer_months")
    op.drop_table("customer_months")
