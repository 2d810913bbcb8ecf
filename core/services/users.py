"""User use cases: create, deactivate, read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.roles import grant_roles, known_roles, roles_of
from core.authz.store import PolicyStore, bump_policy_version
from core.clock import Clock
from core.db import Database
from core.domain import ReassignmentRequest, User
from core.errors import BadUserInput, FieldError, InvalidState, NotFound
from core.services import validation as v
from core.services.audit import Actor, AuditWriter, diff
from core.services.events import Outbox
from core.services.reassignment import Release, plan_release, release_book
from core.services.teams import leave_every_team


def snapshot(user: User, roles: list[str]) -> dict[str, object]:
    """The user's fields keyed by GraphQL field name, for audit diffs."""
    return {
        "name": user.name,
        "email": user.email,
        "active": user.active,
        "team": user.team,
        "manager": user.manager_id,
        "capacity": user.capacity,
        "locale": user.locale,
        "roles": sorted(roles),
    }


async def reports_of(session: AsyncSession, manager_id: str) -> set[str]:
    """Everyone who reports to ``manager_id``, directly or not (one recursive query)."""
    chain = select(User.id).where(User.manager_id == manager_id).cte("reports", recursive=True)
    chain = chain.union(select(User.id).where(User.manager_id == chain.c.id))
    return set(await session.scalars(select(chain.c.id)))


async def load_user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User", user_id)
    return user


class UserService:
    """Writes to users; role grants are stored in the policy store in the same transaction."""

    def __init__(
        self, db: Database, clock: Clock, store: PolicyStore, outbox: Outbox | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.store = store
        self.outbox = outbox or Outbox()

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
        locale: str | None = None,
        reason: str | None = None,
    ) -> User:
        """Create an active user with the given roles (``locale``: their e-mails' language;
        ``reason`` goes into the audit log)."""
        roles = sorted(set(roles or []))
        errors = [
            FieldError(path, reason)
            for path, reason in (
                ("id", v.user_id(user_id)),
                ("name", v.text(name, max_length=200, required=True)),
                ("email", v.email(email)),
                ("team", v.text(team, max_length=100)),
                ("capacity", v.int_range(capacity, 0, 100_000)),
                ("locale", v.locale(locale)),
            )
            if reason
        ]
        now = self.clock.now()
        async with self.db.transaction() as session:
            errors += await self._reference_errors(session, user_id, email, manager_id, roles)
            if errors:
                raise BadUserInput(errors)
            user = User(
                id=user_id,
                name=name.strip(),
                email=email,
                active=True,
                team=team,
                manager_id=manager_id,
                capacity=capacity,
                locale=locale,
                created_at=now,
            )
            session.add(user)
            grant_roles(session, user_id, roles)
            if roles:
                await bump_policy_version(session, self.db)
            await session.flush()
            AuditWriter(session, actor, now).record(
                "createUser", "User", user_id, diff({}, snapshot(user, roles)), reason
            )
        self.store.invalidate()
        return user

    async def set_locale(self, actor: Actor, user_id: str, locale: str | None) -> User:
        """Set the language of the user's e-mails (None: the server's default), audited."""
        if reason := v.locale(locale):
            raise BadUserInput([FieldError("locale", reason)])
        now = self.clock.now()
        async with self.db.transaction() as session:
            user = await load_user(session, user_id)
            roles = (await roles_of(session, [user_id]))[user_id]
            before = snapshot(user, roles)
            user.locale = locale
            AuditWriter(session, actor, now).record(
                "updateUser", "User", user_id, diff(before, snapshot(user, roles))
            )
            return user

    @staticmethod
    async def _reference_errors(
        session: AsyncSession,
        user_id: str,
        email: str | None,
        manager_id: str | None,
        roles: list[str],
    ) -> list[FieldError]:
        """Input errors that need the database: duplicates, unknown manager or roles."""
        errors = []
        if await session.get(User, user_id) is not None:
            errors.append(FieldError("id", "a user with this id already exists"))
        if email is not None and await session.scalar(select(User.id).where(User.email == email)):
            errors.append(FieldError("email", "another user has this e-mail address"))
        if manager_id is not None:
            manager = await session.get(User, manager_id)
            if manager is None or not manager.active:
                errors.append(FieldError("managerId", "no active user has this id"))
        unknown = sorted(set(roles) - await known_roles(session))
        if unknown:
            errors.append(FieldError("roles", f"unknown role {', '.join(map(repr, unknown))}"))
        return errors

    async def deactivate(
        self, actor: Actor, user_id: str, reason: str | None = None
    ) -> tuple[User, list[ReassignmentRequest], list[Release]]:
        """Mark the user inactive (no more sign-in, never eligible as an owner) and, in the same
        transaction, release their customers (see ``release_book``): the user, the requests
        opened and what happened to each customer."""
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
            await leave_every_team(session, actor, user_id, now, reason, self.outbox)
            plan = await plan_release(session, user_id)
            requests = await release_book(session, actor, user_id, plan, now, reason)
            return user, requests, plan

    async def preview_deactivation(self, user_id: str) -> tuple[User, list[Release]]:
        """What ``deactivate`` would do to the user's customers, with nothing written."""
        async with self.db.reader() as session:
            user = await load_user(session, user_id)
            if not user.active:
                raise InvalidState(f"User {user_id!r} is already deactivated", state="INACTIVE")
            return user, await plan_release(session, user_id)
