"""Webhook delivery: the scheduler's ``webhooks`` job.

Each run (1) queues, for every active endpoint, one delivery per new outbox event of a kind
it wants, then (2) sends the due deliveries, several at once, each bounded by a timeout so a
hanging receiver delays no one else. A delivery is *claimed* before it is sent: its attempt is
counted and its next attempt scheduled (exponential backoff with jitter) in a committed
transaction. So a process stopped mid-request loses nothing (the claim expires and the
delivery is sent again, with the same ``Baton-Event-Id``: at least once) and a delivery that
succeeded is never sent again. After ``webhook_max_attempts`` failures it is DEAD until an
admin replays it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics
from core.config import Settings
from core.domain import DeliveryState, WebhookDelivery, WebhookEndpoint, WorkflowEventRecord
from core.notify import addresses
from core.notify import webhooks as w
from core.notify.scheduler import Job
from core.services import Services

log = logging.getLogger("baton.webhooks")

WEBHOOKS = "webhooks"
MAX_BACKOFF = timedelta(hours=6)
BATCH = 200  # deliveries claimed per run; the next run takes the rest
HISTORY = 20  # attempts kept per delivery
USER_AGENT = "Baton-Webhooks/1"


def backoff(attempts: int, base: float) -> timedelta:
    """The wait after the ``attempts``-th failure: ``base * 2**(attempts-1)`` seconds, capped
    at six hours, of which a random half is dropped ("equal jitter") so that receivers that
    fail together are not retried together."""
    full = min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF.total_seconds())
    return timedelta(seconds=full / 2 + random.uniform(0, full / 2))


async def enqueue(session: AsyncSession, now: datetime) -> int:
    """Queue every new outbox event for each active endpoint that wants its kind; returns
    how many deliveries were queued. Each endpoint's ``cursor`` remembers where it stands."""
    active = WebhookEndpoint.active.is_(True)
    if await session.scalar(select(WebhookEndpoint.id).where(active).limit(1)) is None:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # Wait for transactions still writing events: once they commit, no event with a
        # lower id can appear after we read, so the cursors never skip one.
        await session.execute(text("LOCK TABLE workflow_events IN SHARE MODE"))
    last = await w.last_event_id(session)
    if not last:
        return 0
    stmt = select(WebhookEndpoint).where(active, WebhookEndpoint.cursor < last)
    endpoints = list(await session.scalars(stmt))
    queued = 0
    for endpoint in endpoints:
        rows = (
            await session.execute(
                select(WorkflowEventRecord.id).where(
                    WorkflowEventRecord.id > endpoint.cursor,
                    WorkflowEventRecord.id <= last,
                    WorkflowEventRecord.kind.in_(endpoint.event_types),
                )
            )
        ).all()
        if rows:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            insert = dialect.insert(WebhookDelivery).values(
                [
                    {
                        "endpoint_id": endpoint.id,
                        "event_id": event,
                        "state": DeliveryState.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "history": [],
                    }
                    for (event,) in rows
                ]
            )
            await session.execute(insert.on_conflict_do_nothing())
            queued += len(rows)
        endpoint.cursor = last
    return queued


@dataclass
class Attempt:
    """One claimed delivery, ready to send."""

    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    event: WorkflowEventRecord
    body: bytes = b""


