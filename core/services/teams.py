"""Account teams: the people around a key account with a team role, beside its one owner.

The owner or the owner's manager adds and removes members (audited on the customer); others
are FORBIDDEN. A member sees the account within their own role's field rules (the reading
scope, ``CustomerScope``); the team stays through a handover, since it belongs to the account.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.domain import Customer, Ownership, TeamMember, TeamRole, User, WorkflowEventRecord
from core.errors import BadUserInput, FieldError, Forbidden
from core.services.audit import Actor, AuditWriter
from core.services.customers import EVERYTHING, CustomerScope, load_customer
from core.services.events import TEAM_MEMBER_REMOVED, Outbox
from core.services.profile import check_users_active


async def members_of(session: AsyncSession, customer_ids: Sequence[str]) -> list[TeamMember]:
    """The team members of these customers, by customer then user (one statement)."""
    stmt = select(TeamMember).where(TeamMember.customer_id.in_(customer_ids))
    return list(await session.scalars(stmt.order_by(TeamMember.customer_id, TeamMember.user_id)))


def _entry(member: TeamMember | None) -> dict[str, str] | None:
    return None if member is None else {"user": member.user_id, "role": member.role.value}


class TeamService:
    """Adds and removes account team members."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def _steward_load(
        self, session: AsyncSession, actor: Actor, customer_id: str, scope: CustomerScope
    ) -> Customer:
        """The customer (NOT_FOUND unless the actor reads it), locked, if the actor may change
        its team."""
        customer = await load_customer(session, customer_id, scope.for_reading(), lock=True)
        await self._require_steward(session, actor, customer)
        return customer

    @staticmethod
    async def _require_steward(session: AsyncSession, actor: Actor, customer: Customer) -> None:
        """The actor is the customer's owner or the owner's manager (else FORBIDDEN)."""
        active = customer.active_ownership
        owner = active.owner_id if active is not None else None
        if owner is not None and actor.user_id == owner:
            return
        manager = None
        if owner is not None:
            manager = await session.scalar(select(User.manager_id).where(User.id == owner))
        if manager is None or actor.user_id != manager:
            raise Forbidden(
                f"Only the owner of customer {customer.id!r} or the owner's manager changes "
                "its team"
            )

    async def add(
        self,
        actor: Actor,
        customer_id: str,
        user_id: str,
        role: TeamRole,
        *,
        reason: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Put ``user_id`` on the customer's team with ``role`` (a new role replaces theirs)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await self._steward_load(session, actor, customer_id, scope)
            await check_users_active(session, {"user_id": user_id})
            member = await session.get(TeamMember, (customer_id, user_id))
            before = _entry(member)
            if member is not None and member.role == role:
                return customer
            if member is None:
                member = TeamMember(
                    customer_id=customer_id,
                    user_id=user_id,
                    role=role,
                    added_at=now,
                    added_by_id=actor.user_id,
                )
                session.add(member)
            member.role = role
            await session.flush()
            AuditWriter(session, actor, now).record(
                "addTeamMember",
                "Customer",
                customer_id,
                [{"field": "team", "before": before, "after": _entry(member)}],
                reason,
            )
            return customer

    async def remove(
        self,
        actor: Actor,
        customer_id: str,
        user_id: str,
        *,
        reason: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Take ``user_id`` off the customer's team."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await self._steward_load(session, actor, customer_id, scope)
            member = await session.get(TeamMember, (customer_id, user_id))
            if member is None:
                raise BadUserInput([FieldError("userId", "is not on this customer's team")])
            before = _entry(member)
            await session.delete(member)
            await session.flush()
            AuditWriter(session, actor, now).record(
                "removeTeamMember",
                "Customer",
                customer_id,
                [{"field": "team", "before": before, "after": None}],
                reason,
            )
            return customer


async def leave_every_team(
    session: AsyncSession,
    actor: Actor,
    user_id: str,
    now: datetime,
    reason: str | None,
    outbox: Outbox,
) -> list[TeamMember]:
    """Inside a deactivation: take ``user_id`` off every team (audited on each customer) and
    tell each customer's owner through the outbox (``TEAM_MEMBER_REMOVED``, payload ``userId
    role ownerId``); returns the memberships removed. Three statements for any number."""
    found = await session.execute(
        select(TeamMember, Ownership.owner_id)
        .outerjoin(
            Ownership,
            and_(Ownership.customer_id == TeamMember.customer_id, Ownership.valid_to.is_(None)),
        )
        .where(TeamMember.user_id == user_id)
    )
    removed = found.all()
    if not removed:
        return []
    await session.execute(delete(TeamMember).where(TeamMember.user_id == user_id))
    audit = AuditWriter(session, actor, now)
    for member, owner_id in removed:
        audit.record(
            "deactivateUser",
            "Customer",
            member.customer_id,
            [{"field": "team", "before": _entry(member), "after": None}],
            reason,
        )
        outbox.add_record(
            session,
            WorkflowEventRecord(
                kind=TEAM_MEMBER_REMOVED,
                at=now,
                handover_id=None,
                customer_id=member.customer_id,
                payload={"userId": user_id, "role": member.role.value, "ownerId": owner_id},
            ),
        )
    return [member for member, _ in removed]
