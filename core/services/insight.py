"""Customer snapshots and tiers: what the activity history and the profile say.

Everything is computed set-based: one query for the customers, one aggregate over their
activities, whatever the number of customers. Core criteria have the same shape as a plugin's
(``TierCriterion``), so both are evaluated the same way. Health comes from the indicators
(``core.insight.health``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import Activity, ActivityKind, Customer, LoyaltyTier, NeedsTier, ValueTier
from core.insight.facts import aware
from core.insight.health import Health
from core.plugins import Plugin
from core.services import special_needs
from sdk.specs import ActivityWindow, CustomerSnapshot, GroupMember, TierCriterion, TierVote

log = logging.getLogger("baton.insight")

RECENT = timedelta(days=90)
YEAR = timedelta(days=365)
# Lowest first: a vote can only move a tier up this order.
TIER_ORDER: dict[str, tuple[str, ...]] = {
    "value": ("LOW", "MEDIUM", "HIGH", "STRATEGIC"),
    "needs": ("POTENTIAL", "STANDARD", "PERSONALIZED"),
    "loyalty": ("CHURN_RISK", "GENERAL", "LOYAL"),
}


async def load_snapshots(
    session: AsyncSession,
    customers: Sequence[Customer],
    as_of: datetime,
    plugins: Sequence[Plugin],
    among: Select[Any] | None = None,
) -> list[CustomerSnapshot]:
    """A snapshot of each customer as of ``as_of`` (one aggregate query over activities).

    Pass ``among``, a query of the customers' ids, when they are many (a scope, everyone):
    a list of ids would exceed the databases' limit on bound parameters.
    """
    if not customers:
        return []
    ids = among if among is not None else [c.id for c in customers]
    windows = await _activity_windows(session, ids, as_of)
    groups = await _groups(session, ids, plugins)
    return [
        _snapshot(c, as_of, plugins, windows.get(c.id), groups.get(c.root_id, ()))
        for c in customers
    ]


async def _groups(
    session: AsyncSession, ids: Any, plugins: Sequence[Plugin]
) -> dict[str, tuple[GroupMember, ...]]:
    """Every account of the groups (with units) of the customers ``ids``, by root id (one
    statement); each group's tuple is shared by its members' snapshots."""
    roots = select(Customer.root_id).where(Customer.id.in_(ids))
    grouped = select(Customer.root_id).where(Customer.parent_id.is_not(None))
    stmt = (
        select(
            Customer.root_id,
            Customer.id,
            Customer.parent_id,
            Customer.depth,
            Customer.value_tier,
            Customer.annual_revenue,
            Customer.special_needs,
        )
        .where(Customer.root_id.in_(roots), Customer.root_id.in_(grouped))
        .order_by(Customer.root_id, Customer.path)
    )
    found: dict[str, list[GroupMember]] = {}
    for root_id, cid, parent_id, depth, tier, revenue, needs in await session.execute(stmt):
        found.setdefault(root_id, []).append(
            GroupMember(
                cid,
                parent_id,
                depth,
                tier.value if tier else None,
                revenue,
                special_needs.typed(plugins, needs or {}),
            )
        )
    return {root: tuple(members) for root, members in found.items()}


@dataclass
class _Tally:
    """One window's counts while the aggregate rows are read."""

    orders: int = 0
    order_amount: Decimal = Decimal(0)
    categories: set[str] = field(default_factory=set)
    interactions: int = 0
    complaints: int = 0

    def add(self, kind: ActivityKind, n: int, amount: Any, category: str | None) -> None:
        if kind is ActivityKind.ORDER:
            self.orders += n
            self.order_amount += Decimal(amount or 0)
            if category:
                self.categories.add(category)
        elif kind is ActivityKind.INTERACTION:
            self.interactions += n
        elif kind is ActivityKind.COMPLAINT:
            self.complaints += n

    def frozen(self) -> ActivityWindow:
        return ActivityWindow(
            self.orders,
            self.order_amount,
            frozenset(self.categories),
            self.interactions,
            self.complaints,
        )


@dataclass
class _Windows:
    recent: _Tally = field(default_factory=_Tally)
    previous: _Tally = field(default_factory=_Tally)
    year: _Tally = field(default_factory=_Tally)
    last: dict[ActivityKind, datetime] = field(default_factory=dict)


async def _activity_windows(
    session: AsyncSession, customer_ids: Sequence[str] | Select[Any], as_of: datetime
) -> dict[str, _Windows]:
    (found,) = await _windows_at(session, customer_ids, [as_of])
    return found


