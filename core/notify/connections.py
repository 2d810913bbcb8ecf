"""The per-user limit on open subscription connections, across every worker and host.

On PostgreSQL each open connection holds a lease, a row of ``subscription_leases`` that its
worker renews every third of ``BATON_SUBSCRIPTION_LEASE`` seconds and deletes when the
connection closes. Admitting a connection counts the user's unexpired leases under a
transaction-level advisory lock on the user, so two workers admitting at once cannot both take
the last place; a worker that crashes stops renewing, and its leases lapse within one lease
period. Times are the database server's (``now()``), so hosts need not agree on the clock.
On SQLite (one process) the count is kept in memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, text, update

from core.db import Database
from core.domain import SubscriptionLease

log = logging.getLogger("baton.subscriptions")

# Advisory lock class for "admitting a connection of this user" ("baton" + "subs").
LOCK_CLASS = 0x62737562


class ConnectionLimit:
    """At most ``limit`` open connections per user; ``admit`` returns a lease id or None."""

    def __init__(self, db: Database, limit: int, lease_seconds: float = 60.0) -> None:
        self.db = db
        self.limit = limit
        self.lease = timedelta(seconds=lease_seconds)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"[:200]
        self.counts: Counter[str] = Counter()  # open connections per user (SQLite)
        self.held: dict[str, str] = {}  # lease id → user id
        self._renewing: asyncio.Task[None] | None = None

    async def admit(self, user_id: str) -> str | None:
        """A lease for one more connection of ``user_id``, or None at the limit."""
        lease_id = uuid.uuid4().hex
        if self.db.is_sqlite:
            if self.counts[user_id] >= self.limit:
                return None
            self.counts[user_id] += 1
            self.held[lease_id] = user_id
            return lease_id
        async with self.db.transaction() as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(:user))"),
                {"cls": LOCK_CLASS, "user": user_id},
            )
            mine = SubscriptionLease.user_id == user_id
            await session.execute(
                delete(SubscriptionLease).where(mine, SubscriptionLease.expires_at < func.now())
            )
            count = await session.scalar(select(func.count()).where(mine))
            if (count or 0) >= self.limit:
                return None
            await session.execute(
                insert(SubscriptionLease).values(
                    id=lease_id,
                    user_id=user_id,
                    worker=self.worker,
                    opened_at=func.now(),
                    expires_at=func.now() + self.lease,
                )
            )
        self.held[lease_id] = user_id
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._renew(), name="baton-subscription-leases")
        return lease_id

    async def release(self, lease_id: str) -> None:
        """The connection of ``lease_id`` closed: its place is free again at once."""
        user_id = self.held.pop(lease_id, None)
        if self.db.is_sqlite:
            if user_id is not None:
                self.counts[user_id] -= 1
                if self.counts[user_id] <= 0:
                    del self.counts[user_id]
            return
        if not self.held and self._renewing is not None:
            self._renewing.cancel()
            self._renewing = None
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    delete(SubscriptionLease).where(SubscriptionLease.id == lease_id)
                )
        except Exception:  # the lease lapses by itself
            log.warning("could not release subscription lease %s", lease_id, exc_info=True)

    async def _renew(self) -> None:
        """Push every held lease's expiry ahead, a third of a lease period apart."""
        while self.held:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                async with self.db.transaction() as session:
                    await session.execute(
                        update(SubscriptionLease)
                        .where(SubscriptionLease.id.in_(list(self.held)))
                        .values(expires_at=func.now() + self.lease)
                    )
            except Exception:  # tried again at the next renewal
                log.warning("could not renew subscription leases", exc_info=True)
