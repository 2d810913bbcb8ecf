"""Materialised customer insight: per-customer engagement and RFM rows, the markers of the
customers whose rows are out of date, and the quintile boundaries of the last re-rank."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from core.domain.base import Base, UTCDateTime


class CustomerInsight(Base):
    """One customer's engagement stage and RFM as of ``refreshed_at`` (``core.insight.
    materialised``): the raw measures, the scores (0 and nulls: no order in the year) and when
    time alone will change the row (``stale_at``, null: never)."""

    __tablename__ = "customer_insight"
    __table_args__ = (
        Index("ix_customer_insight_stage", "stage_rank", "customer_id"),
        Index("ix_customer_insight_rfm", "rfm_score", "customer_id"),
        # One stage in RFM order (the dormant key accounts): a dormant customer's RFM is low,
        # so walking the RFM index from the top would pass every active one first.
        Index("ix_customer_insight_stage_rfm", "engagement_stage", "rfm_score", "customer_id"),
        Index("ix_customer_insight_segment", "segment"),
        Index("ix_customer_insight_stale_at", "stale_at"),
        Index("ix_customer_insight_health_due", "health_due", "refreshed_at", "customer_id"),
    )

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    first_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    engagement_stage: Mapped[str] = mapped_column(String(16))
    stage_rank: Mapped[int] = mapped_column(Integer)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    orders: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    recency: Mapped[int | None] = mapped_column(Integer)
    frequency: Mapped[int | None] = mapped_column(Integer)
    monetary: Mapped[int | None] = mapped_column(Integer)
    rfm_score: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str | None] = mapped_column(String(16))
    stale_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by every refresh of the row, cleared once the customer's health is stored again.
    health_due: Mapped[bool] = mapped_column(Boolean)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InsightDirty(Base):
    """A customer whose insight row is out of date: written in the transaction that records
    its activity, survey answer or override; removed by the refresh that recomputes it."""

    __tablename__ = "insight_dirty"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(40), index=True)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InsightRank(Base):
    """The RFM quintile boundaries of the last full re-rank (one row, ``id`` 1): per measure,
    the ``[value, customer id]`` where quintiles 2 to 5 begin."""

    __tablename__ = "insight_ranks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bounds: Mapped[dict[str, Any]] = mapped_column(JSON)
    ranked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerHealthRow(Base):
    """One customer's health score, level and number of warnings as of ``computed_at`` (for
    counts over many customers, e.g. the portfolio; ``Customer.health`` is computed live)."""

    __tablename__ = "customer_health"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    warnings: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerHealthWarning(Base):
    """One warning of a stored health (``CustomerHealthRow``): the signal or indicator that
    raised it (camelCase), so that counts leave out what a viewer may not read."""

    __tablename__ = "customer_health_warnings"
    __table_args__ = (Index("ix_customer_health_warnings_signal", "signal", "customer_id"),)

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    signal: Mapped[str] = mapped_column(String(100))


class CustomerMonth(Base):
    """One customer's orders and referrals in one calendar month (UTC), ``month`` counted as
    ``year * 12 + month - 1``, with the customer's latest earlier month with an order and with
    a referral: the roll-up the retention KPIs read for whole months (``core.insight.
    rollup``), recomputed with the insight rows from the dirty markers."""

    __tablename__ = "customer_months"
    __table_args__ = (
        # A range of months is an index-only scan on PostgreSQL.
        Index(
            "ix_customer_months_month",
            "month",
            "customer_id",
            postgresql_include=[
                "orders",
                "amount",
                "referrals",
                "prev_order_month",
                "prev_referral_month",
            ],
        ),
    )

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    referrals: Mapped[int] = mapped_column(Integer)
    prev_order_month: Mapped[int | None] = mapped_column(Integer)
    prev_referral_month: Mapped[int | None] = mapped_column(Integer)
