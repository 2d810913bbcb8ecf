"""The monthly roll-up: each customer's orders, order value and referrals per calendar month
(UTC), the ``customer_months`` rows the retention KPIs read when a period is whole months.

- ``refresh`` recomputes the months of the customers marked dirty (``core.insight.
  materialised``: every recorded or imported activity marks its customer) from their
  activities, set-based in two statements whatever their number; the refresh and the re-rank
  call it before they remove the markers, so the roll-up is as fresh as the insight rows (one
  job interval behind the writes).
- ``rebuild`` recomputes every row (``baton insight refresh --all``; migration 0021 fills the
  table once from the activities already recorded).

A month is the integer ``year * 12 + month - 1``, so that a period of months is a range.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    delete,
    extract,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import Activity, ActivityKind, CustomerMonth, InsightDirty

KINDS = (ActivityKind.ORDER, ActivityKind.REFERRAL)
COLUMNS = (
    "customer_id",
    "month",
    "orders",
    "amount",
    "referrals",
    "prev_order_month",
    "prev_referral_month",
)


def month_of(moment: datetime) -> int:
    """The month ``moment`` falls in (UTC), as stored."""
    moment = moment.astimezone(UTC)
    return moment.year * 12 + moment.month - 1


def whole_month(moment: datetime) -> int | None:
    """The month ``moment`` begins (midnight UTC on the 1st), else None."""
    moment = moment.astimezone(UTC)
    if moment != datetime(moment.year, moment.month, 1, tzinfo=UTC):
        return None
    return month_of(moment)


def month_start(month: int) -> datetime:
    """The first moment of ``month``."""
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def sql_month(at: Any, dialect: str) -> ColumnElement[int]:
    """``month_of`` in SQL, over a stored moment."""
    year: ColumnElement[Any]
    month: ColumnElement[Any]
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
        year, month = func.substr(at, 1, 4), func.substr(at, 6, 2)
    else:
        utc = func.timezone("UTC", at)
        year, month = extract("year", utc), extract("month", utc)
    return cast(cast(year, Integer) * 12 + cast(month, Integer) - 1, Integer)


def _months(dialect: str, of: Any | None) -> Any:
    """Per customer (of the query of ids ``of``, or everyone) and month: orders, their value
    and referrals, and the latest earlier month with an order and with a referral (a grouped
    select over the order and referral activities, and a window over its rows)."""
    month = sql_month(Activity.at, dialect).label("month")
    is_order = Activity.kind == ActivityKind.ORDER
    grouped = (
        select(
            Activity.customer_id.label("customer_id"),
            month,
            func.sum(case((is_order, 1), else_=0)).label("orders"),
            func.coalesce(func.sum(case((is_order, Activity.amount), else_=0)), 0).label("amount"),
            func.sum(case((Activity.kind == ActivityKind.REFERRAL, 1), else_=0)).label("referrals"),
        )
        .where(Activity.kind.in_(KINDS))
        .group_by(Activity.customer_id, month)
    )
    if of is not None:
        grouped = grouped.where(Activity.customer_id.in_(of))
    g = grouped.subquery("g").c

    def latest_before(count: Any) -> Any:
        return func.max(case((count > 0, g.month))).over(
            partition_by=g.customer_id, order_by=g.month, rows=(None, -1)
        )

    return select(
        g.customer_id,
        g.month,
        g.orders,
        g.amount,
        g.referrals,
        latest_before(g.orders),
        latest_before(g.referrals),
    )


async def refresh(session: AsyncSession, marked: int | None) -> None:
    """Recompute the months of the customers marked dirty up to the marker ``marked``."""
    if marked is None:
        return
    dirty = (
        select(InsightDirty.customer_id)
        .where(InsightDirty.id <= marked)
        .distinct()
        .scalar_subquery()
    )
    dialect = session.get_bind().dialect.name
    await session.execute(delete(CustomerMonth).where(CustomerMonth.customer_id.in_(dirty)))
    await session.execute(insert(CustomerMonth).from_select(COLUMNS, _months(dialect, dirty)))


async def rebuild(session: AsyncSession) -> int:
    """Recompute every row; returns how many there are."""
    dialect = session.get_bind().dialect.name
    await session.execute(delete(CustomerMonth))
    await session.execute(insert(CustomerMonth).from_select(COLUMNS, _months(dialect, None)))
    return int(await session.scalar(select(func.count()).select_from(CustomerMonth)) or 0)


def figures(since: int, until: int) -> tuple[list[Any], Any]:
    """The retention figures of the months ``[since, until)`` against as many months before,
    as sums over the roll-up's rows (``core.insight.kpis`` groups them), and the rows they
    read (a range of the month index). A customer is counted once per period by its first
    row in it: the row whose latest earlier month with an order (or a referral) falls before
    the period; so no figure needs the rows grouped per customer first."""
    m = CustomerMonth
    before = since - (until - since)
    now_, then = m.month >= since, m.month < since
    ordered, prev = m.orders > 0, m.prev_order_month
    referred, prev_referral = m.referrals > 0, m.prev_referral_month

    def count(*conditions: Any) -> Any:
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    def total(condition: Any, column: Any) -> Any:
        return func.coalesce(func.sum(case((condition, column), else_=0)), 0)

    columns = [
        count(then, ordered, or_(prev.is_(None), prev < before)).label("buyers_before"),
        count(now_, ordered, prev >= before, prev < since).label("again"),
        total(now_, m.orders).label("orders"),
        total(now_, m.amount).label("amount"),
        total(then, m.orders).label("orders_before"),
        total(then, m.amount).label("amount_before"),
        count(now_, referred, or_(prev_referral.is_(None), prev_referral < since)).label(
            "referrers"
        ),
    ]
    return columns, and_(m.month >= before, m.month < until)
