"""The process's policy store: Casbin loaded from the database, views cached per role set.

Policy changes bump ``policy_version`` and, on PostgreSQL, NOTIFY every worker, whose
listener marks its store stale; the next request reloads. Each request also hands the store
the version it read with its user (``observe``, from ``core.identity``): a change made by
another process (the CLI on SQLite, a worker whose notification was lost) is seen on the very
next request, without a query of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import casbin
from casbin_async_sqlalchemy_adapter import Adapter
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.model import casbin_model
from core.authz.view import PermissionView
from core.db import Database, Listener
from core.domain import CasbinRule, PolicyVersion

log = logging.getLogger("baton.authz")
CHANNEL = "baton_policy"
# The policies' version (one row): a newer one than a store loaded means reload.
POLICY_VERSION = select(PolicyVersion.version).where(PolicyVersion.id == 1)


async def bump_policy_version(session: AsyncSession, db: Database) -> None:
    """Record a policy change in the running transaction; on PostgreSQL every worker is
    notified when it commits. The caller invalidates its own store after the commit."""
    version = await session.scalar(
        update(PolicyVersion)
        .where(PolicyVersion.id == 1)
        .values(version=PolicyVersion.version + 1)
        .returning(PolicyVersion.version)
    )
    if version is None:
        session.add(PolicyVersion(id=1, version=1))
        version = 1
    if not db.is_sqlite:
        await session.execute(
            text("SELECT pg_notify(:channel, :version)"),
            {"channel": CHANNEL, "version": str(version)},
        )


class PolicyStore:
    """Turns a user id into the PermissionView of the user's roles."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._enforcer: casbin.AsyncEnforcer | None = None
        self._views: dict[tuple[str, ...], PermissionView] = {}
        self._stale = True
        self._loaded_version: int | None = None  # the policy_version the enforcer was loaded at
        self._lock = asyncio.Lock()
        self._listener = Listener(
            db, CHANNEL, lambda _: self.invalidate(), self._connected, "policy"
        )
        self.listening = False  # True while the PostgreSQL LISTEN connection is up
        self.casbin_calls = 0  # read by the benchmark: calls must not grow with rows

    def invalidate(self) -> None:
        """Reload policies before the next decision."""
        self._stale = True

    def observe(self, version: int | None) -> None:
        """A request read ``policy_version``: reload before answering it if that differs from
        the version the policies were loaded at."""
        if version != self._loaded_version:
            self._stale = True

    async def catch_up(self, session: AsyncSession) -> None:
        """Read ``policy_version`` and reload before the next decision if it moved: for work
        outside a request (webhook bodies, e-mails), which no sign-in refreshes."""
        self.observe(await session.scalar(POLICY_VERSION))

    @property
    def reload_pending(self) -> bool:
        """The next decision waits for the policies to be (re)loaded, which takes pooled
        connections of its own: callers give theirs back first, or a burst of requests
        holding theirs while they wait could exhaust the pool."""
        return self._stale or self._enforcer is None or self._lock.locked()

    async def _enforcer_now(self) -> casbin.AsyncEnforcer:
        # While a reload runs, callers wait for it rather than answer from the old policies.
        if self.reload_pending:
            async with self._lock:
                while self._stale or self._enforcer is None:
                    self._stale = False  # a change during the load marks it stale again
                    enforcer = casbin.AsyncEnforcer(
                        casbin_model(), Adapter(self.db.engine, db_class=CasbinRule)
                    )
                    try:
                        # Read before loading: a change committed meanwhile reloads again.
                        async with self.db.reader() as session:
                            version = await session.scalar(POLICY_VERSION)
                        await enforcer.load_policy()
                    except BaseException:
                        self._stale = True  # e.g. the database is down: retry next time
                        raise
                    self._enforcer, self._views = enforcer, {}
                    self._loaded_version = version
        return self._enforcer

    async def roles_of(self, user_id: str) -> list[str]:
        """The roles assigned to the user (not the inherited ones)."""
        enforcer = await self._enforcer_now()
        self.casbin_calls += 1
        return sorted(await enforcer.get_roles_for_user(user_id))

    async def view_for(self, user_id: str) -> PermissionView:
        """The permission view of the user's roles (computed once per role set and version)."""
        return await self.view_for_roles(await self.roles_of(user_id))

    async def view_for_roles(self, role_names: Iterable[str]) -> PermissionView:
        """The permission view of a set of roles (what a user holding them gets), also for
        readers that are not users: webhook endpoints, the console's "see as" a role."""
        roles = tuple(sorted(set(role_names)))
        view = self._views.get(roles)
        if view is None:
            enforcer = await self._enforcer_now()
            lines: set[tuple[str, str]] = set()
            for role in roles:
                self.casbin_calls += 1
                for _sub, obj, act in await enforcer.get_implicit_permissions_for_user(role):
                    lines.add((obj, act))
            view = self._views[roles] = PermissionView.compile(roles, lines)
        return view

    async def start(self) -> None:
        """On PostgreSQL, listen for policy changes made by any worker; each (re)connection
        or loss reloads, since changes may have been missed."""
        await self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    def _connected(self, connected: bool) -> None:
        self.listening = connected
        self.invalidate()
