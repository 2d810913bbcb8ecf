"""E-mail delivery: the job that plans notices after commit and sends them over SMTP.

``EmailNotifier(settings).run(services, now)`` is a scheduler job (``core.notify.scheduler``):
each run plans the notices of new outbox events (``email_plan``), in one
transaction, then sends every notice that is due. A notice is claimed (its next attempt moved
a lease ahead) before it is sent and marked ``SENT`` after, so a failed send is retried with
exponential backoff up to ``BATON_EMAIL_MAX_ATTEMPTS`` (then ``FAILED``), and a process that
dies between the SMTP server accepting a message and the row being marked sends it again when
the lease runs out: delivery is at least once, and a duplicate needs exactly that crash.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage

import aiosmtplib
from sqlalchemy import select, update

from core.config import Settings
from core.domain import LOCALES, EmailNotice, NoticeStatus
from core.notify.email_plan import Planner
from core.notify.email_templates import EmailTemplates
from core.services import Services

log = logging.getLogger("baton.email")

SEND_BATCH = 100
# A claimed notice is not picked again for this long (a send takes at most the SMTP timeout).
LEASE = timedelta(minutes=5)
FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: 1, 2, 4 … minutes, at most 6 hours."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LAST_RETRY)


class EmailNotifier:
    """Plans and sends e-mail notices; does nothing while ``BATON_SMTP_HOST`` is unset."""

    name = "email"

    def __init__(self, settings: Settings, templates: EmailTemplates | None = None) -> None:
        if settings.default_locale not in LOCALES:
            raise ValueError(f"BATON_DEFAULT_LOCALE={settings.default_locale!r}: expected zh or en")
        self.settings = settings
        self.templates = templates

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    async def run(self, services: Services, now: datetime) -> int:
        """Plan new notices, then send those due; returns how many were planned or sent."""
        if not self.enabled:
            return 0
        if self.templates is None:
            self.templates = EmailTemplates(services.plugins.plugins)
        planner = Planner(services, self.templates, self.settings.default_locale)
        async with services.db.transaction() as session:
            planned = await planner.from_outbox(session, now)
        return planned + await self.send_due(services, now)

    async def send_due(self, services: Services, now: datetime) -> int:
        """Send the notices due at ``now``; returns how many the SMTP server accepted."""
        notices = await self._claim(services, now)
        if not notices:
            return 0
        outcome = await self._deliver(notices)
        async with services.db.transaction() as session:
            for notice in notices:
                error = outcome.get(notice.id)
                attempts = notice.attempts + 1
                values: dict[str, object] = {"attempts": attempts, "last_error": error}
                if error is None:
                    values.update(status=NoticeStatus.SENT, sent_at=now)
                elif attempts >= self.settings.email_max_attempts:
                    values.update(status=NoticeStatus.FAILED)
                    log.error(
                        "e-mail %s to %s failed for good: %s", notice.id, notice.address, error
                    )
                else:
                    values.update(next_attempt_at=now + backoff(attempts))
                    log.warning(
                        "e-mail %s to %s failed (try %s): %s",
                        notice.id,
                        notice.address,
                        attempts,
                        error,
                    )
                await session.execute(
                    update(EmailNotice).where(EmailNotice.id == notice.id).values(**values)
                )
        return sum(1 for n in notices if outcome.get(n.id) is None)

    async def _claim(self, services: Services, now: datetime) -> list[EmailNotice]:
        """Due notices, their next attempt moved a lease ahead so no other run takes them."""
        due = (
            select(EmailNotice.id)
            .where(EmailNotice.status == NoticeStatus.PENDING, EmailNotice.next_attempt_at <= now)
            .order_by(EmailNotice.next_attempt_at, EmailNotice.id)
            .limit(SEND_BATCH)
        )
        async with services.db.transaction() as session:
            claimed = await session.scalars(
                update(EmailNotice)
                .where(
                    EmailNotice.id.in_(due.scalar_subquery()),
                    # Checked again on the row: a concurrent claim that committed first wins.
                    EmailNotice.status == NoticeStatus.PENDING,
                    EmailNotice.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + LEASE)
                .returning(EmailNotice)
            )
            return sorted(claimed, key=lambda n: n.id)

    async def _deliver(self, notices: Sequence[EmailNotice]) -> dict[int, str | None]:
        """Send over one SMTP connection; each notice's error, or None once accepted."""
        s = self.settings
        outcome: dict[int, str | None] = {}
        try:
            async with aiosmtplib.SMTP(
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                use_tls=s.smtp_tls,
                start_tls=False if s.smtp_tls else s.smtp_starttls,
                cert_bundle=s.smtp_ca_file or None,
                timeout=s.smtp_timeout,
            ) as smtp:
                for notice in notices:
                    try:
                        await smtp.send_message(self.message(notice))
                        outcome[notice.id] = None
                    except (
                        aiosmtplib.SMTPResponseException,
                        aiosmtplib.SMTPRecipientsRefused,
                    ) as exc:
                        outcome[notice.id] = _reason(exc)  # this message refused; go on
        except (aiosmtplib.SMTPException, OSError) as exc:  # the connection failed
            for notice in notices:
                outcome.setdefault(notice.id, _reason(exc))
        return outcome

    def message(self, notice: EmailNotice) -> EmailMessage:
        """The notice as a plain-text message with a stable Message-ID (a resend after a
        crash carries the same id, so mail clients can fold the duplicate)."""
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = notice.address
        message["Subject"] = notice.subject
        domain = self.settings.smtp_from.rpartition("@")[2] or "baton"
        message["Message-ID"] = f"<baton-notice-{notice.id}@{domain}>"
        message["X-Baton-Notice"] = f"{notice.template}; {notice.key}"
        message.set_content(notice.body)
        return message


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]
