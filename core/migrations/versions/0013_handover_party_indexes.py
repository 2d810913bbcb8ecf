"""handover party indexes

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-04 14:45:00

A handover is visible to its parties (outgoing owner, incoming owner, the outgoing owner's
manager, the approver of its request): index the columns those conditions look up.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handovers_from_owner_id"), ["from_owner_id"])
        batch_op.create_index(batch_op.f("ix_handovers_to_owner_id"), ["to_owner_id"])
    with op.batch_alter_table("reassignment_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reassignment_requests_reviewed_by_id"), ["reviewed_by_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("reassignment_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reassignment_requests_reviewed_by_id"))
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handovers_to_owner_id"))
        batch_op.drop_index(batch_op.f("ix_handovers_from_owner_id"))