async def _windows_at(
    session: AsyncSession, customer_ids: Sequence[str] | Select[Any], moments: Sequence[datetime]
) -> list[dict[str, _Windows]]:
    """The activity windows as of each of ``moments`` (one aggregate statement for all)."""
    columns = []
    for as_of in moments:
        recent_from, previous_from = as_of - RECENT, as_of - 2 * RECENT
        upto = Activity.at <= as_of
        in_recent = and_(Activity.at >= recent_from, upto)
        in_previous = and_(Activity.at >= previous_from, Activity.at < recent_from)
        in_year = and_(Activity.at >= as_of - YEAR, upto)
        columns += [
            func.sum(case((in_recent, 1), else_=0)),
            func.sum(case((in_recent, Activity.amount), else_=0)),
            func.sum(case((in_previous, 1), else_=0)),
            func.sum(case((in_previous, Activity.amount), else_=0)),
            func.sum(case((in_year, 1), else_=0)),
            func.coalesce(func.sum(case((in_year, Activity.amount), else_=0)), 0),
            func.max(case((in_year, Activity.at))),
        ]
    stmt = (
        select(Activity.customer_id, Activity.kind, Activity.category, *columns)
        .where(
            Activity.customer_id.in_(customer_ids),
            Activity.at >= min(moments) - YEAR,
            Activity.at <= max(moments),
        )
        .group_by(Activity.customer_id, Activity.kind, Activity.category)
    )
    found: list[dict[str, _Windows]] = [{} for _ in moments]
    for row in await session.execute(stmt):
        customer_id, kind, category = row[0], ActivityKind(row[1]), row[2]
        for j, at_j in enumerate(found):
            (recent_n, recent_amount, previous_n, previous_amount, year_n, year_amount, last) = row[
                3 + 7 * j : 10 + 7 * j
            ]
            if not (year_n or previous_n):
                continue
            w = at_j.get(customer_id)
            if w is None:
                w = at_j[customer_id] = _Windows()
            for tally, n, amount in (
                (w.recent, recent_n, recent_amount),
                (w.previous, previous_n, previous_amount),
                (w.year, year_n, year_amount),
            ):
                if n:
                    tally.add(kind, int(n), amount, category)
            if last is not None:
                last = aware(last)
                if kind not in w.last or last > w.last[kind]:
                    w.last[kind] = last
    return found


def _snapshot(
    c: Customer,
    as_of: datetime,
    plugins: Sequence[Plugin],
    w: _Windows | None,
    group: tuple[GroupMember, ...] = (),
) -> CustomerSnapshot:
    return CustomerSnapshot(
        id=c.id,
        as_of=as_of,
        name=c.name,
        kind=c.kind.value,
        industry=c.industry,
        territory=c.territory,
        product_lines=tuple(c.product_lines),
        lifecycle_stage=c.lifecycle_stage.value,
        value_tier=c.value_tier.value if c.value_tier else None,
        needs_tier=c.needs_tier.value if c.needs_tier else None,
        loyalty_tier=c.loyalty_tier.value if c.loyalty_tier else None,
        annual_revenue=c.annual_revenue,
        profit_contribution=c.profit_contribution,
        growth_potential=c.growth_potential,
        strategic_fit=c.strategic_fit,
        special_needs=special_needs.typed(plugins, c.special_needs),
        **_window_fields(w),
        parent_id=c.parent_id,
        root_id=c.root_id,
        group=group,
    )


def _window_fields(w: _Windows | None) -> dict[str, Any]:
    w = w or _Windows()
    return {
        "recent": w.recent.frozen(),
        "previous": w.previous.frozen(),
        "year": w.year.frozen(),
        "last_order_at": w.last.get(ActivityKind.ORDER),
        "last_interaction_at": w.last.get(ActivityKind.INTERACTION),
        "leave_intent_at": w.last.get(ActivityKind.LEAVE_INTENT),
    }


async def snapshots_at(
    session: AsyncSession,
    snapshots: Sequence[CustomerSnapshot],
    moments: Sequence[datetime],
    ids: Sequence[str] | Select[Any],
) -> list[list[CustomerSnapshot]]:
    """The same customers with their activity windows as of each earlier moment (one
    aggregate statement for all moments; ``ids`` as for ``load_snapshots``' ``among``)."""
    if not moments:
        return []
    found = await _windows_at(session, ids, moments)
    return [
        [
            dataclasses.replace(s, as_of=as_of, **_window_fields(windows.get(s.id)))
            for s in snapshots
        ]
        for as_of, windows in zip(moments, found, strict=True)
    ]


# --- tiers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """Where the top 20% and the median start, by the value dimension (revenue, profit)."""

    revenue_top: Decimal | None
    revenue_median: Decimal | None
    profit_top: Decimal | None

    @classmethod
    def of(cls, snapshots: Sequence[CustomerSnapshot]) -> Population:
        """The population of these customers."""
        return cls.from_values(
            [
                (revenue_of(c.annual_revenue, c.year.order_amount), c.profit_contribution)
                for c in snapshots
            ]
        )

    @classmethod
    def from_values(cls, values: Sequence[tuple[Decimal, Decimal | None]]) -> Population:
        """From each customer's ``(revenue_of(...), profit contribution)``."""
        revenues = [r for r, _ in values]
        profits = [p for _, p in values if p is not None]
        return cls(_quantile(revenues, 0.8), _quantile(revenues, 0.5), _quantile(profits, 0.8))


