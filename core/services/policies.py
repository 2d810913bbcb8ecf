"""Policy administration: grant and revoke permissions, assign and unassign roles.

Each change is one transaction with its audit entry; it bumps ``policy_version`` and, on
PostgreSQL, notifies every worker (delivered at commit), so it applies on the next request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.defaults import (
    RELEASE_OBJECTS,
    SCOPE_ACTION_PREFIX,
    SCOPE_OBJECT,
    Scope,
    default_policy_lines,
    release_lines,
)
from core.authz.model import ACTIONS
from core.authz.roles import known_roles, roles_of
from core.authz.store import PolicyStore, bump_policy_version
from core.clock import Clock
from core.db import Database
from core.domain import CasbinRule, PluginInstall, User
from core.errors import BadUserInput, FieldError, NotFound
from core.plugins import Plugin
from core.services.audit import Actor, AuditWriter
from core.services.users import load_user

ROLE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
OBJECT = re.compile(r"^(\*|[A-Z][A-Za-z0-9]*\.(\*|[A-Za-z][A-Za-z0-9]*))$")


@dataclass(frozen=True)
class RolePolicy:
    """A role's own lines: the roles it inherits and its permissions (``scope:…`` included)."""

    role: str
    inherits: list[str]
    permissions: list[tuple[str, str]]


SCOPE_ACTIONS = tuple(f"{SCOPE_ACTION_PREFIX}{s.name}" for s in Scope if s != Scope.NONE)


def _permission_errors(role: str, obj: str, action: str) -> list[FieldError]:
    if action in SCOPE_ACTIONS:  # a row scope line: ``p, role, Customer, scope:TEAM``
        object_error = None if obj == SCOPE_OBJECT else f"a scope applies to {SCOPE_OBJECT}"
    else:
        object_error = None if OBJECT.match(obj) else "must be 'Type.field', 'Type.*' or '*'"
    checks = (
        ("role", None if ROLE.match(role) else "must be lower_snake_case, e.g. key_account_lead"),
        ("object", object_error),
        (
            "action",
            None
            if action in (*ACTIONS, *SCOPE_ACTIONS)
            else f"must be one of {', '.join((*ACTIONS, *SCOPE_ACTIONS))}",
        ),
    )
    return [FieldError(path, reason) for path, reason in checks if reason]


def _install(
    session: AsyncSession,
    audit: AuditWriter,
    action: str,
    lines: Sequence[tuple[str, str, str, str]],
    reason: str | None = None,
) -> None:
    """Add policy lines, with one audit entry per role naming what it got."""
    for ptype, v0, v1, v2 in lines:
        session.add(CasbinRule(ptype=ptype, v0=v0, v1=v1, v2=v2 or None))
    for role in sorted({v0 for _, v0, _, _ in lines}):
        granted = sorted(
            f"{v1}:{v2}" if p == "p" else f"inherits {v1}"
            for p, v0_, v1, v2 in lines
            if v0_ == role
        )
        audit.record(
            action,
            "Role",
            role,
            [{"field": "permission", "before": None, "after": granted}],
            reason,
        )