class Deliverer:
    """Sends due deliveries for one run of the job."""

    def __init__(self, services: Services, settings: Settings) -> None:
        self.services = services
        self.settings = settings

    async def claim(self, now: datetime) -> list[Attempt]:
        """Take up to ``BATCH`` due deliveries: count their attempt and schedule the next
        one now, committed before anything is sent."""
        async with self.services.db.transaction() as session:
            stmt = (
                select(WebhookDelivery, WebhookEndpoint, WorkflowEventRecord)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(WorkflowEventRecord, WorkflowEventRecord.id == WebhookDelivery.event_id)
                .where(
                    WebhookDelivery.state == DeliveryState.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookEndpoint.active.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(BATCH)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(of=WebhookDelivery, skip_locked=True)
            claimed = [Attempt(d, e, ev) for d, e, ev in (await session.execute(stmt)).all()]
            for a in claimed:
                a.delivery.attempts += 1
                a.delivery.last_attempt_at = now
                a.delivery.next_attempt_at = now + backoff(
                    a.delivery.attempts, self.settings.webhook_backoff
                )
            if claimed:
                await self._render(session, claimed)
        return claimed

    async def _render(self, session: AsyncSession, claimed: list[Attempt]) -> None:
        """Each body as its endpoint's role may read it now (policies caught up first)."""
        await self.services.authz.catch_up(session)
        customers = await w.load_customers(session, {a.event.customer_id for a in claimed})
        for a in claimed:
            view = await self.services.authz.view_for_roles((a.endpoint.role,))
            customer = customers.get(a.event.customer_id)
            a.body = w.render(a.event, customer, view, a.endpoint.id)

    async def send(self, client: httpx.AsyncClient, a: Attempt, now: datetime) -> bool:
        """POST one delivery and record the outcome; True when the receiver took it (2xx)."""
        # The signature's timestamp is wall-clock time: receivers compare it with theirs.
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            w.SIGNATURE_HEADER: w.signature_header(
                w.signing_secrets(a.endpoint, now), timestamp, a.body
            ),
            w.EVENT_ID_HEADER: w.event_id(a.event),
            w.DELIVERY_ID_HEADER: w.delivery_id(a.delivery),
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.settings.webhook_timeout):
                # Resolved and checked now, and sent to that address (DNS rebinding).
                target = await addresses.pin(a.endpoint.url, self.settings.webhook_allow_private)
                extensions = {"sni_hostname": target.server_name} if target.server_name else {}
                response = await client.post(
                    target.url,
                    content=a.body,
                    headers={**headers, "Host": target.host_header},
                    extensions=extensions,
                )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except ValueError as exc:  # the address is not a public one (any more)
            error = f"refused: {exc}"[:500]
        except TimeoutError:
            error = f"no answer within {self.settings.webhook_timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        ok = error is None
        await self._record(a, now, status, error, round((time.monotonic() - started) * 1000))
        outcome = "delivered" if ok else "failed"
        metrics.WEBHOOK_ATTEMPTS.labels(outcome).inc()
        log.log(
            logging.INFO if ok else logging.WARNING,
            "webhook %s %s to %s: %s",
            w.event_id(a.event),
            outcome,
            a.endpoint.id,
            status if ok else error,
            extra={"endpoint": a.endpoint.id, "delivery": w.delivery_id(a.delivery)},
        )
        return ok

    async def _record(
        self, a: Attempt, now: datetime, status: int | None, error: str | None, millis: int
    ) -> None:
        entry = {"at": now.isoformat(), "status": status, "error": error, "durationMs": millis}
        values: dict[str, Any] = {
            "last_status": status,
            "last_error": error,
            "history": [*a.delivery.history, entry][-HISTORY:],
        }
        if error is None:
            values.update(state=DeliveryState.DELIVERED, delivered_at=now)
        elif a.delivery.attempts >= self.settings.webhook_max_attempts:
            values.update(state=DeliveryState.DEAD)
            log.error(
                "webhook %s to %s is dead after %d attempts",
                w.event_id(a.event),
                a.endpoint.id,
                a.delivery.attempts,
            )
        async with self.services.db.transaction() as session:
            # Only the claim we made: a replay in between starts the delivery over instead.
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == a.delivery.id,
                    WebhookDelivery.attempts == a.delivery.attempts,
                    WebhookDelivery.state == DeliveryState.PENDING,
                )
                .values(**values)
            )

    async def run(self, now: datetime) -> int:
        """Queue new events, then send what is due; returns how many were delivered."""
        async with self.services.db.transaction() as session:
            await enqueue(session, now)
        claimed = await self.claim(now)
        if not claimed:
            return 0
        limit = asyncio.Semaphore(max(self.settings.webhook_concurrency, 1))

        async def one(client: httpx.AsyncClient, a: Attempt) -> bool:
            async with limit:
                return await self.send(client, a, now)

        timeout = httpx.Timeout(self.settings.webhook_timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            results = await asyncio.gather(*(one(client, a) for a in claimed))
        return sum(results)


def webhook_job(settings: Settings) -> Job:
    """The ``webhooks`` job: every 10 s by default, and at once after a commit that wrote
    events, in any process (``Scheduler.events_written``)."""

    async def run(services: Services, now: datetime) -> int:
        return await Deliverer(services, settings).run(now)

    return Job(WEBHOOKS, timedelta(seconds=10), run, on_events=True)
