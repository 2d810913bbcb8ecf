"""What the indicators read: per customer, eight 90-day periods of activities and surveys.

Loaded set-based, in a constant number of statements whatever the number of customers: one
aggregate over activities (one column per period and measure), one over answered surveys and
one window query for the time from each complaint to the next interaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, overload

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import Activity, ActivityKind, Survey, SurveyKind, SurveyStatus

PERIOD = timedelta(days=90)
PERIODS = 8  # the trend shows four; order stability and changes look a year further back
Ids = Sequence[str] | Select[Any]


@dataclass
class Period:
    """One customer's 90-day period, ``(end - 90 days, end]``; period 0 ends at ``as_of``."""

    orders: int = 0
    order_amount: Decimal = Decimal(0)
    order_amount_sq: float = 0.0
    order_categories: set[str] = field(default_factory=set)
    last_at: dict[ActivityKind, datetime] = field(default_factory=dict)
    interactions: int = 0
    complaints: int = 0
    leave_intents: int = 0
    referrals: int = 0
    payments: int = 0
    late_payments: int = 0
    response_days: list[float] = field(default_factory=list)
    survey_sum: dict[SurveyKind, int] = field(default_factory=dict)
    survey_n: dict[SurveyKind, int] = field(default_factory=dict)

    @property
    def last_order_at(self) -> datetime | None:
        return self.last_at.get(ActivityKind.ORDER)

    def survey_mean(self, kind: SurveyKind) -> float | None:
        n = self.survey_n.get(kind, 0)
        return self.survey_sum.get(kind, 0) / n if n else None


