"""Several workers on PostgreSQL, as real processes: a `baton serve` (with the scheduler) and
this test's own app. The per-user subscription limit holds across both, a killed worker's
connections lapse with their leases; an event written in this process reaches the other's
webhook and e-mail jobs at once through LISTEN/NOTIFY, with their intervals an hour long."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.clock import FixedClock
from core.config import Settings
from core.domain import SubscriptionLease
from core.notify.webhooks import EndpointInput, WebhookService
from core.services import Actor, Services
from tests.conftest import baton_server, running
from tests.test_email import Inbox, open_handover, people, smtp_server
from tests.test_handover import HANDBOOK
from tests.test_subscriptions import closed, connected, message, served, until
from tests.webhook_receiver import receiver


async def leases(services: Services) -> int:
    async with services.db.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(SubscriptionLease)) or 0)


async def until_none_but(services: Services, count: int) -> None:
    for _ in range(100):
        if await leases(services) == count:
            return
        await asyncio.sleep(0.05)
    assert await leases(services) == count


async def acked(ws: Any) -> bool:
    return (await message(ws))["type"] == "connection_ack"


async def test_two_processes_share_the_connection_limit_and_wake_each_other(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if settings.is_sqlite:
        pytest.skip("several worker processes need PostgreSQL")
    inbox = Inbox()
    log = tmp_path / "serve.log"
    with receiver() as hooks, smtp_server(inbox) as smtp_port:
        for name, value in {
            "BATON_MAX_SUBSCRIPTIONS_PER_USER": "2",
            "BATON_SUBSCRIPTION_LEASE": "1.5",
            "BATON_SCHEDULER_TICK": "60",
            "BATON_SCHEDULE_WEBHOOKS": "1h",
            "BATON_SCHEDULE_EMAIL": "1h",
            "BATON_WEBHOOK_ALLOW_PRIVATE": "1",
            "BATON_SMTP_HOST": "127.0.0.1",
            "BATON_SMTP_PORT": str(smtp_port),
            "BATON_SMTP_STARTTLS": "0",
            "BATON_LOG_FORMAT": "text",
        }.items():
            monkeypatch.setenv(name, value)
        here = replace(settings, max_subscriptions_per_user=2, subscription_lease=1.5)
        # The other process runs on the wall clock (its e-mail job skips week-old events).
        clock = FixedClock(datetime.now(UTC))
        async with running(here, clock) as app, served(app) as url_here:
            services: Services = app.state.services
            await people(services)
            kinds = ("HANDOVER_OPENED", "STEP_DONE")
            await WebhookService(services.db, clock, allow_private=True).create(
                Actor.system(), EndpointInput(hooks.url, kinds, "admin")
            )
            with baton_server(["--database", settings.database_url], log) as (there, base):
                url_there = base.replace("http://", "ws://") + "/graphql"
                await until(lambda: "scheduler leads" in log.read_text(), timeout=20)

                # Woken at once by the other process's events (the tick is a minute, the
                # intervals an hour): the webhook, then the reviewer's e-mail.
                h = await open_handover(services)
                await until(lambda: len(hooks.received) == 1, timeout=10)
                await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, HANDBOOK)
                await until(lambda: len(hooks.received) == 2, timeout=10)
                await until(lambda: len(inbox.messages) == 1, timeout=10)
                assert [r.json["type"] for r in hooks.received] == list(kinds)
                assert inbox.messages[0]["To"] == "li@example.com"

                await limits(services, url_here, url_there, there)


async def limits(services: Services, here: str, there: str, process: Any) -> None:
    async with AsyncExitStack() as stack:

        async def open_(url: str) -> Any:
            return await stack.enter_async_context(connected(url, "tm.li"))

        assert await acked(await open_(there))
        async with connected(here, "tm.li") as second:
            assert await acked(second)
            for url in (here, there):  # a third, on either worker, is one too many
                async with connected(url, "tm.li") as third:
                    assert await closed(third) == (4429, "At most 2 connections per user")
        await until_none_but(services, 1)  # closed: its lease is gone
        assert await acked(await open_(there))
        assert await leases(services) == 2

        process.send_signal(signal.SIGKILL)  # with both of Li's connections open
        process.wait(10)
        async with connected(here, "tm.li") as refused:
            assert await closed(refused) == (4429, "At most 2 connections per user")
        await asyncio.sleep(1.6)  # the dead worker's leases lapse
        async with connected(here, "tm.li") as admitted:
            assert await acked(admitted)
    # The lapsed rows went at that admission, and its own when the server saw it close.
    await until_none_but(services, 0)
