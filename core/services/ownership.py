"""Ownership changes: effective-dated rows, one active owner per customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import AssignedBy, Customer, Ownership, User
from core.errors import BadUserInput, InvalidState


async def active_account_counts(session: AsyncSession, user_ids: list[str]) -> dict[str, int]:
    """How many customers each user owns now (one grouped query)."""
    rows = await session.execute(
        select(Ownership.owner_id, func.count())
        .where(Ownership.owner_id.in_(user_ids), Ownership.valid_to.is_(None))
        .group_by(Ownership.owner_id)
    )
    counts = dict.fromkeys(user_ids, 0)
    counts.update({owner: int(n) for owner, n in rows})
    return counts


async def owner_at(session: AsyncSession, customer_id: str, at: datetime) -> str | None:
    """The customer's owner at ``at``, from the effective-dated history."""
    return await session.scalar(
        select(Ownership.owner_id).where(
            Ownership.customer_id == customer_id,
            Ownership.valid_from <= at,
            (Ownership.valid_to.is_(None)) | (Ownership.valid_to > at),
        )
    )


async def check_eligible_owner(session: AsyncSession, owner_id: str, path: str) -> User:
    """The user may own one more customer: exists, active, below capacity (one statement)."""
    # The count runs only for a user with a capacity (CASE evaluates it lazily on both
    # databases), so an unlimited owner's book is never counted.
    owned = (
        select(func.count())
        .where(Ownership.owner_id == User.id, Ownership.valid_to.is_(None))
        .scalar_subquery()
    )
    load = case((User.capacity.is_(None), None), else_=owned)
    row = (await session.execute(select(User, load).where(User.id == owner_id))).first()
    if row is None or not row[0].active:
        raise BadUserInput.one(path, "no active user has this id")
    user, count = row
    if user.capacity is not None and count >= user.capacity:
        raise BadUserInput.one(path, f"user is at capacity ({user.capacity} accounts)")
    return user


async def open_ownership(
    session: AsyncSession,
    customer: Customer,
    owner_id: str,
    *,
    now: datetime,
    actor_id: str | None,
    reason: str | None,
    assigned_by: AssignedBy = AssignedBy.MANUAL,
) -> dict[str, Any]:
    """Give an unowned customer its owner inside the caller's transaction.

    Returns the audit change for the ``owner`` field. The unique partial index on active
    ownerships makes a concurrent second assignment fail at flush, whatever this code saw.
    """
    current = await session.scalar(
        select(Ownership.owner_id).where(
            Ownership.customer_id == customer.id, Ownership.valid_to.is_(None)
        )
    )
    if current is not None:
        raise InvalidState(
            f"Customer {customer.id!r} already has an owner; ownership moves through a handover",
            state="OWNED",
        )
    await check_eligible_owner(session, owner_id, "ownerId")
    session.add(
        Ownership(
            customer_id=customer.id,
            owner_id=owner_id,
            assigned_by=assigned_by,
            reason=reason,
            actor_id=actor_id,
            valid_from=now,
        )
    )
    customer.updated_at = now  # a dirty row: the ORM bumps ``version`` on flush
    await session.flush()
    return {"field": "owner", "before": None, "after": owner_id}
