"""Retention KPIs per owner, team or tier over a period, and the managers' portfolio counts.

For the period ``[since, until)`` and the period before it (see below):

- repurchase rate: of the customers who ordered in the period before, the share (%) who
  ordered again in the period (a month, a quarter or a year: the caller picks the length);
- churn rate: of those same customers, the share who did not (100 - repurchase rate);
- AOV growth: change (%) in the average order amount, period against the one before;
- referral rate: the share (%) of the group's customers who referred someone in the period;
- NPS: see ``core.insight.surveys``.

When the period is whole months (midnight UTC on the 1st at both ends: a month, a quarter, a
year), the period before is as many calendar months before, and the order and referral
figures come from the monthly roll-up (``core.insight.rollup``: as of the last refresh, one
job interval behind the writes); otherwise the period before is as long as the period and the
figures come from the activities themselves. Either way each figure is one grouped statement
(the NPS one over surveys), whatever the number of customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import (
    Activity,
    ActivityKind,
    Customer,
    CustomerHealthRow,
    CustomerHealthWarning,
    CustomerMonth,
    Handover,
    HandoverStatus,
    Ownership,
    User,
    ValueTier,
)
from core.insight import rollup, surveys


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


def period_before(since: datetime, until: datetime) -> datetime:
    """Where the period before ``[since, until)`` begins: as many calendar months before when
    both ends are whole months (the previous month, quarter or year), else as long before."""
    first, end = rollup.whole_month(since), rollup.whole_month(until)
    if first is not None and end is not None:
        return rollup.month_start(first - (end - first))
    return since - (until - since)


def _grouped(stmt: Select[Any], by: str, customer_id: Any) -> Select[Any]:
    """``stmt`` (over rows of ``customer_id``) joined to what ``group_key(by)`` reads."""
    if by == "TIER" and customer_id is not Customer.id:
        stmt = stmt.join(Customer, Customer.id == customer_id)
    stmt = stmt.outerjoin(
        Ownership, and_(Ownership.customer_id == customer_id, Ownership.valid_to.is_(None))
    )
    if by == "TEAM":
        stmt = stmt.outerjoin(User, User.id == Ownership.owner_id)
    return stmt.group_by(group_key(by))


def _live(by: str, since: datetime, until: datetime) -> Select[Any]:
    """The figures per group (with its customers) from the activities: each customer's
    orders and referrals of the two periods, then grouped."""
    before = period_before(since, until)
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
            Activity.kind.in_(rollup.KINDS),
        )
        .group_by(Activity.customer_id)
        .subquery()
    )
    a = per_customer.c
    bought_before = func.coalesce(a.orders_before, 0) > 0
    stmt = select(
        group_key(by).label("key"),
        func.count().label("customers"),
        func.sum(case((bought_before, 1), else_=0)).label("buyers_before"),
        func.sum(case((and_(bought_before, a.orders > 0), 1), else_=0)).label("again"),
        func.coalesce(func.sum(a.orders), 0).label("orders"),
        func.coalesce(func.sum(a.amount), 0).label("amount"),
        func.coalesce(func.sum(a.orders_before), 0).label("orders_before"),
        func.coalesce(func.sum(a.amount_before), 0).label("amount_before"),
        func.sum(case((a.referrals > 0, 1), else_=0)).label("referrers"),
    ).select_from(Customer)
    return _grouped(stmt.outerjoin(per_customer, a.customer_id == Customer.id), by, Customer.id)


async def _rows(
    session: AsyncSession,
    by: str,
    since: datetime,
    until: datetime,
    among: Select[Any] | None,
    live: bool,
) -> list[Any]:
    """The figures per group: from the roll-up's rows of the months (and the customers per
    group apart: two statements) when both ends are whole months, else from the activities."""
    first, end = rollup.whole_month(since), rollup.whole_month(until)
    if live or first is None or end is None or end <= first:
        stmt = _live(by, since, until)
        if among is not None:
            stmt = stmt.where(Customer.id.in_(among))
        return list(await session.execute(stmt))
    key = group_key(by).label("key")
    counted = _grouped(
        select(key, func.count().label("customers")).select_from(Customer), by, Customer.id
    )
    columns, rows = rollup.figures(first, end)
    month = CustomerMonth.customer_id
    summed = _grouped(select(key, *columns).select_from(CustomerMonth).where(rows), by, month)
    if among is not None:
        counted = counted.where(Customer.id.in_(among))
        summed = summed.where(month.in_(among))
    names = [c.name for c in columns]
    figures = {r.key: {n: getattr(r, n) for n in names} for r in await session.execute(summed)}
    zero = dict.fromkeys(names, 0)
    return [
        SimpleNamespace(key=k, customers=n, **figures.get(k, zero))
        for k, n in await session.execute(counted)
    ]


async def kpis(
    session: AsyncSession,
    by: str,
    since: datetime,
    until: datetime,
    among: Select[Any] | None = None,
    live: bool = False,
) -> list[Kpis]:
    """The KPIs of ``[since, until)`` grouped ``by`` OWNER, TEAM or TIER: from the monthly
    roll-up when both ends are whole months (unless ``live``), else from the activities."""
    rows = await _rows(session, by, since, until, among, live)
    nps = {g.key: g.score for g in await surveys.nps(session, by, since, until, among)}
    found = []
    for row in rows:
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


def readable_warnings(hidden: Sequence[str]) -> Select[Any]:
    """The stored warnings (``customer_id`` of each) but those raised by the ``hidden`` signals
    (the indicators the viewer may not read, camelCase): the one rule for every count of
    stored warnings a restricted viewer sees (the portfolio, account roll-ups)."""
    w = CustomerHealthWarning
    return select(w.customer_id).where(w.signal.not_in(hidden))


def warnings_shown(in_scope: Select[Any] | None, hidden: Sequence[str]) -> Select[str, int]:
    """``readable_warnings`` of the assigned customers (of ``in_scope``) per owner: what
    ``portfolio_counts`` sums, without the hidden ones (one grouped statement)."""
    shown = readable_warnings(hidden).subquery("shown")
    stmt = (
        select(Ownership.owner_id, func.count())
        .select_from(shown)
        .join(
            Ownership,
            and_(Ownership.customer_id == shown.c.customer_id, Ownership.valid_to.is_(None)),
        )
        .group_by(Ownership.owner_id)
    )
    if in_scope is not None:
        stmt = stmt.where(shown.c.customer_id.in_(in_scope.with_only_columns(Customer.id)))
    return stmt
