"""The audit writer: field-level before/after entries written inside the use case's transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import before_commit, in_transaction
from core.domain import AuditEntry
from core.logs import current_request_id
from core.services import audit_chain


def to_camel(snake: str) -> str:
    """``payment_terms_days`` → ``paymentTermsDays`` (strawberry's own field naming)."""
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def audit_value(value: Any) -> Any:
    """A JSON-safe rendering of a field value, stable across backends."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [audit_value(v) for v in value]
    if isinstance(value, dict):
        return {k: audit_value(v) for k, v in value.items()}
    return value


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level changes between two snapshots keyed by GraphQL field name."""
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = audit_value(before.get(name)), audit_value(after.get(name))
        if old != new:
            changes.append({"field": name, "before": old, "after": new})
    return changes


@dataclass(frozen=True)
class Actor:
    """Who performs a use case: a user id, or None for the system itself.

    ``roles``: the user's assigned roles when the caller already holds them, read with the
    request's policy version (a GraphQL request's permission view); None makes a use case that
    needs them read them (``core.services.parties.actor_roles``).
    """

    user_id: str | None
    roles: frozenset[str] | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(None)


class AuditWriter:
    """Records entries in the running transaction; nothing when nothing changed.

    The entries are appended to the hash chain (``core.services.audit_chain``) in the order
    recorded, in one INSERT just before the transaction commits, so that the chain's append
    lock is held only while committing.
    """

    def __init__(self, session: AsyncSession, actor: Actor, at: datetime) -> None:
        if not in_transaction(session):
            raise RuntimeError("audit entries are written inside Database.transaction()")
        self._session = session
        self._actor = actor
        self._at = at

    def record(
        self,
        action: str,
        entity_type: str,
        entity_id: str,
        changes: list[dict[str, Any]],
        reason: str | None = None,
    ) -> None:
        if not changes:
            return
        self._session.info.setdefault(_PENDING, []).append(
            {
                "at": self._at,
                "actor_id": self._actor.user_id,
                "action": action,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "changes": changes,
                "reason": reason,
                "request_id": current_request_id.get(),
            }
        )
        before_commit(self._session, _PENDING, _append_pending)

    def record_import(self, action: str, field: str, customer_ids: Iterable[str]) -> None:
        """One entry per customer of a bulk import, saying how many rows it received."""
        for customer_id, count in sorted(Counter(customer_ids).items()):
            self.record(
                action,
                "Customer",
                customer_id,
                [{"field": field, "before": None, "after": f"{count} imported"}],
            )


_PENDING = "baton_audit_pending"


async def _append_pending(session: AsyncSession) -> None:
    await audit_chain.append(session, session.info.pop(_PENDING, []))


@dataclass(frozen=True)
class AuditFilter:
    """The ``auditLog`` filter; every part optional."""

    entity_type: str | None = None
    entity_id: str | None = None
    actor_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_query(f: AuditFilter, visible_customers: Select[Any] | None = None) -> Select[AuditEntry]:
    """Entries matching ``f``; paginate with ``core.services.pagination`` on ``id``.

    ``visible_customers`` (ids) narrows the log to entries about those customers, for viewers
    whose scope is narrower than ALL.
    """
    stmt = select(AuditEntry)
    if visible_customers is not None:
        stmt = stmt.where(
            AuditEntry.entity_type == "Customer", AuditEntry.entity_id.in_(visible_customers)
        )
    if f.entity_type is not None:
        stmt = stmt.where(AuditEntry.entity_type == f.entity_type)
    if f.entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == f.entity_id)
    if f.actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == f.actor_id)
    if f.action is not None:
        stmt = stmt.where(AuditEntry.action == f.action)
    if f.since is not None:
        stmt = stmt.where(AuditEntry.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(AuditEntry.at < f.until)
    return stmt
