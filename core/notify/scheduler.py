"""The scheduler: periodic jobs run by one leader among every worker and host.

Leadership is a PostgreSQL session-level advisory lock held on a connection of its own: the
lock goes with the connection, so a leader that stops, crashes or loses the database frees it
and another runner takes over at its next tick. On SQLite the lock is an exclusive ``flock``
on a file beside the database: one process (``baton serve`` or ``baton worker``) schedules.

Each job's last start, success and failure are stored (``scheduled_jobs``), so a new leader
knows what is due; jobs are idempotent (the deadline sweep dedupes its events, the tier
review recomputes, webhook deliveries are claimed before they are sent), so a run cut short
at any moment is simply done again by the next one and nothing fires twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from core import metrics
from core.db import Database
from core.domain import ScheduledJob
from core.notify.subscriptions import CHANNEL
from core.services import Services

log = logging.getLogger("baton.scheduler")

# The advisory lock key: any constant that other features do not use ("baton" + "sched").
LEADER_LOCK_KEY = 0x6261746F6E5F7363
QUARTERLY: Literal["quarterly"] = "quarterly"
Interval = timedelta | Literal["quarterly"]
RunJob = Callable[[Services, datetime], Awaitable[int]]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Job:
    """A periodic job: ``run(services, now)`` does the work and returns how many items it
    handled; it must be idempotent, since a run cut short is run again."""

    name: str
    interval: Interval
    run: RunJob
    # Run at once when an outbox event commits (in any process), besides the interval.
    on_events: bool = False

    def next_due(self, last_success: datetime | None, now: datetime) -> datetime:
        """When the job is due again after succeeding at ``last_success`` (at once if never)."""
        if last_success is None:
            return now
        if self.interval == QUARTERLY:
            quarter_start_month = 3 * ((last_success.month - 1) // 3) + 1
            month = quarter_start_month + 3
            year = last_success.year + (month > 12)
            return datetime(year, (month - 1) % 12 + 1, 1, tzinfo=UTC)
        assert isinstance(self.interval, timedelta)
        return last_success + self.interval


def parse_interval(text: str) -> Interval | None:
    """``900``, ``15m``, ``1h``, ``2d``, ``quarterly``, or ``off`` (None: never run)."""
    value = text.strip().lower()
    if value in {"off", "0", "never"}:
        return None
    if value == QUARTERLY:
        return QUARTERLY
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"schedule {text!r}: expected seconds, 15m, 1h, 2d, quarterly or off")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def configure(jobs: Iterable[Job], schedules: Mapping[str, str]) -> list[Job]:
    """``jobs`` with the intervals of ``schedules`` (job name → text, e.g. from
    ``BATON_SCHEDULE_DEADLINE_SWEEP=5m``); a job set ``off`` is left out. An unknown job name
    is an error, so a misspelt variable does not silently change nothing."""
    jobs = list(jobs)
    known = {job.name for job in jobs}
    unknown = sorted(set(schedules) - known)
    if unknown:
        raise ValueError(
            f"BATON_SCHEDULE_{unknown[0].upper()}: no job {unknown[0]!r} "
            f"(jobs: {', '.join(sorted(known))})"
        )
    configured = []
    for job in jobs:
        if job.name in schedules:
            interval = parse_interval(schedules[job.name])
            if interval is None:
                continue
            job = replace(job, interval=interval)
        configured.append(job)
    return configured


class Leadership:
    """Who leads: a PostgreSQL advisory lock on its own connection, or a file lock (SQLite).

    A follower keeps its connection and tries the lock again at each tick, so that waiting
    costs one cheap statement, not a new connection. The leader also ``LISTEN``s on that
    connection for new outbox events (the trigger of migration 0015) and calls ``on_event``
    for each, so jobs that send events run at once whichever process wrote them.
    """

    def __init__(self, db: Database, on_event: Callable[[], None] | None = None) -> None:
        self.db = db
        self.on_event = on_event
        self._conn: asyncpg.Connection | None = None
        self._file: IO[bytes] | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def acquire(self) -> bool:
        """Try once to lead (without waiting); True when this runner leads (or already did)."""
        if self.db.is_sqlite:
            self._held = self._held or self._lock_file()
            return self._held
        timeout = self.db.connect_timeout
        try:
            if self._conn is None:
                dsn = make_url(self.db.url).set(drivername="postgresql")
                self._conn = await asyncpg.connect(
                    dsn.render_as_string(hide_password=False), timeout=timeout
                )
            if self._held:  # a lost connection loses the lock: probe it
                await self._conn.execute("SELECT 1", timeout=timeout)
            else:
                got = await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY, timeout=timeout
                )
                if got and self.on_event is not None:
                    on_event = self.on_event
                    await self._conn.add_listener(CHANNEL, lambda *_: on_event())
                    on_event()  # what was written before we listened
                self._held = bool(got)
        except Exception:
            if self._held:
                log.warning("scheduler lost its leader connection", exc_info=True)
            await self.release()
            raise
        return self._held

    def _lock_file(self) -> bool:
        path = make_url(self.db.url).database
        if not path or path == ":memory:":
            return True  # an in-memory database lives in one process anyway
        handle = Path(f"{path}.scheduler.lock").open("ab")  # noqa: SIM115 (held while leading)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    async def release(self) -> None:
        """Stop leading (the lock is freed with the connection or the file)."""
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=self.db.connect_timeout)
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()  # closing the file drops the flock


# The least time between two steps woken by events: events committed meanwhile wait at most
# this long and are sent together (each step records its runs, a few transactions in the
# leader; one step per event kept the leader's worker busy under a mixed load).
WAKE_GAP = 0.25


class Scheduler:
    """Runs the due jobs while this runner leads; started by ``baton serve`` and
    ``baton worker``. ``wake`` asks for a job at the next tick (e.g. webhooks after a commit)."""

    def __init__(
        self,
        services: Services,
        jobs: Iterable[Job],
        *,
        tick: float = 5.0,
        wake_gap: float = WAKE_GAP,
    ) -> None:
        self.services = services
        self.jobs = list(jobs)
        self.tick = tick
        self.wake_gap = wake_gap
        self.leadership = Leadership(services.db, self.events_written)
        self._wanted: set[str] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._was_leading: bool | None = None

    @property
    def leading(self) -> bool:
        return self.leadership.held

    def wake(self, job_name: str) -> None:
        """Run ``job_name`` at the next tick whatever its interval (callable from any thread
        of the loop; a no-op for jobs this scheduler does not have)."""
        self._wanted.add(job_name)
        self._wakeup.set()

    def events_written(self, *_: object) -> None:
        """An outbox event committed: run the jobs that send events (``Job.on_events``) now.
        Called after a commit in this process, and on PostgreSQL for every event of every
        process through the leader's ``LISTEN`` (the interval stays the fallback)."""
        for job in self.jobs:
            if job.on_events:
                self.wake(job.name)

    async def run_due(self) -> dict[str, int]:
        """Run every job that is due now, one after another; returns items per job run."""
        done: dict[str, int] = {}
        # Each job writes only its own row, so one read before the first serves them all.
        states = await self._states()
        for job in self.jobs:
            now = self.services.clock.now()
            if not self._is_due(job, states.get(job.name), now):
                continue
            count = await self._run(job, now)
            if count is not None:
                done[job.name] = count
        return done

    def _is_due(self, job: Job, state: ScheduledJob | None, now: datetime) -> bool:
        if job.name in self._wanted:
            self._wanted.discard(job.name)
            return True
        last_success = state.last_success_at if state else None
        if (
            state is not None
            and state.last_failure_at is not None
            and (last_success is None or state.last_failure_at > last_success)
        ):
            # After a failure, retry within a minute (or the job's own interval if shorter).
            retry = timedelta(minutes=1)
            if isinstance(job.interval, timedelta):
                retry = min(retry, job.interval)
            return now >= state.last_failure_at + retry
        return now >= job.next_due(last_success, now)

    async def _states(self) -> dict[str, ScheduledJob]:
        async with self.services.db.reader() as session:
            return {row.name: row for row in await session.scalars(select(ScheduledJob))}

    async def _record(self, name: str, **values: object) -> None:
        async with self.services.db.transaction() as session:
            row = await session.get(ScheduledJob, name, with_for_update=True)
            if row is None:
                row = ScheduledJob(name=name)
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)

    async def _run(self, job: Job, now: datetime) -> int | None:
        """One run of ``job``, recorded and counted; a failure is logged, never raised."""
        metrics.JOB_RUNS.labels(job.name).inc()
        log.debug("job %s started", job.name, extra={"job": job.name})
        await self._record(job.name, last_started_at=now)
        try:
            count = await job.run(self.services, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.JOB_FAILURES.labels(job.name).inc()
            log.exception("job %s failed", job.name, extra={"job": job.name})
            with contextlib.suppress(Exception):  # the database may be the failure
                await self._record(
                    job.name, last_failure_at=now, last_error=f"{type(exc).__name__}: {exc}"
                )
            return None
        await self._record(job.name, last_success_at=now, last_count=count, last_error=None)
        metrics.JOB_ITEMS.labels(job.name).inc(count)
        metrics.JOB_LAST_SUCCESS.labels(job.name).set(now.timestamp())
        log.log(
            logging.INFO if count else logging.DEBUG,  # frequent jobs that found nothing: quiet
            "job %s done: %d item(s)",
            job.name,
            count,
            extra={"job": job.name, "items": count},
        )
        return count

    async def step(self) -> dict[str, int]:
        """One tick: take or keep the lead, then run what is due; nothing when following."""
        try:
            leading = await self.leadership.acquire()
        except Exception:
            log.warning("scheduler could not reach the database to lead", exc_info=True)
            leading = False
        metrics.SCHEDULER_LEADER.set(1 if leading else 0)
        if leading != self._was_leading:
            self._was_leading = leading
            log.info("scheduler %s", "leads" if leading else "follows (another process leads)")
        if not leading:
            return {}
        return await self.run_due()

    async def run_forever(self) -> None:
        """Tick until cancelled; a cancelled run is rolled back and done again next time."""
        names = ", ".join(j.name for j in self.jobs)
        log.info("scheduler started (pid %d): %s", os.getpid(), names)
        try:
            loop = asyncio.get_running_loop()
            while True:
                self._wakeup.clear()  # before the step: a wake during it runs the next at once
                started = loop.time()
                try:
                    await self.step()
                except Exception:
                    log.exception("scheduler tick failed")
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.tick)
                except TimeoutError:
                    continue
                # Woken: a burst of events is sent by one step, not one step per event.
                await asyncio.sleep(started + self.wake_gap - loop.time())
        finally:
            await self.leadership.release()
            metrics.SCHEDULER_LEADER.set(0)

    def start(self) -> None:
        """Run ``run_forever`` in the background of the running loop."""
        self._task = asyncio.create_task(self.run_forever(), name="baton-scheduler")

    async def stop(self) -> None:
        """Stop at once: a job in flight is cancelled (its transaction rolls back)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
