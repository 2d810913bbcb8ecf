"""User use cases: create, deactivate, read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.roles import DEFAULT_ROLES, grant_roles, roles_of
from core.clock import Clock
from core.db import Database
from core.domain import User
from core.errors import BadUserInput, FieldError, InvalidState, NotFound
from core.services import validation as v
from core.services.audit import Actor, AuditWriter, diff


def snapshot(user: User, roles: list[str]) -> dict[str, object]:
    """The user's fields keyed by GraphQL field name, for audit diffs."""
    return {
        "name": user.name,
        "email": user.email,
        "active": user.active,
        "team": user.team,
        "manager": user.manager_id,
        "capacity": user.capacity,
        "roles": sorted(roles),
    }


async def load_user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User", user_id)
    return user


class UserService:
    """Writes to users; role grants are stored in the policy store in the same transaction."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create(
        self,
        actor: Actor,
        user_id: str,
        name: str,
        *,
        email: str | None = None,
        roles: list[str] | None = None,
        manager_id: str | None = None,
        team: str | None = None,
        capacity: int | None = None,
    ) -> User:
        """Create an active user with the given roles."""
        roles = sorted(set(roles or []))
        errors = [
            FieldError(path, reason)
            for path, reason in (
                ("id", v.user_id(user_id)),
                ("name", v.text(name, max_length=200, required=True)),
                ("email", v.email(email)),
                ("team", v.text(team, max_length=100)),
                ("capacity", v.int_range(capacity, 0, 100_000)),
                (
                    "roles",
                    next((f"unknown role {r!r}" for r in roles if r not in DEFAULT_ROLES), None),
                ),
            )
            if reason
        ]
        if errors:
            raise BadUserInput(errors)
        now = self.clock.now()
        async with self.db.transaction() as session:
            if await session.get(User, user_id) is not None:
                raise BadUserInput.one("id", "a user with this id already exists")
            if email is not None and await session.scalar(
                select(User.id).where(User.email == email)
            ):
                raise BadUserInput.one("email", "another user has this e-mail address")
            if manager_id is not None:
                manager = await session.get(User, manager_id)
                if manager is None or not manager.active:
                    raise BadUserInput.one("managerId", "no active user has this id")
            user = User(
                id=user_id,
                name=name.strip(),
                email=email,
                active=True,
                team=team,
                manager_id=manager_id,
                capacity=capacity,
                created_at=now,
            )
            session.add(user)
            grant_roles(session, user_id, roles)
            await session.flush()
            AuditWriter(session, actor, now).record(
                "createUser", "User", user_id, diff({}, snapshot(user, roles))
            )
            return user

    async def deactivate(self, actor: Actor, user_id: str, reason: str | None = None) -> User:
        """Mark the user inactive: no more sign-in, never eligible as an owner."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            user = await load_user(session, user_id)
            if not user.active:
                raise InvalidState(f"User {user_id!r} is already deactivated", state="INACTIVE")
            roles = (await roles_of(session, [user_id]))[user_id]
            before = snapshot(user, roles)
            user.active = False
            user.deactivated_at = now
            AuditWriter(session, actor, now).record(
                "deactivateUser", "User", user_id, diff(before, snapshot(user, roles)), reason
            )
            return user
