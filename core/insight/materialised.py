"""Materialised engagement stages and RFM: the ``customer_insight`` rows, refreshed
incrementally (the definitions are in ``core.insight.segments``).

- A write that changes what a row is computed from (a new customer, a recorded or imported
  activity or survey answer, an engagement override set or cleared) marks the customer dirty
  (``mark``) in its own transaction: an append-only marker, so concurrent writers never
  contend on it.
- ``refresh`` recomputes, set-based, the rows of the dirty customers and of rows whose
  ``stale_at`` has passed (time alone moved their stage, an order left the RFM year, or an
  override expired), in batches of ``BATCH`` customers (two statements a batch). Their RFM is
  scored against the quintile boundaries of the last re-rank. Every recomputed row is
  ``health_due``: its stored health follows (``TieringService.refresh_health``).
- Both also recompute the monthly roll-up of the dirty customers (``core.insight.rollup``)
  before they remove the markers.
- ``rerank`` recomputes every row in one ``INSERT … SELECT`` with ``NTILE(5)`` and stores the
  new boundaries. The scheduler's ``insight_refresh`` job (every minute) re-ranks when the
  last re-rank is older than ``RERANK_EVERY`` (or there is none) and refreshes otherwise.

So a stage or an RFM score is at most one job interval (plus the job's run) behind the writes,
and the quintile boundaries at most ``RERANK_EVERY`` old; each row says when it was computed
(``refreshed_at``, shown as ``refreshedAt``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import (
    Activity,
    ActivityKind,
    Customer,
    CustomerInsight,
    InsightDirty,
    InsightRank,
    TierOverride,
)
from core.domain.base import UTCDateTime
from core.insight import rollup
from core.insight.segments import RFM_WINDOW, EngagementRule, segment_of, stage_rank

BATCH = 10_000
RERANK_EVERY = timedelta(days=1)
MEASURES = ("last_order_at", "orders", "amount")  # recency, frequency, monetary
SCORES = ("recency", "frequency", "monetary")
COLUMNS = (
    "customer_id",
    "first_activity_at",
    "last_activity_at",
    "engagement_stage",
    "stage_rank",
    "last_order_at",
    "orders",
    "amount",
    "recency",
    "frequency",
    "monetary",
    "rfm_score",
    "segment",
    "stale_at",
    "health_due",
    "refreshed_at",
)


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did: the rows recomputed, whether it re-ranked everyone and, when it
    rebuilt the monthly roll-up, its rows."""

    rows: int
    reranked: bool
    months: int | None = None


async def mark(session: AsyncSession, customer_ids: Iterable[str], now: datetime) -> None:
    """Mark these customers' insight rows out of date (one statement)."""
    if rows := [{"customer_id": c, "marked_at": now} for c in sorted(set(customer_ids))]:
        await session.execute(insert(InsightDirty), rows)


def _later(moment: ColumnElement[Any], days: int, dialect: str) -> ColumnElement[Any]:
    """``moment`` plus ``days`` days, in SQL."""
    if dialect == "sqlite":  # stored as text, as SQLAlchemy writes it (six fraction digits)
        return func.strftime("%Y-%m-%d %H:%M:%f000", moment, f"+{days} days")
    return moment + literal(timedelta(days=days), type_=Interval())