async def load_population(session: AsyncSession, as_of: datetime) -> Population:
    """The population of every customer, read with two aggregate queries instead of full
    snapshots (one customer's activity re-tiers it against everyone)."""
    orders = dict(
        (
            await session.execute(
                select(Activity.customer_id, func.sum(Activity.amount))
                .where(
                    Activity.kind == ActivityKind.ORDER,
                    Activity.at >= as_of - YEAR,
                    Activity.at <= as_of,
                )
                .group_by(Activity.customer_id)
            )
        ).all()
    )
    rows = await session.execute(
        select(Customer.id, Customer.annual_revenue, Customer.profit_contribution)
    )
    return Population.from_values(
        [
            (revenue_of(revenue, Decimal(orders.get(cid) or 0)), profit)
            for cid, revenue, profit in rows
        ]
    )


def _quantile(values: Sequence[Decimal], q: float) -> Decimal | None:
    ranked = sorted(v for v in values if v is not None and v > 0)
    if not ranked:
        return None
    return ranked[min(len(ranked) - 1, int(len(ranked) * q))]


def revenue_of(annual_revenue: Decimal | None, year_orders: Decimal) -> Decimal:
    """The value dimension: stated annual revenue, or the last year's orders if higher."""
    return max(annual_revenue or Decimal(0), year_orders)


def _at_least(value: Decimal | None, threshold: Decimal | None) -> bool:
    return value is not None and threshold is not None and value > 0 and value >= threshold


def _core_value(c: CustomerSnapshot, p: Population) -> TierVote:
    revenue = revenue_of(c.annual_revenue, c.year.order_amount)
    top = _at_least(revenue, p.revenue_top) or _at_least(c.profit_contribution, p.profit_top)
    strategy, potential = c.strategic_fit or 0, c.growth_potential or 0
    if top and max(strategy, potential) >= 70:
        return TierVote("STRATEGIC", "top 20% by value, with strategic fit or growth potential")
    if top:
        return TierVote("HIGH", "top 20% by revenue or profit contribution")
    if strategy >= 80 and potential >= 80:
        return TierVote("HIGH", "high strategic fit and growth potential")
    if _at_least(revenue, p.revenue_median) or max(strategy, potential) >= 60:
        return TierVote("MEDIUM", "above the median by value, or promising")
    return TierVote("LOW", "below the median by value")


def _core_needs(c: CustomerSnapshot) -> TierVote:
    if any(v is not None for values in c.special_needs.values() for v in values.values()):
        return TierVote("PERSONALIZED", "has special needs")
    if c.lifecycle_stage in ("ACTIVE", "DORMANT"):
        return TierVote("STANDARD", "an established customer")
    return TierVote("POTENTIAL", "not yet buying regularly")


def _core_loyalty(c: CustomerSnapshot, health: Health) -> TierVote:
    if health.level in ("ORANGE", "RED") or any(w.level == "RETENTION" for w in health.warnings):
        return TierVote("CHURN_RISK", f"health {health.level}")
    if c.year.orders >= 4 and c.recent.orders and health.level == "GREEN":
        return TierVote("LOYAL", "orders regularly and healthy")
    return TierVote("GENERAL", "no strong signal either way")


@dataclass(frozen=True)
class Tiers:
    value: ValueTier
    needs: NeedsTier
    loyalty: LoyaltyTier
    reasons: Mapping[str, str]

    def columns(self) -> dict[str, Any]:
        return {"value_tier": self.value, "needs_tier": self.needs, "loyalty_tier": self.loyalty}


def decide(
    c: CustomerSnapshot,
    population: Population,
    health: Health,
    criteria: Sequence[tuple[str, TierCriterion]],
) -> Tiers:
    """The core verdict per tier, lifted by any plugin criterion's higher vote."""
    verdicts = {
        "value": _core_value(c, population),
        "needs": _core_needs(c),
        "loyalty": _core_loyalty(c, health),
    }
    for source, criterion in criteria:
        try:
            vote = criterion.evaluate(c)
        except Exception:  # a plugin's bug must not stop the review
            log.exception("tier criterion %s/%s failed for %s", source, criterion.name, c.id)
            continue
        order = TIER_ORDER[criterion.tier]
        if vote is None or vote.at_least not in order:
            continue
        if order.index(vote.at_least) > order.index(verdicts[criterion.tier].at_least):
            verdicts[criterion.tier] = TierVote(
                vote.at_least, f"{source}/{criterion.name}: {vote.reason}"
            )
    return Tiers(
        ValueTier(verdicts["value"].at_least),
        NeedsTier(verdicts["needs"].at_least),
        LoyaltyTier(verdicts["loyalty"].at_least),
        {k: v.reason for k, v in verdicts.items()},
    )
