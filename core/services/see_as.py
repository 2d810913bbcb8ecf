""" "See as": an admin runs a read-only request with another identity's permission view and
row scope, to check what that role or user really sees. Every such request is audited.

The identity is named ``role:<name>`` (the role's field rules; a role owns no customers, so a
role scoped ``OWN`` or ``TEAM`` reaches none: pick one of its users to see theirs) or
``user:<id>`` (that active user's roles and customers).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.authz.roles import known_roles
from core.authz.store import PolicyStore
from core.authz.view import PermissionView
from core.clock import Clock
from core.db import Database
from core.domain import User
from core.errors import BadUserInput
from core.services.audit import Actor, AuditWriter

# Who may see as someone else: an operation object in the contract's style.
SEE_AS_OBJECT = "Query.seeAs"
# What is recorded of the request: enough to tell what was looked at, bounded.
MAX_RECORDED = 4000


@dataclass(frozen=True)
class SeenAs:
    """The identity a see-as request runs with: the user it acts as (for a role, a transient
    user named after it that owns nothing) and that identity's read-only view."""

    target: str
    user: User
    permissions: PermissionView


class SeeAsService:
    """Resolves a see-as target for an allowed viewer and audits the look."""

    def __init__(self, db: Database, clock: Clock, store: PolicyStore) -> None:
        self.db = db
        self.clock = clock
        self.store = store

    async def assume(
        self, viewer: User, viewer_view: PermissionView, target: str, looked_at: str
    ) -> SeenAs:
        """The identity ``target`` names, if ``viewer_view`` allows ``(Query.seeAs, call)``;
        records who looked as whom at what (``looked_at``) in the audit log."""
        viewer_view.require_call(SEE_AS_OBJECT)
        kind, _, name = target.partition(":")
        async with self.db.transaction() as session:
            if kind == "role":
                if name not in await known_roles(session):
                    raise BadUserInput.one("seeAs", f"no role named {name!r}")
                user = User(id=target, name=f"role {name}", active=True)
                view = await self.store.view_for_roles([name])
            elif kind == "user":
                found = await session.get(User, name)
                if found is None or not found.active:
                    raise BadUserInput.one("seeAs", f"no active user {name!r}")
                user, view = found, await self.store.view_for(found.id)
            else:
                raise BadUserInput.one("seeAs", "must be 'role:<name>' or 'user:<id>'")
            AuditWriter(session, Actor(viewer.id), self.clock.now()).record(
                "seeAs",
                "Role" if kind == "role" else "User",
                name,
                [{"field": "request", "before": None, "after": looked_at[:MAX_RECORDED]}],
            )
        return SeenAs(target, user, view.as_read_only())
