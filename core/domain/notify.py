"""Models of the notify room: scheduled-job bookkeeping, webhook endpoints and deliveries."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.domain.base import Base, UTCDateTime
from core.domain.models import _enum


class DeliveryState(enum.StrEnum):
    """Where a webhook delivery stands."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"


class ScheduledJob(Base):
    """One scheduler job's bookkeeping: when it last ran, succeeded and failed, so that the
    next leader (after a restart or a failover) knows what is due."""

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_count: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookEndpoint(Base):
    """An integrator's URL, the event kinds it wants and the role that shapes its payloads.

    ``secret`` signs every request; after a rotation ``previous_secret`` signs too until
    ``previous_secret_expires_at``. ``cursor`` is the last outbox event id fanned out to it.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    role: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[str | None] = mapped_column(String(64))


class WebhookDelivery(Base):
    """One outbox event owed to one endpoint: at most one row per pair, retried in place."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("workflow_events.id"))
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class RiskWarningState(Base):
    """A risk warning the health sweep found raised on a customer, kept until it clears:
    the sweep writes ``RISK_WARNING_RAISED`` when a row appears and ``RISK_WARNING_CLEARED``
    when it goes, so each change is one outbox event however often the sweep runs."""

    __tablename__ = "risk_warning_states"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    level: Mapped[str] = mapped_column(String(32))
    signal: Mapped[str] = mapped_column(String(100))
    # The health indicator that raised it (``HealthIndicator.<name>`` guards it); None for a
    # plugin health signal.
    indicator: Mapped[str | None] = mapped_column(String(100))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SubscriptionLease(Base):
    """One open subscription connection (WebSocket) on PostgreSQL, so that the per-user limit
    holds across workers and hosts: its worker renews ``expires_at`` while it is open and
    deletes the row on close; a crashed worker's rows simply expire."""

    __tablename__ = "subscription_leases"
    __table_args__ = (Index("ix_subscription_leases_user", "user_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    worker: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
