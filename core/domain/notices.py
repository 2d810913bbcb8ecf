"""E-mail notices: one row per (subject, recipient, template), so each is sent once."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.domain.base import Base, UTCDateTime
from core.domain.models import _enum

# The languages Baton writes e-mails in (``User.locale``).
LOCALES = ("zh", "en")


class NoticeStatus(enum.StrEnum):
    """``PENDING`` until sent; ``FAILED`` once the retries are used up."""

    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class EmailNotice(Base):
    """An e-mail to one user, rendered when planned and sent (or retried) after.

    ``key`` names what it is about and to whom (``event:<id>:<recipient>:<template>`` or
    ``health:<customer>:<warnings>:<recipient>``): the unique key is what makes a notice
    planned once however often the job runs.
    """

    __tablename__ = "email_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("workflow_events.id"), index=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[NoticeStatus] = mapped_column(_enum(NoticeStatus), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailCursor(Base):
    """The last outbox event the e-mail job has planned notices for (one row)."""

    __tablename__ = "email_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
