"""Committed workflow events fanned out to this process's GraphQL subscriptions.

On PostgreSQL a trigger NOTIFYs ``baton_workflow_events`` with the new event's id when its
transaction commits (migration 0015), and every worker LISTENs, so an event reaches the
subscribers of every worker whichever wrote it. On SQLite (one process) the outbox hands
each event over after commit. Either way only the id travels: each subscription reads the
event itself, under its viewer's scope and field rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import Gauge
from sqlalchemy import select

from core.db import Database, Listener
from core.domain import WorkflowEventRecord
from sdk.specs import WorkflowEvent

log = logging.getLogger("baton.subscriptions")

CHANNEL = "baton_workflow_events"
OPEN = Gauge(
    "baton_subscriptions", "Open GraphQL subscriptions to events.", multiprocess_mode="livesum"
)
# Events a slow subscriber may fall behind by before it misses some (and is told so).
QUEUE_SIZE = 1000


class EventHub:
    """Event ids for every open subscription of this process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.queues: set[asyncio.Queue[int]] = set()
        self.listening = False
        self._catching: asyncio.Task[None] | None = None
        self._last_id: int | None = None
        self._listener = Listener(
            db, CHANNEL, lambda payload: self.publish(int(payload)), self._state, "event"
        )

    def publish(self, event_id: int) -> None:
        """Hand ``event_id`` to every subscription (each in id order)."""
        self._last_id = max(self._last_id or 0, event_id)
        for queue in self.queues:
            try:
                queue.put_nowait(event_id)
            except asyncio.QueueFull:
                log.warning(
                    "a subscriber is %s events behind; event %s skipped", QUEUE_SIZE, event_id
                )

    def on_outbox(self, event: WorkflowEvent) -> None:
        """Outbox subscriber (after commit): the source of events on SQLite only, since on
        PostgreSQL every worker, this one included, hears the NOTIFY instead."""
        if self.db.is_sqlite:
            self.publish(event.id)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[int]]:
        """A queue of the ids of events committed from now on, until the block ends."""
        queue: asyncio.Queue[int] = asyncio.Queue(QUEUE_SIZE)
        self.queues.add(queue)
        OPEN.inc()
        try:
            yield queue
        finally:
            self.queues.discard(queue)
            OPEN.dec()

    async def start(self) -> None:
        await self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    def _state(self, connected: bool) -> None:
        self.listening = connected
        if connected and self._last_id is not None:
            # Events committed while the connection was down: read them once back.
            self._catching = asyncio.get_running_loop().create_task(self._catch_up(self._last_id))

    async def _catch_up(self, after: int) -> None:
        async with self.db.reader() as session:
            ids = await session.scalars(
                select(WorkflowEventRecord.id)
                .where(WorkflowEventRecord.id > after)
                .order_by(WorkflowEventRecord.id)
            )
            for event_id in ids:
                if event_id > (self._last_id or 0):
                    self.publish(event_id)