def _earliest(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """The earlier of two nullable moments (null only when both are)."""
    return case((a.is_(None), b), (b.is_(None), a), (a < b, a), else_=b)


def _measures(now: datetime, ids: Any | None) -> Any:
    """Per customer (of ``ids``, or everyone): first and last activity (the creation time
    when none), the year's orders, and the active engagement override (one grouped CTE)."""
    in_year = and_(Activity.kind == ActivityKind.ORDER, Activity.at > now - RFM_WINDOW)
    stmt = (
        select(
            Customer.id.label("customer_id"),
            func.coalesce(func.min(Activity.at), Customer.created_at).label("first_at"),
            func.coalesce(func.max(Activity.at), Customer.created_at).label("last_at"),
            func.max(case((in_year, Activity.at))).label("last_order_at"),
            func.min(case((in_year, Activity.at))).label("oldest_order_at"),
            func.coalesce(func.sum(case((in_year, 1), else_=0)), 0).label("orders"),
            func.coalesce(func.sum(case((in_year, Activity.amount), else_=0)), 0).label("amount"),
            TierOverride.value.label("overridden"),
            TierOverride.expires_at.label("override_until"),
        )
        .select_from(Customer)
        .outerjoin(Activity, and_(Activity.customer_id == Customer.id, Activity.at <= now))
        .outerjoin(
            TierOverride,
            and_(
                TierOverride.customer_id == Customer.id,
                TierOverride.tier == "engagement",
                or_(TierOverride.expires_at.is_(None), TierOverride.expires_at > now),
            ),
        )
        .group_by(Customer.id, Customer.created_at, TierOverride.value, TierOverride.expires_at)
    )
    if ids is not None:
        stmt = stmt.where(Customer.id.in_(ids))
    return stmt.cte("measures")


def _stage(m: Any, rule: EngagementRule, now: datetime, dialect: str) -> tuple[Any, Any]:
    """The engagement stage and when time alone changes it (see ``core.insight.segments``)."""
    windows = (
        (m.first_at, rule.new_days, "NEW"),
        (m.last_at, rule.active_days, "ACTIVE"),
        (m.last_at, rule.churned_days, "DORMANT"),
    )
    inside = [
        (moment > now - timedelta(days=days), stage, moment, days)
        for moment, days, stage in windows
    ]
    computed = case(
        *((cond, literal(stage)) for cond, stage, _, _ in inside), else_=literal("CHURNED")
    )
    changes = case(
        (m.overridden.is_not(None), m.override_until),
        *((cond, _later(moment, days, dialect)) for cond, _, moment, days in inside),
        else_=null(),
    )
    return func.coalesce(m.overridden, computed), changes


def _row(m: Any, scores: Sequence[Any], rule: EngagementRule, now: datetime, dialect: str) -> Any:
    """The ``COLUMNS`` of a row from the measures ``m`` and the RFM ``scores``."""
    stage, stage_changes = _stage(m, rule, now, dialect)
    r, f, mon = scores
    window_changes = _later(m.oldest_order_at, RFM_WINDOW.days, dialect)
    return (
        m.customer_id,
        m.first_at,
        m.last_at,
        stage,
        stage_rank(stage),
        m.last_order_at,
        m.orders,
        m.amount,
        r,
        f,
        mon,
        func.coalesce(r * 100 + f * 10 + mon, 0).cast(Integer),
        case((r.is_not(None), segment_of(r, f, mon)), else_=null()),
        _earliest(stage_changes, window_changes),
        true(),
        bindparam("refreshed_at", now, type_=UTCDateTime()),
    )


async def rerank(session: AsyncSession, rule: EngagementRule, now: datetime) -> Refreshed:
    """Recompute every row, score RFM by quintile (``NTILE(5)``, ties by customer id) and
    store the new quintile boundaries: one ``INSERT … SELECT`` and one boundary query."""
    dialect = session.get_bind().dialect.name
    marked = await session.scalar(select(func.max(InsightDirty.id)))
    m = _measures(now, None).c
    ranked = (
        select(
            m.customer_id,
            *(
                func.ntile(5).over(order_by=(getattr(m, measure), m.customer_id)).label(score)
                for measure, score in zip(MEASURES, SCORES, strict=True)
            ),
        )
        .where(m.orders > 0)
        .subquery("ranked")
    )
    scores = [getattr(ranked.c, s) for s in SCORES]
    rows = select(*_row(m, scores, rule, now, dialect)).outerjoin(
        ranked, ranked.c.customer_id == m.customer_id
    )
    await session.execute(delete(CustomerInsight))
    await session.execute(insert(CustomerInsight).from_select(COLUMNS, rows))
    bounds = await _bounds(session)
    await session.execute(delete(InsightRank))
    session.add(InsightRank(id=1, bounds=bounds, ranked_at=now))
    await rollup.refresh(session, marked)  # the monthly roll-up of the same dirty customers
    if marked is not None:
        await session.execute(delete(InsightDirty).where(InsightDirty.id <= marked))
    count = await session.scalar(select(func.count()).select_from(CustomerInsight))
    return Refreshed(int(count or 0), True)


async def _bounds(session: AsyncSession) -> dict[str, list[list[Any]]]:
    """Per score, ``[value, customer id]`` where each quintile from 2 up begins: the first row
    of each quintile in the measure's order (one statement per score)."""
    t = CustomerInsight
    found: dict[str, list[list[Any]]] = {}
    for measure, score in zip(MEASURES, SCORES, strict=True):
        value, tile = getattr(t, measure), getattr(t, score)
        first = func.row_number().over(partition_by=tile, order_by=(value, t.customer_id))
        inner = (
            select(tile.label("tile"), value.label("value"), t.customer_id, first.label("n"))
            .where(tile.is_not(None))
            .subquery()
        )
        rows = await session.execute(
            select(inner.c.value, inner.c.customer_id)
            .where(inner.c.n == 1, inner.c.tile > 1)
            .order_by(inner.c.tile)
        )
        found[score] = [[_jsonable(v), customer_id] for v, customer_id in rows]
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else value


def _scored(m: Any, bounds: dict[str, list[list[Any]]]) -> list[Any]:
    """Each RFM score of the measures ``m`` against stored boundaries: 1 plus the number of
    quintile starts the ``(value, customer id)`` reaches; null without an order in the year."""
    found = []
    for measure, score in zip(MEASURES, SCORES, strict=True):
        column = getattr(m, measure)
        kind = getattr(CustomerInsight, measure).type
        reached = [
            case(
                (
                    tuple_(column, m.customer_id)
                    >= tuple_(
                        bindparam(None, _typed(measure, value), type_=kind),
                        bindparam(None, customer_id, type_=CustomerInsight.customer_id.type),
                    ),
                    1,
                ),
                else_=0,
            )
            for value, customer_id in bounds.get(score, [])
        ]
        total = sum(reached, literal(1))
        found.append(case((m.orders > 0, total), else_=null()))
    return found


def _typed(measure: str, value: Any) -> Any:
    """A boundary value back from JSON."""
    if measure == "last_order_at":
        return datetime.fromisoformat(value)
    return Decimal(value) if measure == "amount" else int(value)


def _due(now: datetime, marked: int | None) -> Any:
    """The ids of the customers whose rows are due: dirty or stale (two index range scans)."""
    parts = [select(CustomerInsight.customer_id.label("id")).where(CustomerInsight.stale_at <= now)]
    if marked is not None:
        parts.append(select(InsightDirty.customer_id.label("id")).where(InsightDirty.id <= marked))
    return union(*parts).subquery("due")


async def refresh(session: AsyncSession, rule: EngagementRule, now: datetime) -> Refreshed:
    """Recompute the due rows (see the module) in batches of ``BATCH``; re-rank instead when
    there are no boundaries yet or they are older than ``RERANK_EVERY``."""
    ranks = await session.get(InsightRank, 1)
    if ranks is None or ranks.ranked_at <= now - RERANK_EVERY:
        return await rerank(session, rule, now)
    dialect = session.get_bind().dialect.name
    marked = await session.scalar(select(func.max(InsightDirty.id)))
    due = _due(now, marked)
    ids = list(await session.scalars(select(due.c.id).order_by(due.c.id)))
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        m = _measures(now, batch).c
        rows = select(*_row(m, _scored(m, ranks.bounds), rule, now, dialect))
        await session.execute(delete(CustomerInsight).where(CustomerInsight.customer_id.in_(batch)))
        await session.execute(insert(CustomerInsight).from_select(COLUMNS, rows))
    await rollup.refresh(session, marked)  # the monthly roll-up of the same dirty customers
    if marked is not None:
        await session.execute(delete(InsightDirty).where(InsightDirty.id <= marked))
    return Refreshed(len(ids), False)
