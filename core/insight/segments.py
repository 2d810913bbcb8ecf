"""Engagement stages and RFM scores, as SQL expressions (filter, order, count set-based).

Engagement stage, from the customer's activities (any kind), kept apart from the sales
``lifecycleStage`` the assignment rules use. With ``first``/``last`` the first and last
activity (the creation time when there is none), in this order:

- NEW: ``first`` within the last ``new_days`` (default 90);
- ACTIVE: ``last`` within the last ``active_days`` (default 90);
- DORMANT: ``last`` within the last ``churned_days`` (default 365);
- CHURNED: otherwise.

An unexpired ``engagement`` override (``overrideTier``) takes precedence.

RFM, over the orders of the last 365 days of every customer with one: recency (the last
order), frequency (the number of orders) and monetary value (their sum) are each scored 1-5 by
quintile (``NTILE(5)``, 5 the most recent, frequent or valuable). The segment follows from the
scores (first match): CHAMPIONS R≥4 F≥4 M≥4; AT_RISK R≤2 F≥3; LOYAL F≥4; NEW R≥4 F≤2;
LOST R≤2 F≤2; POTENTIAL otherwise. Ties are broken by customer id. Customers without an
order in the year have no RFM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Subquery,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)

from core.domain import Activity, ActivityKind, Customer, EngagementStage, TierOverride

STAGES = tuple(EngagementStage)
RFM_WINDOW = timedelta(days=365)
SEGMENTS = ("CHAMPIONS", "AT_RISK", "LOYAL", "NEW", "LOST", "POTENTIAL")


@dataclass(frozen=True)
class EngagementRule:
    """The windows of the engagement stages, in days (``BATON_ENGAGEMENT_*_DAYS``)."""

    new_days: int = 90
    active_days: int = 90
    churned_days: int = 365

    def problems(self) -> list[str]:
        if min(self.new_days, self.active_days, self.churned_days) < 1:
            return ["engagement windows must be at least one day"]
        if self.churned_days < self.active_days:
            return ["the churned window must be at least the active window"]
        return []


def engagement_stage(rule: EngagementRule, now: datetime) -> ColumnElement[Any]:
    """The customer's engagement stage (a correlated expression over ``Customer``)."""
    first = func.coalesce(
        select(func.min(Activity.at))
        .where(Activity.customer_id == Customer.id, Activity.at <= now)
        .scalar_subquery(),
        Customer.created_at,
    )
    last = func.coalesce(
        select(func.max(Activity.at))
        .where(Activity.customer_id == Customer.id, Activity.at <= now)
        .scalar_subquery(),
        Customer.created_at,
    )
    computed = case(
        (first > now - timedelta(days=rule.new_days), literal(EngagementStage.NEW.value)),
        (last > now - timedelta(days=rule.active_days), literal(EngagementStage.ACTIVE.value)),
        (last > now - timedelta(days=rule.churned_days), literal(EngagementStage.DORMANT.value)),
        else_=literal(EngagementStage.CHURNED.value),
    )
    overridden = (
        select(TierOverride.value)
        .where(
            TierOverride.customer_id == Customer.id,
            TierOverride.tier == "engagement",
            or_(TierOverride.expires_at.is_(None), TierOverride.expires_at > now),
        )
        .scalar_subquery()
    )
    return func.coalesce(overridden, computed)


def stage_rank(stage: ColumnElement[Any]) -> ColumnElement[int]:
    """NEW 0, ACTIVE 1, DORMANT 2, CHURNED 3: the order ``engagementStage`` sorts in."""
    return case(*((stage == s.value, i) for i, s in enumerate(STAGES)), else_=len(STAGES))


def rfm_table(now: datetime) -> Subquery:
    """Every customer with an order in the last year: ``customer_id, recency, frequency,
    monetary, score (R·100 + F·10 + M), segment`` (one statement with window functions)."""
    totals = (
        select(
            Activity.customer_id.label("customer_id"),
            func.max(Activity.at).label("last_at"),
            func.count().label("orders"),
            func.sum(Activity.amount).label("amount"),
        )
        .where(
            Activity.kind == ActivityKind.ORDER,
            Activity.at > now - RFM_WINDOW,
            Activity.at <= now,
        )
        .group_by(Activity.customer_id)
        .subquery()
    )
    tie = totals.c.customer_id
    scored = select(
        totals.c.customer_id,
        func.ntile(5).over(order_by=(totals.c.last_at, tie)).label("r"),
        func.ntile(5).over(order_by=(totals.c.orders, tie)).label("f"),
        func.ntile(5).over(order_by=(totals.c.amount, tie)).label("m"),
    ).subquery()
    r, f, m = scored.c.r, scored.c.f, scored.c.m
    segment = case(
        (and_(r >= 4, f >= 4, m >= 4), literal("CHAMPIONS")),
        (and_(r <= 2, f >= 3), literal("AT_RISK")),
        (f >= 4, literal("LOYAL")),
        (and_(r >= 4, f <= 2), literal("NEW")),
        (and_(r <= 2, f <= 2), literal("LOST")),
        else_=literal("POTENTIAL"),
    )
    return select(
        scored.c.customer_id,
        r.label("recency"),
        f.label("frequency"),
        m.label("monetary"),
        (r * 100 + f * 10 + m).cast(Integer).label("score"),
        segment.label("segment"),
    ).subquery("rfm")
