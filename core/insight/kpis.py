"""Retention KPIs per owner, team or tier over a period, and the managers' portfolio counts.

For the period ``[since, until)`` and the equally long period before it:

- repurchase rate: of the customers who ordered in the period before, the share (%) who
  ordered again in the period (a month, a quarter or a year: the caller picks the length);
- churn rate: of those same customers, the share who did not (100 - repurchase rate);
- AOV growth: change (%) in the average order amount, period against the one before;
- referral rate: the share (%) of the group's customers who referred someone in the period;
- NPS: see ``core.insight.surveys``.

Each figure is one grouped statement over activities (the NPS one over surveys), whatever the
number of customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import (
    Activity,
    ActivityKind,
    Customer,
    CustomerHealthRow,
    Handover,
    HandoverStatus,
    Ownership,
    User,
    ValueTier,
)
from core.insight import surveys


@dataclass(frozen=True)
class Kpis:
    """One group's KPIs (None: nothing to compute from)."""

    key: str | None
    customers: int
    repurchase_rate: float | None
    churn_rate: float | None
    aov_growth: float | None
    referral_rate: float | None
    nps: float | None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole * 100, 1) if whole else None


def group_key(by: str) -> Any:
    """The grouping column: the current owner, the owner's team or the value tier."""
    return {"OWNER": Ownership.owner_id, "TEAM": User.team, "TIER": Customer.value_tier}[by]


async def kpis(
    session: AsyncSession,
    by: str,
    since: datetime,
    until: datetime,
    among: Select[Any] | None = None,
) -> list[Kpis]:
    """The KPIs of ``[since, until)`` grouped ``by`` OWNER, TEAM or TIER."""
    before = since - (until - since)
    is_order = Activity.kind == ActivityKind.ORDER
    now_, then = and_(Activity.at >= since, Activity.at < until), Activity.at < since
    per_customer = (
        select(
            Activity.customer_id.label("customer_id"),
            func.sum(case((and_(is_order, now_), 1), else_=0)).label("orders"),
            func.sum(case((and_(is_order, now_), Activity.amount), else_=0)).label("amount"),
            func.sum(case((and_(is_order, then), 1), else_=0)).label("orders_before"),
            func.sum(case((and_(is_order, then), Activity.amount), else_=0)).label("amount_before"),
            func.sum(case((and_(Activity.kind == ActivityKind.REFERRAL, now_), 1), else_=0)).label(
                "referrals"
            ),
        )
        .where(
            Activity.at >= before,
            Activity.at < until,
            # Only these kinds count: the rest need not be read and grouped at all.
            Activity.kind.in_((ActivityKind.ORDER, ActivityKind.REFERRAL)),
        )
        .group_by(Activity.customer_id)
        .subquery()
    )
    a = per_customer.c
    key = group_key(by).label("key")
    bought_before = func.coalesce(a.orders_before, 0) > 0
    stmt = (
        select(
            key,
            func.count().label("customers"),
            func.sum(case((bought_before, 1), else_=0)).label("buyers_before"),
            func.sum(case((and_(bought_before, a.orders > 0), 1), else_=0)).label("again"),
            func.coalesce(func.sum(a.orders), 0).label("orders"),
            func.coalesce(func.sum(a.amount), 0).label("amount"),
            func.coalesce(func.sum(a.orders_before), 0).label("orders_before"),
            func.coalesce(func.sum(a.amount_before), 0).label("amount_before"),
            func.sum(case((a.referrals > 0, 1), else_=0)).label("referrers"),
        )
        .select_from(Customer)
        .outerjoin(per_customer, a.customer_id == Customer.id)
        .outerjoin(
            Ownership, and_(Ownership.customer_id == Customer.id, Ownership.valid_to.is_(None))
        )
        .outerjoin(User, User.id == Ownership.owner_id)
        .group_by(key)
    )
    if among is not None:
        stmt = stmt.where(Customer.id.in_(among))
    nps = {g.key: g.score for g in await surveys.nps(session, by, since, until, among)}
    found = []
    for row in await session.execute(stmt):
        label = getattr(row.key, "value", row.key)
        orders, orders_before = int(row.orders), int(row.orders_before)
        aov = float(row.amount) / orders if orders else None
        aov_before = float(row.amount_before) / orders_before if orders_before else None
        growth = (
            round((aov - aov_before) / aov_before * 100, 1)
            if aov is not None and aov_before
            else None
        )
        buyers = int(row.buyers_before or 0)
        again = int(row.again or 0)
        found.append(
            Kpis(
                key=label,
                customers=int(row.customers),
                repurchase_rate=_share(again, buyers),
                churn_rate=_share(buyers - again, buyers),
                aov_growth=growth,
                referral_rate=_share(int(row.referrers or 0), int(row.customers)),
                nps=nps.get(label),
            )
        )
    found.sort(key=lambda k: (k.key is None, k.key or ""))
    return found


OPEN_HANDOVER = (HandoverStatus.CLOSED, HandoverStatus.CANCELLED)


async def overdue_handovers(
    session: AsyncSession, owner_ids: list[str], now: datetime
) -> dict[str, int]:
    """Open handovers past their step's deadline, per outgoing or incoming owner."""
    found = dict.fromkeys(owner_ids, 0)
    late = (
        Handover.due_at.is_not(None),
        Handover.due_at < now,
        Handover.status.not_in(OPEN_HANDOVER),
    )
    for column in (Handover.from_owner_id, Handover.to_owner_id):
        rows = await session.execute(
            select(column, func.count()).where(column.in_(owner_ids), *late).group_by(column)
        )
        for owner, n in rows:
            if owner is not None:
                found[owner] += int(n)
    return found


def portfolio_counts(
    in_scope: Select[Any] | None,
) -> Select[str, ValueTier | None, str, int, int, datetime]:
    """The assigned customers (of ``in_scope``, a query of customers; None: everyone) per
    owner, value tier and stored health level, with their warnings and the oldest stored
    health (one grouped statement)."""
    h = CustomerHealthRow
    stmt = (
        select(
            Ownership.owner_id,
            Customer.value_tier,
            h.level,
            func.count().label("customers"),
            func.sum(h.warnings).label("warnings"),
            func.min(h.computed_at).label("computed_at"),
        )
        .select_from(Customer)
        .join(Ownership, and_(Ownership.customer_id == Customer.id, Ownership.valid_to.is_(None)))
        .outerjoin(h, h.customer_id == Customer.id)
        .group_by(Ownership.owner_id, Customer.value_tier, h.level)
    )
    if in_scope is not None:
        stmt = stmt.where(Customer.id.in_(in_scope.with_only_columns(Customer.id)))
    return stmt
