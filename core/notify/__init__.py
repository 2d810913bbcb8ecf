"""Notifications: the scheduler (one leader) and what it runs, webhooks delivered from the
workflow-event outbox, e-mail and live subscriptions.

``default_jobs`` is the job registry: a new job is one more entry there.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.config import Settings
from core.notify.scheduler import QUARTERLY, Job, Leadership, Scheduler, configure
from core.services import Actor, Services

DEADLINE_SWEEP = "deadline_sweep"
TIER_REVIEW = "tier_review"
SURVEYS = "surveys"


async def sweep_deadlines(services: Services, now: datetime) -> int:
    """DUE_SOON and OVERDUE events, once per deadline (what `baton handovers sweep` does)."""
    return sum((await services.handover.sweep_deadlines()).values())


async def review_tiers(services: Services, now: datetime) -> int:
    """The periodic tier review (what `baton tiers review` does); returns the movements."""
    return len((await services.tiering.review(Actor.system())).movements)


def default_jobs(settings: Settings) -> list[Job]:
    """Every job with its default interval, then the ``BATON_SCHEDULE_*`` intervals applied."""
    from core.insight.service import refresh_job
    from core.insight.service import run as schedule_surveys
    from core.notify.email import EmailNotifier  # they build on this package
    from core.notify.risk import HEALTH_SWEEP, sweep_health
    from core.notify.webhooks_delivery import webhook_job

    jobs = [
        Job(DEADLINE_SWEEP, timedelta(minutes=15), sweep_deadlines),
        Job(TIER_REVIEW, QUARTERLY, review_tiers),
        # Risk warnings raised and cleared, as outbox events (before the jobs that send them).
        Job(HEALTH_SWEEP, timedelta(minutes=15), sweep_health),
        webhook_job(settings),
        # Nothing to do (and no connection made) while BATON_SMTP_HOST is unset: then it is not
        # woken by every event either (each run records its start and end, two transactions).
        Job(
            EmailNotifier.name,
            timedelta(minutes=1),
            EmailNotifier(settings).run,
            on_events=bool(settings.smtp_host),
        ),
        # Quarterly NPS, the post-handover survey a month after completion, post-delivery.
        Job(SURVEYS, timedelta(hours=1), schedule_surveys),
        # Materialised engagement and RFM rows: the due ones, or a daily re-rank of everyone.
        Job("insight_refresh", timedelta(minutes=1), refresh_job),
    ]
    return configure(jobs, dict(settings.schedules))


def scheduler_for(services: Services, settings: Settings) -> Scheduler:
    """The scheduler a ``baton serve`` or ``baton worker`` process runs."""
    return Scheduler(services, default_jobs(settings), tick=settings.scheduler_tick)


__all__ = [
    "DEADLINE_SWEEP",
    "TIER_REVIEW",
    "Job",
    "Leadership",
    "Scheduler",
    "default_jobs",
    "scheduler_for",
]
