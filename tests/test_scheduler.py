"""The scheduler: one leader among several runners (advisory lock on PostgreSQL, a file lock
on SQLite), failover when the leader stops, catch-up after a cut-short run, and deadline
events at the times the clock says."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from core import metrics
from core.clock import FixedClock
from core.config import Settings
from core.db import Database
from core.domain import ScheduledJob, WorkflowEventRecord
from core.notify import DEADLINE_SWEEP, Job, Scheduler, default_jobs
from core.notify.scheduler import configure, parse_interval
from core.services import Services
from core.services import handover as handover_service
from tests.test_handover import HANDBOOK
from tests.test_handover_workflow import ADMIN, open_handover

TICK = 0.05


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(TICK / 2)


@asynccontextmanager
async def runner(url: str, clock: FixedClock, jobs: list[Job]) -> AsyncIterator[Scheduler]:
    """A scheduler with its own database pool, as in another worker process."""
    db = Database(url)
    scheduler = Scheduler(Services.create(db, clock), jobs, tick=TICK)
    scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()
        await db.dispose()


def counting_job(runs: list[str], name: str = "count") -> Job:
    async def run(services: Services, now: datetime) -> int:
        runs.append(name)
        return 1

    return Job(name, timedelta(hours=1), run)


async def test_one_runner_leads_and_another_takes_over_when_it_stops(
    database_url: str, clock: FixedClock
) -> None:
    runs: list[str] = []
    job = counting_job(runs)
    async with runner(database_url, clock, [job]) as first:
        await until(lambda: runs == ["count"])
        async with runner(database_url, clock, [job]) as second:
            await asyncio.sleep(TICK * 6)  # several ticks of both
            assert (first.leading, second.leading) == (True, False)
            assert runs == ["count"]  # due once, run once
            await first.stop()
            await until(lambda: second.leading)
            await asyncio.sleep(TICK * 4)
            assert runs == ["count"]  # the new leader knows it is not due yet
            clock.advance(timedelta(hours=1))
            await until(lambda: len(runs) == 2)
            await asyncio.sleep(TICK * 4)
            assert runs == ["count", "count"]


async def test_a_burst_of_events_wakes_a_few_steps_and_the_last_event_is_sent(
    database_url: str, clock: FixedClock
) -> None:
    loop = asyncio.get_running_loop()
    runs: list[float] = []

    async def send(services: Services, now: datetime) -> int:
        runs.append(loop.time())
        return 1

    job = Job("send", timedelta(hours=1), send, on_events=True)
    db = Database(database_url)
    scheduler = Scheduler(Services.create(db, clock), [job], tick=60, wake_gap=0.3)
    scheduler.start()
    try:
        await until(lambda: len(runs) == 1)  # due at start
        for _ in range(30):  # 30 events over 0.6 s
            scheduler.events_written()
            await asyncio.sleep(0.02)
        last_event = loop.time()
        await until(lambda: runs[-1] > last_event)  # the last event is sent, not left waiting
        await asyncio.sleep(0.5)
        woken = len(runs) - 1
        assert 2 <= woken <= 5, runs  # one step per 0.3 s of the burst, not one per event
        # Steps at least the gap apart (less the jitter of the run within its step).
        assert all(b - a >= 0.25 for a, b in itertools.pairwise(runs[1:])), runs
    finally:
        await scheduler.stop()
        await db.dispose()


async def test_a_failing_job_is_counted_logged_and_retried(
    database_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[datetime] = []

    async def flaky(services: Services, now: datetime) -> int:
        attempts.append(now)
        if len(attempts) == 1:
            raise RuntimeError("receiver down")
        return 3

    db = Database(database_url)
    scheduler = Scheduler(Services.create(db, clock), [Job("flaky", timedelta(hours=6), flaky)])
    failures = metrics.JOB_FAILURES.labels("flaky")._value.get()
    try:
        assert await scheduler.step() == {}
        assert "job flaky failed" in caplog.text
        assert metrics.JOB_FAILURES.labels("flaky")._value.get() == failures + 1
        assert await scheduler.step() == {}  # not before a minute has passed
        clock.advance(timedelta(minutes=1))
        assert await scheduler.step() == {"flaky": 3}
        assert metrics.JOB_LAST_SUCCESS.labels("flaky")._value.get() == clock.now().timestamp()
        async with db.reader() as session:
            row = await session.get(ScheduledJob, "flaky")
        assert row is not None and (row.last_count, row.last_error) == (3, None)
        body, _ = metrics.render()
        assert b'baton_scheduler_items_total{job="flaky"}' in body
    finally:
        await scheduler.leadership.release()
        await db.dispose()


async def deadline_events(services: Services) -> list[tuple[str, str]]:
    async with services.db.reader() as session:
        rows = await session.scalars(
            select(WorkflowEventRecord)
            .where(WorkflowEventRecord.kind.in_(["DUE_SOON", "OVERDUE"]))
            .order_by(WorkflowEventRecord.id)
        )
        return [(r.kind, r.payload["step"]) for r in rows]


def sweep_only(settings: Settings) -> list[Job]:
    return [j for j in default_jobs(settings) if j.name == DEADLINE_SWEEP]


async def test_the_advancing_clock_fires_due_soon_then_overdue_at_the_deadlines(
    services: Services, settings: Settings, admin: str, clock: FixedClock
) -> None:
    scheduler = Scheduler(services, sweep_only(settings))
    try:
        await open_handover(services, "Acme")  # Monday 09:00: handbook due Thursday 09:00
        assert await scheduler.step() == {DEADLINE_SWEEP: 0}
        clock.advance(timedelta(hours=23, minutes=59))  # Tuesday 08:59
        assert await scheduler.step() == {DEADLINE_SWEEP: 0}
        clock.advance(timedelta(days=1, minutes=1))  # Wednesday 09:00: one working day left
        assert await scheduler.step() == {DEADLINE_SWEEP: 1}
        assert await deadline_events(services) == [("DUE_SOON", "submitHandbook")]
        clock.advance(timedelta(minutes=5))  # within the interval: not run
        assert await scheduler.step() == {}
        clock.advance(timedelta(days=1))  # Thursday 09:05: past due
        assert await scheduler.step() == {DEADLINE_SWEEP: 1}
        clock.advance(timedelta(hours=1))
        assert await scheduler.step() == {DEADLINE_SWEEP: 0}  # once per deadline
        assert await deadline_events(services) == [
            ("DUE_SOON", "submitHandbook"),
            ("OVERDUE", "submitHandbook"),
        ]
    finally:
        await scheduler.leadership.release()


async def test_a_sweep_cut_short_and_run_again_fires_nothing_twice(
    services: Services,
    settings: Settings,
    admin: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard: list[str] = []
    listening = Services.create(
        services.db, clock, event_subscribers=[lambda e: heard.append(e.kind)]
    )
    h = await open_handover(listening, "First")
    await open_handover(listening, "Second")
    await listening.handover.submit_handbook(ADMIN, h.id, h.version, HANDBOOK)
    clock.advance(timedelta(days=3, minutes=1))  # Thursday: review and handbook both late
    heard.clear()
    scheduler = Scheduler(listening, sweep_only(settings))
    try:
        # The process is stopped after the sweep wrote its events, before it committed.
        real_insert = handover_service.insert_deadline_events

        async def insert_then_stop(*args: Any) -> Any:
            await real_insert(*args)
            raise asyncio.CancelledError

        with monkeypatch.context() as patch:
            patch.setattr(handover_service, "insert_deadline_events", insert_then_stop)
            with pytest.raises(asyncio.CancelledError):
                await scheduler.step()
        assert await deadline_events(services) == [] and heard == []
        # The next leader catches up: the sweep never succeeded, so it is due.
        assert await scheduler.step() == {DEADLINE_SWEEP: 2}
        # A sweep that committed but stopped before its success was recorded runs again
        # and finds nothing new.
        await listening.handover.sweep_deadlines()
        async with services.db.transaction() as session:
            row = await session.get(ScheduledJob, DEADLINE_SWEEP)
            assert row is not None
            row.last_success_at = None
        assert await scheduler.step() == {DEADLINE_SWEEP: 0}
        assert sorted(heard) == ["OVERDUE", "OVERDUE"]
        async with services.db.reader() as session:
            total = await session.scalar(select(func.count()).select_from(WorkflowEventRecord))
        assert total == 2 + 1 + 2  # two opened, one step done, two overdue
    finally:
        await scheduler.leadership.release()


def test_intervals_come_from_the_environment_and_a_misspelt_job_is_refused() -> None:
    jobs = default_jobs(Settings(schedules=(("deadline_sweep", "5m"), ("tier_review", "off"))))
    assert [(j.name, j.interval) for j in jobs] == [
        (DEADLINE_SWEEP, timedelta(minutes=5)),
        ("health_sweep", timedelta(minutes=15)),
        ("webhooks", timedelta(seconds=10)),
        ("email", timedelta(minutes=1)),
        ("surveys", timedelta(hours=1)),
        ("insight_refresh", timedelta(minutes=1)),
    ]
    assert parse_interval("90") == timedelta(seconds=90)
    assert parse_interval("2d") == timedelta(days=2)
    with pytest.raises(ValueError, match="BATON_SCHEDULE_DEADLINE_SWEPT: no job"):
        configure(jobs, {"deadline_swept": "1h"})
    with pytest.raises(ValueError, match="expected seconds"):
        parse_interval("soon")


def test_the_tier_review_is_due_once_a_calendar_quarter() -> None:
    quarterly = next(j for j in default_jobs(Settings()) if j.name == "tier_review")
    ran = datetime(2026, 2, 17, 3, 0, tzinfo=UTC)
    assert quarterly.next_due(ran, ran) == datetime(2026, 4, 1, tzinfo=UTC)
    late = datetime(2026, 11, 30, tzinfo=UTC)
    assert quarterly.next_due(late, late) == datetime(2027, 1, 1, tzinfo=UTC)
    assert quarterly.next_due(None, late) == late
