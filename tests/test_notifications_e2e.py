"""Issue 18's "done when", end to end: a handover of a HIGH customer runs from approval to the
satisfaction check with the injectable clock advanced, and at each moment the scheduler's real
jobs produce exactly the e-mails (aiosmtpd on 127.0.0.1), webhook calls (a real receiver on
127.0.0.1) and subscription messages (graphql-transport-ws over a real uvicorn) the deadlines
call for: nothing before a deadline, each notice once after it; then the customer turns RED
and the health sweep's warnings reach the same three channels once. In the middle the scheduler is
stopped while a webhook request is in flight; the next one sends that event again with the same
id (the documented at-least-once retry) and nothing else twice.

One database (PostgreSQL when the run has it, else SQLite): each channel's own tests already
run on both (test_email, test_webhooks, test_subscriptions, test_scheduler); this one checks
that they agree with each other and with the handover's deadlines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection

from core.clock import FixedClock
from core.config import Settings
from core.domain import ActivityKind, MeetingKind
from core.errors import InvalidState
from core.notify import scheduler_for
from core.notify.webhooks import EVENT_TYPES, EndpointInput, WebhookService
from core.services import Actor, Services
from tests.conftest import BACKENDS, fresh_database, running
from tests.test_email import Inbox, body, mail_settings, open_handover, people, smtp_server
from tests.test_handover import HANDBOOK
from tests.test_handover_workflow import FEEDBACK
from tests.test_subscriptions import connected, served, subscribe, until
from tests.webhook_receiver import Receiver, receiver

MANAGER, CHEN, WU = Actor("tm.li"), Actor("am.chen"), Actor("am.wu")
LI, CHEN_MAIL, WU_MAIL = "li@example.com", "chen@example.com", "wu@example.com"


@pytest.fixture(params=BACKENDS[-1:])
def database_url(request: pytest.FixtureRequest, workdir: Any) -> str:
    """One database for this cross-channel run (see the module's docstring)."""
    return fresh_database(request, workdir)


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class Channels:
    """What each channel received so far, and how much of it the test has looked at."""

    def __init__(self, hooks: Receiver, inbox: Inbox) -> None:
        self.hooks = hooks
        self.inbox = inbox
        self.messages: list[dict[str, Any]] = []
        self.seen = {"hooks": 0, "mails": 0, "messages": 0}

    async def listen(self, ws: ClientConnection) -> None:
        while True:
            got = json.loads(await ws.recv())
            assert got["type"] == "next", got
            assert "errors" not in got["payload"], got
            self.messages.append(got["payload"]["data"]["workflowEvents"])

    async def new(self) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
        """The webhook calls and e-mails since the last look, checked against the
        subscription messages, which must be the same events in the same order."""
        # Deliveries go out concurrently: in event order, as the outbox wrote them.
        received = sorted(
            self.hooks.received[self.seen["hooks"] :], key=lambda r: int(r.event_id[4:])
        )
        hooks = [(r.json["type"], r.json["data"]["details"].get("step")) for r in received]
        mails = sorted(
            (m["To"], m["X-Baton-Notice"].split(";")[0])
            for m in self.inbox.messages[self.seen["mails"] :]
        )
        events = list(dict.fromkeys(r.event_id for r in received))
        await until(lambda: len(self.messages) >= self.seen["messages"] + len(events))
        messages = [m["id"] for m in self.messages[self.seen["messages"] :]]
        assert messages == events, "the subscriber and the webhook saw different events"
        self.seen = {
            "hooks": len(self.hooks.received),
            "mails": len(self.inbox.messages),
            "messages": len(self.messages),
        }
        return hooks, mails


async def test_a_handover_notifies_everyone_at_the_deadlines_and_survives_a_stop(
    settings: Settings, clock: FixedClock, hooks: Receiver
) -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        configured = replace(
            mail_settings(settings, port),
            webhook_allow_private=True,  # the receiver is on 127.0.0.1
            # The quarterly tier review could re-tier the customer mid-run; it has its own tests.
            schedules=(("tier_review", "off"),),
        )
        async with running(configured, clock) as app, served(app) as url:
            await run_handover(app, configured, clock, hooks, inbox, url)


async def run_handover(
    app: Starlette, settings: Settings, clock: FixedClock, hooks: Receiver, inbox: Inbox, url: str
) -> None:
    services: Services = app.state.services
    await people(services)
    every_type = EndpointInput(hooks.url, EVENT_TYPES, "admin")
    await WebhookService(services.db, clock, allow_private=True).create(Actor.system(), every_type)
    channels = Channels(hooks, inbox)
    scheduler = scheduler_for(services, settings)

    async def moment(when: datetime) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
        """The clock at ``when``, one scheduler tick, and what it sent."""
        assert when >= clock.now()
        clock.advance(when - clock.now())
        await scheduler.step()
        return await channels.new()

    async with connected(url, "tm.li") as li:  # the reviewer follows the handover live
        await subscribe(li)
        await until(lambda: len(app.state.events.queues) == 1)
        await until(lambda: app.state.events.listening or settings.is_sqlite)
        listening = asyncio.create_task(channels.listen(li))
        try:
            # Monday 2 March 09:00: the sales director approves (a HIGH customer).
            h = await open_handover(services, value_tier="HIGH")
            assert await moment(at(3, 2, 9)) == ([("HANDOVER_OPENED", None)], [])

            # 10:00: the handbook is in; the review is due within one working day (Tuesday
            # 10:00), so the reviewer is asked and everyone hears it is due soon.
            clock.advance(at(3, 2, 10) - clock.now())
            h = await services.handover.submit_handbook(CHEN, h.id, h.version, HANDBOOK)
            assert await moment(at(3, 2, 10)) == (
                [("STEP_DONE", "submitHandbook"), ("DUE_SOON", "reviewHandbook")],
                [
                    (CHEN_MAIL, "step_due_soon"),
                    (LI, "handbook_submitted"),
                    (LI, "step_due_soon"),
                    (WU_MAIL, "step_due_soon"),
                ],
            )
            [asked] = [m for m in inbox.to(LI) if m["X-Baton-Notice"].startswith("handbook")]
            assert "Please review it by 2026-03-03 10:00 UTC" in body(asked)

            # Tuesday 10:00, the deadline itself: not overdue yet.
            assert await moment(at(3, 3, 10)) == ([], [])

            # 10:15 the sweep finds it overdue; the webhook request hangs and the scheduler is
            # stopped with it in flight (a worker killed mid-delivery).
            clock.advance(at(3, 3, 10, 15) - clock.now())
            hooks.mode = "hang"
            scheduler.tick = 0.05
            scheduler.start()
            await until(lambda: len(hooks.received) == channels.seen["hooks"] + 1)
            await scheduler.stop()
            assert hooks.received[-1].json["type"] == "OVERDUE"
            hooks.mode = "ok"
            hooks.released.set()
            # A new scheduler (another worker) takes over once the claim's backoff ran out.
            scheduler = scheduler_for(services, settings)
            sent, mails = await moment(at(3, 3, 10, 16))
            assert sent == [("OVERDUE", "reviewHandbook"), ("OVERDUE", "reviewHandbook")]
            first, again = hooks.received[-2:]
            assert first.event_id == again.event_id  # the documented at-least-once retry
            assert mails == [
                (CHEN_MAIL, "step_overdue"),
                (LI, "step_overdue"),
                (WU_MAIL, "step_overdue"),
            ]
            assert await moment(at(3, 3, 12)) == ([], [])  # once

            # Noon: approved, the customer-notice draft goes to Chen; meetings; the customer
            # is told (a HIGH customer: at least 7 days before completion).
            h = await services.handover.review_handbook(MANAGER, h.id, h.version, True, None)
            for kind in (MeetingKind.BRIEFING, MeetingKind.SIMULATION, MeetingKind.THREE_PARTY):
                h = await services.handover.record_meeting(
                    CHEN, h.id, h.version, kind, clock.now(), None
                )
            h = await services.handover.notify_customer(CHEN, h.id, h.version)
            assert await moment(at(3, 3, 12, 1)) == (
                [
                    ("STEP_DONE", "reviewHandbook"),
                    *[("STEP_DONE", "recordHandoverMeeting")] * 3,
                    ("STEP_DONE", "notifyCustomer"),
                ],
                [(CHEN_MAIL, "customer_notice_draft")],
            )

            # Tuesday 10 March 11:59: a minute short of the week's notice; completion is
            # refused, and nothing is due in the meantime.
            assert await moment(at(3, 10, 11, 59)) == ([], [])
            with pytest.raises(InvalidState, match="7 days before completion"):
                await services.handover.complete(MANAGER, h.id, h.version)
            clock.advance(at(3, 10, 12, 1) - clock.now())
            h = await services.handover.complete(MANAGER, h.id, h.version)
            # The new owner's feedback is due in 5 working days: Tuesday 17 March 12:01.
            assert await moment(at(3, 10, 12, 1)) == ([("COMPLETED", "completeHandover")], [])

            # Monday 16 March, just before a working day ahead of it, then at it.
            assert await moment(at(3, 16, 11, 45)) == ([], [])
            assert await moment(at(3, 16, 12, 1)) == (
                [("DUE_SOON", "submitHandoverFeedback")],
                [(CHEN_MAIL, "step_due_soon"), (WU_MAIL, "step_due_soon")],
            )
            clock.advance(at(3, 17, 11) - clock.now())
            h = await services.handover.submit_feedback(WU, h.id, h.version, FEEDBACK)
            assert await moment(at(3, 17, 11)) == ([("STEP_DONE", "submitHandoverFeedback")], [])
            assert await moment(at(3, 17, 12, 30)) == ([], [])  # in on time: never overdue

            # The satisfaction check is due a month after completion: Thursday 9 April 12:01.
            assert await moment(at(4, 8, 11, 45)) == ([], [])
            assert await moment(at(4, 8, 12, 1)) == (
                [("DUE_SOON", "recordSatisfaction")],
                [(CHEN_MAIL, "step_due_soon"), (LI, "step_due_soon"), (WU_MAIL, "step_due_soon")],
            )
            assert await moment(at(4, 9, 12, 1)) == ([], [])  # due, not yet late
            assert await moment(at(4, 9, 12, 16)) == (
                [("OVERDUE", "recordSatisfaction")],
                [(CHEN_MAIL, "step_overdue"), (LI, "step_overdue"), (WU_MAIL, "step_overdue")],
            )
            clock.advance(at(4, 10, 9) - clock.now())
            h = await services.handover.record_satisfaction(MANAGER, h.id, h.version, 5)
            assert await moment(at(4, 10, 9)) == ([("STEP_DONE", "recordSatisfaction")], [])
            assert await moment(at(4, 13, 9)) == ([], [])  # closed: nothing more, ever

            # Wu's customer now: two complaints and an intent to leave make it RED. The next
            # health sweep raises the warnings, once; the managers up Wu's chain are told.
            for days, kind in ((40, "COMPLAINT"), (10, "COMPLAINT"), (5, "LEAVE_INTENT")):
                await services.tiering.record_activity(
                    Actor.system(),
                    h.customer_id,
                    ActivityKind(kind),
                    at=clock.now() - timedelta(days=days),
                )
            assert await moment(at(4, 13, 9, 10)) == ([], [])  # the sweep's next run is 9:15
            sent, mails = await moment(at(4, 13, 9, 15))
            assert sent == [("RISK_WARNING_RAISED", None)] * 3
            assert sorted(r.json["data"]["details"]["code"] for r in hooks.received[-3:]) == [
                "COMPLAINTS_UP",
                "LEAVE_INTENT",
                "SLOW_RESPONSE",
            ]
            assert mails == [(LI, "health_red"), ("zhao@example.com", "health_red")]
            assert await moment(at(4, 13, 10)) == ([], [])  # still raised: not again
            await asyncio.sleep(0.2)
            assert len(channels.messages) == channels.seen["messages"]
        finally:
            listening.cancel()
            await scheduler.stop()
            await scheduler.leadership.release()
