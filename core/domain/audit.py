"""The audit log's tables: the hash-chained entries and, on PostgreSQL, the entries waiting to
be sealed when their transaction commits (``core.services.audit_chain``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.domain.base import Base, UTCDateTime


class AuditFields:
    """What an entry says: who did what to which entity, when, and why."""

    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))


class AuditEntry(AuditFields, Base):
    """One changed entity in one successful mutation. Append-only and hash-chained.

    ``seq`` numbers the entries 1, 2, 3, ... without gaps; ``body`` is the canonical JSON of
    the entry's fields (with ``seq``), ``hash`` = sha256(``prev_hash`` + ``body``), and
    ``prev_hash`` is the previous entry's hash (64 zeros for the first); see
    ``core.services.audit_chain``. On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE.
    """

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_entries_at", "at"),
        Index("ix_audit_entries_actor_id", "actor_id"),
        Index("ix_audit_entries_action", "action"),
        Index("ix_audit_entries_entity", "entity_type", "entity_id", "id"),
        Index("ix_audit_entries_request_id", "request_id"),
    )


class AuditPending(AuditFields, Base):
    """PostgreSQL: an entry written by a transaction that has not committed yet.

    ``body_head`` is the entry's canonical JSON up to ``"seq":``. When the transaction
    commits, a deferred trigger (migration 0023) appends each of its rows to ``audit_entries``
    in order, with the next ``seq``, body and hash, and deletes it: the chain's head is locked
    only while the commit itself runs. Empty outside transactions; unused on SQLite.
    """

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    body_head: Mapped[str] = mapped_column(Text)
