"""audit hash chain: seq, body, prev_hash, hash; append-only trigger on PostgreSQL

Existing entries are chained in ``id`` order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.domain.base
from core.services.audit_chain import GENESIS, body_of, chain_hash

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000

APPEND_ONLY = """
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
        USING HINT = 'audit entries are never updated or deleted';
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _backfill()
    with op.batch_alter_table("audit_entries") as batch:
        for name in ("seq", "body", "prev_hash", "hash"):
            batch.alter_column(name, nullable=False)
        batch.create_unique_constraint(batch.f("uq_audit_entries_seq"), ["seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER audit_entries_no_update_delete BEFORE UPDATE OR DELETE "
            "ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE "
            "ON audit_entries FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()"
        )


def _backfill() -> None:
    """Chain the existing entries in ``id`` order, as they were appended."""
    entries = sa.table(
        "audit_entries",
        sa.column("id", sa.Integer()),
        sa.column("at", core.domain.base.UTCDateTime(timezone=True)),
        sa.column("actor_id", sa.String()),
        sa.column("action", sa.String()),
        sa.column("entity_type", sa.String()),
        sa.column("entity_id", sa.String()),
        sa.column("changes", sa.JSON()),
        sa.column("reason", sa.Text()),
        sa.column("request_id", sa.String()),
        sa.column("seq", sa.Integer()),
        sa.column("body", sa.Text()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    fields = [c for c in entries.c if c.name not in {"seq", "body", "prev_hash", "hash"}]
    store = (
        sa.update(entries)
        .where(entries.c.id == sa.bindparam("b_id"))
        .values(
            seq=sa.bindparam("b_seq"),
            body=sa.bindparam("b_body"),
            prev_hash=sa.bindparam("b_prev_hash"),
            hash=sa.bindparam("b_hash"),
        )
    )
    bind = op.get_bind()
    seq, prev, last_id = 0, GENESIS, None
    while True:
        query = sa.select(*fields).order_by(entries.c.id).limit(_BATCH)
        if last_id is not None:
            query = query.where(entries.c.id > last_id)
        rows = bind.execute(query).all()
        if not rows:
            return
        params = []
        for row in rows:
            seq += 1
            body = body_of({**row._mapping, "seq": seq})
            digest = chain_hash(prev, body)
            params.append(
                {
                    "b_id": row.id,
                    "b_seq": seq,
                    "b_body": body,
                    "b_prev_hash": prev,
                    "b_hash": digest,
                }
            )
            prev, last_id = digest, row.id
        bind.execute(store, params)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_entries_no_truncate ON audit_entries")
        op.execute("DROP TRIGGER audit_entries_no_update_delete ON audit_entries")
        op.execute("DROP FUNCTION audit_entries_append_only()")
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_constraint(batch.f("uq_audit_entries_seq"), type_="unique")
        for name in ("hash", "prev_hash", "body", "seq"):
            batch.drop_column(name)