@dataclass
class CustomerFacts:
    """A customer's periods, newest first, counted back from ``as_of``."""

    customer_id: str
    as_of: datetime
    periods: list[Period] = field(default_factory=lambda: [Period() for _ in range(PERIODS)])

    def end(self, k: int) -> datetime:
        """When period ``k`` ends (period 0 ends at ``as_of``)."""
        return self.as_of - k * PERIOD

    def get(self, k: int) -> Period | None:
        return self.periods[k] if 0 <= k < len(self.periods) else None


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
def aware(moment: datetime | None) -> datetime | None:
    """``moment`` as aware UTC (SQLite hands back naive UTC)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _in(k: int, column: Any, as_of: datetime) -> Any:
    """``column`` falls in period ``k``: ``(as_of - (k+1)·90 d, as_of - k·90 d]``."""
    end = as_of - k * PERIOD
    return and_(column > end - PERIOD, column <= end)


def period_of(at: datetime, as_of: datetime) -> int:
    """The period ``at`` falls in (see ``_in``)."""
    delta = as_of - at
    return int((delta - timedelta(microseconds=1)) / PERIOD) if delta > timedelta(0) else 0


async def load_facts(session: AsyncSession, ids: Ids, as_of: datetime) -> dict[str, CustomerFacts]:
    """The facts of the customers ``ids`` (a list, or a query of ids when they are many)."""
    found: dict[str, CustomerFacts] = {}

    def of(customer_id: str) -> CustomerFacts:
        facts = found.get(customer_id)
        if facts is None:  # not setdefault: building eight periods per row is most of the cost
            facts = found[customer_id] = CustomerFacts(customer_id, as_of)
        return facts

    since = as_of - PERIODS * PERIOD
    columns = []
    for k in range(PERIODS):
        inside = _in(k, Activity.at, as_of)
        columns += [
            func.sum(case((inside, 1), else_=0)).label(f"n{k}"),
            func.sum(case((inside, Activity.amount), else_=0)).label(f"amount{k}"),
            func.sum(case((inside, Activity.amount * Activity.amount), else_=0)).label(f"sq{k}"),
            func.sum(case((and_(inside, Activity.days_late > 0), 1), else_=0)).label(f"late{k}"),
            func.max(case((inside, Activity.at))).label(f"last{k}"),
        ]
    stmt = (
        select(Activity.customer_id, Activity.kind, Activity.category, *columns)
        .where(Activity.customer_id.in_(ids), Activity.at > since, Activity.at <= as_of)
        .group_by(Activity.customer_id, Activity.kind, Activity.category)
    )
    for row in await session.execute(stmt):
        customer_id, kind, category = row[0], ActivityKind(row[1]), row[2]
        facts = of(customer_id)
        for k, p in enumerate(facts.periods):
            n, amount, sq, late, last = row[3 + 5 * k : 8 + 5 * k]
            if not n:
                continue
            n = int(n)
            last = aware(last)
            if last is not None and (kind not in p.last_at or last > p.last_at[kind]):
                p.last_at[kind] = last
            if kind is ActivityKind.ORDER:
                p.orders += n
                p.order_amount += Decimal(amount or 0)
                p.order_amount_sq += float(sq or 0)
                if category:
                    p.order_categories.add(category)
            elif kind is ActivityKind.INTERACTION:
                p.interactions += n
            elif kind is ActivityKind.COMPLAINT:
                p.complaints += n
            elif kind is ActivityKind.LEAVE_INTENT:
                p.leave_intents += n
            elif kind is ActivityKind.REFERRAL:
                p.referrals += n
            elif kind is ActivityKind.PAYMENT:
                p.payments += n
                p.late_payments += int(late or 0)
    await _surveys(session, ids, as_of, since, of)
    await _response_times(session, ids, as_of, since, of)
    return found


async def _surveys(
    session: AsyncSession, ids: Ids, as_of: datetime, since: datetime, of: Any
) -> None:
    columns = []
    for k in range(PERIODS):
        inside = _in(k, Survey.answered_at, as_of)
        columns += [
            func.sum(case((inside, Survey.score), else_=0)).label(f"sum{k}"),
            func.sum(case((inside, 1), else_=0)).label(f"n{k}"),
        ]
    stmt = (
        select(Survey.customer_id, Survey.kind, *columns)
        .where(
            Survey.customer_id.in_(ids),
            Survey.status == SurveyStatus.ANSWERED,
            Survey.answered_at > since,
            Survey.answered_at <= as_of,
        )
        .group_by(Survey.customer_id, Survey.kind)
    )
    for row in await session.execute(stmt):
        kind = SurveyKind(row.kind)
        for k, p in enumerate(of(row.customer_id).periods):
            if n := int(getattr(row, f"n{k}") or 0):
                p.survey_n[kind] = n
                p.survey_sum[kind] = int(getattr(row, f"sum{k}") or 0)


async def _response_times(
    session: AsyncSession, ids: Ids, as_of: datetime, since: datetime, of: Any
) -> None:
    """Each complaint with the first interaction after it (a window over the customer's
    complaints and interactions, newest last); a complaint still unanswered counts up to now."""
    kinds = (ActivityKind.COMPLAINT, ActivityKind.INTERACTION)
    answered = (
        func.min(case((Activity.kind == ActivityKind.INTERACTION, Activity.at)))
        .over(
            partition_by=Activity.customer_id,
            order_by=(Activity.at, Activity.id),
            rows=(1, None),
        )
        .label("answered_at")
    )
    inner = (
        select(Activity.customer_id, Activity.kind, Activity.at, answered)
        .where(
            Activity.customer_id.in_(ids),
            Activity.kind.in_(kinds),
            Activity.at > since,
            Activity.at <= as_of,
        )
        .subquery()
    )
    stmt = select(inner.c.customer_id, inner.c.at, inner.c.answered_at).where(
        inner.c.kind == ActivityKind.COMPLAINT
    )
    for row in await session.execute(stmt):
        at = aware(row.at)
        assert at is not None
        facts = of(row.customer_id)
        k = min(period_of(at, as_of), PERIODS - 1)
        # Measured as of the end of the complaint's period: a later answer does not count yet.
        end = facts.end(k)
        answered_at = aware(row.answered_at)
        until = answered_at if answered_at is not None and answered_at <= end else end
        facts.periods[k].response_days.append((until - at).total_seconds() / 86400)
