"""audit entries sealed at commit: PostgreSQL appends to the chain in a deferred trigger

A transaction writes its audit entries to ``audit_pending``. When it commits, a deferred
constraint trigger takes the chain's advisory lock, appends each pending row to
``audit_entries`` (next ``seq``, body, ``prev_hash``, sha256 hash) and deletes it. The lock is
held only while the commit runs, never across a round trip to the client. The table is
unlogged on PostgreSQL: its rows never outlive their transaction. SQLite gets the
table too (the models are the same on both) but does not use it: its writers are serialised
by ``BEGIN IMMEDIATE``.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed here, not imported: a migration keeps meaning what it meant. The lock key is the
# bytes of "batonAud" (the key the application took before this migration); the genesis hash
# is 64 zeros; the body's last key is "seq" (keys are sorted), so the body is ``body_head``,
# the number and "}".
SEAL = """
CREATE FUNCTION audit_seal_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq integer;
    head_hash text;
    sealed_body text;
BEGIN
    PERFORM pg_advisory_xact_lock(7089075310397846884);
    -- A statement of its own after the lock: it sees every append committed before.
    SELECT seq, hash INTO head_seq, head_hash FROM audit_entries ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
    END IF;
    sealed_body := NEW.body_head || (head_seq + 1)::text || '}';
    INSERT INTO audit_entries (at, actor_id, action, entity_type, entity_id, changes, reason,
                               request_id, seq, body, prev_hash, hash)
    VALUES (NEW.at, NEW.actor_id, NEW.action, NEW.entity_type, NEW.entity_id, NEW.changes,
            NEW.reason, NEW.request_id, head_seq + 1, sealed_body, head_hash,
            encode(sha256(convert_to(head_hash || sealed_body, 'UTF8')), 'hex'));
    DELETE FROM audit_pending WHERE id = NEW.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("body_head", sa.Text(), nullable=False),
        sa.Column("at", core.domain.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Its rows never outlive their transaction: nothing there needs the write-ahead log.
        op.execute("ALTER TABLE audit_pending SET UNLOGGED")
        op.execute(SEAL)
        # Deferred: fired by COMMIT, in the order the rows were inserted.
        op.execute(
            "CREATE CONSTRAINT TRIGGER audit_pending_seal AFTER INSERT ON audit_pending "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_seal_pending()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_pending_seal ON audit_pending")
        op.execute("DROP FUNCTION audit_seal_pending()")
    op.drop_table("audit_pending")