class PolicyService:
    """Admin use cases over the policy store."""

    def __init__(self, db: Database, clock: Clock, store: PolicyStore) -> None:
        self.db = db
        self.clock = clock
        self.store = store

    async def ensure_defaults(self, plugins: Sequence[Plugin] = ()) -> bool:
        """Install the default roles on a database that has no permissions yet, and each
        plugin's default policies the first time that plugin starts (admins may change them
        afterwards: a revoked default is not re-installed). True when anything was installed."""
        async with self.db.transaction() as session:
            if not self.db.is_sqlite:  # several workers may start at once
                await session.execute(text("SELECT pg_advisory_xact_lock(804517)"))
            audit = AuditWriter(session, Actor.system(), self.clock.now())
            installed = False
            fresh = not await session.scalar(select(func.count()).where(CasbinRule.ptype == "p"))
            if fresh:
                _install(session, audit, "installDefaultPolicies", default_policy_lines())
                installed = True
            known = set(await session.scalars(select(PluginInstall.name)))
            for release in RELEASE_OBJECTS:
                if release in known:
                    continue
                # Recorded like a plugin install, so that it happens once.
                session.add(
                    PluginInstall(name=release, version="core", installed_at=self.clock.now())
                )
                if not fresh:
                    _install(
                        session, audit, "installDefaultPolicies", release_lines(release), release
                    )
                    installed = True
            for plugin in plugins:
                if plugin.name in known:
                    continue
                session.add(
                    PluginInstall(
                        name=plugin.name, version=plugin.version, installed_at=self.clock.now()
                    )
                )
                audit.record(
                    "installPlugin",
                    "Plugin",
                    plugin.name,
                    [{"field": "version", "before": None, "after": plugin.version}],
                )
                _install(
                    session, audit, "installPluginPolicies", plugin.policy_lines(), plugin.name
                )
                installed = True
            if installed:
                await bump_policy_version(session, self.db)
        self.store.invalidate()
        return installed

    async def role_policies(self, session: AsyncSession, role: str | None) -> list[RolePolicy]:
        """Each role's own lines (or one role's), ordered by role."""
        stmt = select(CasbinRule).where(CasbinRule.ptype.in_(("p", "g")))
        lines = list(await session.scalars(stmt.order_by(CasbinRule.id)))
        roles = sorted(await known_roles(session)) if role is None else [role]
        return [
            RolePolicy(
                role=r,
                # A user whose id is also a role name (``admin``) is not the role inheriting.
                inherits=sorted(
                    str(x.v1) for x in lines if x.ptype == "g" and x.v0 == r and x.v1 != r
                ),
                permissions=sorted(
                    (str(x.v1), str(x.v2)) for x in lines if x.ptype == "p" and x.v0 == r
                ),
            )
            for r in roles
        ]

    async def grant(
        self, actor: Actor, role: str, obj: str, action: str, reason: str | None = None
    ) -> None:
        """Allow ``role`` to ``action`` on ``obj``; granting twice changes nothing."""
        errors = _permission_errors(role, obj, action)
        if errors:
            raise BadUserInput(errors)
        async with self.db.transaction() as session:
            if await self._line(session, role, obj, action) is None:
                session.add(CasbinRule(ptype="p", v0=role, v1=obj, v2=action))
                await self._changed(
                    session, actor, "grantPermission", role, None, f"{obj}:{action}", reason
                )
        self.store.invalidate()

    async def revoke(
        self, actor: Actor, role: str, obj: str, action: str, reason: str | None = None
    ) -> None:
        """Withdraw a granted permission; one that was never granted is NOT_FOUND."""
        async with self.db.transaction() as session:
            line = await self._line(session, role, obj, action)
            if line is None:
                raise NotFound("Permission", f"{role}, {obj}, {action}")
            await session.delete(line)
            await self._changed(
                session, actor, "revokePermission", role, f"{obj}:{action}", None, reason
            )
        self.store.invalidate()

    async def assign_role(
        self, actor: Actor, user_id: str, role: str, *, add: bool, reason: str | None = None
    ) -> User:
        """Give (``add``) or take away a role; the user's next request sees the change."""
        async with self.db.transaction() as session:
            user = await load_user(session, user_id)
            if role not in await known_roles(session):
                raise BadUserInput.one("role", "no such role")
            before = (await roles_of(session, [user_id]))[user_id]
            if add and role not in before:
                session.add(CasbinRule(ptype="g", v0=user_id, v1=role))
            elif not add and role in before:
                await session.execute(
                    delete(CasbinRule).where(
                        CasbinRule.ptype == "g", CasbinRule.v0 == user_id, CasbinRule.v1 == role
                    )
                )
            after = sorted({*before, role} if add else set(before) - {role})
            if after != before:
                await bump_policy_version(session, self.db)
                AuditWriter(session, actor, self.clock.now()).record(
                    "assignRole" if add else "unassignRole",
                    "User",
                    user_id,
                    [{"field": "roles", "before": before, "after": after}],
                    reason,
                )
        self.store.invalidate()
        return user

    @staticmethod
    async def _line(session: AsyncSession, role: str, obj: str, action: str) -> CasbinRule | None:
        return await session.scalar(
            select(CasbinRule).where(
                CasbinRule.ptype == "p",
                CasbinRule.v0 == role,
                CasbinRule.v1 == obj,
                CasbinRule.v2 == action,
            )
        )

    async def _changed(
        self,
        session: AsyncSession,
        actor: Actor,
        action: str,
        role: str,
        before: str | None,
        after: str | None,
        reason: str | None,
    ) -> None:
        await bump_policy_version(session, self.db)
        AuditWriter(session, actor, self.clock.now()).record(
            action,
            "Role",
            role,
            [{"field": "permission", "before": before, "after": after}],
            reason,
        )
