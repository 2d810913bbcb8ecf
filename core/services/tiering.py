"""Activities, health and the tier review: the use cases over ``core.services.insight``.

Recording an activity re-evaluates that customer's tiers at once (a big order, a complaint or
an intent to leave can move them); the quarterly review recomputes every customer. Either way a
changed value tier re-applies the assignment rules in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.domain import Activity, ActivityKind, Customer
from core.errors import BadUserInput, FieldError
from core.plugins import PluginRegistry
from core.services import insight
from core.services import validation as v
from core.services.assignment import AssignmentService
from core.services.audit import Actor, AuditWriter, audit_value
from core.services.customers import EVERYTHING, CustomerScope, customers_query, load_customer
from core.services.customers import CustomerFilter as Filter

TIERS = ("value_tier", "needs_tier", "loyalty_tier")
REVIEW_CHUNK = 500


@dataclass(frozen=True)
class Movement:
    """One customer's tier that the review (or an activity) changed."""

    customer_id: str
    tier: str
    before: str | None
    after: str
    reason: str


@dataclass(frozen=True)
class ReviewResult:
    reviewed: int
    movements: list[Movement]
    at: datetime


@dataclass(frozen=True)
class ActivityRow:
    """One activity to import."""

    customer_id: str
    kind: ActivityKind
    at: datetime
    amount: Decimal | None = None
    category: str | None = None
    note: str | None = None


def _validate(
    kind: ActivityKind,
    amount: Decimal | None,
    category: str | None,
    note: str | None,
    at: datetime,
    now: datetime,
) -> None:
    errors = []
    if kind is ActivityKind.ORDER:
        if amount is None:
            errors.append(FieldError("amount", "an ORDER needs an amount"))
        elif reason := v.money(amount):
            errors.append(FieldError("amount", reason))
    elif amount is not None:
        errors.append(FieldError("amount", "only an ORDER has an amount"))
    if reason := v.text(category, max_length=100):
        errors.append(FieldError("category", reason))
    if reason := v.text(note, max_length=2000):
        errors.append(FieldError("note", reason))
    if at > now:
        errors.append(FieldError("at", "must not be in the future"))
    if errors:
        raise BadUserInput(errors)


class TieringService:
    """Activities, health, risk warnings and tier reviews."""

    def __init__(
        self, db: Database, clock: Clock, plugins: PluginRegistry, assignment: AssignmentService
    ) -> None:
        self.db = db
        self.clock = clock
        self.plugins = plugins
        self.assignment = assignment
        self.signals = insight.health_signals(plugins)

    async def record_activity(
        self,
        actor: Actor,
        customer_id: str,
        kind: ActivityKind,
        *,
        at: datetime | None = None,
        amount: Decimal | None = None,
        category: str | None = None,
        note: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> tuple[Customer, list[Movement]]:
        """Record what the customer did and re-evaluate its tiers in the same transaction."""
        now = self.clock.now()
        at = at or now
        _validate(kind, amount, category, note, at, now)
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            session.add(
                Activity(
                    customer_id=customer.id,
                    kind=kind,
                    at=at,
                    amount=amount,
                    category=category,
                    note=note,
                    actor_id=actor.user_id,
                )
            )
            await session.flush()
            population = await insight.load_population(session, now)
            changes: list[dict[str, Any]] = [
                {
                    "field": "activity",
                    "before": None,
                    "after": audit_value(
                        {"kind": kind, "at": at, "amount": amount, "category": category}
                    ),
                }
            ]
            movements = await self._apply(session, actor, [customer], population, now, changes)
            return await load_customer(session, customer.id), movements

    async def import_activities(self, actor: Actor, rows: Sequence[ActivityRow]) -> int:
        """Load activity history in bulk (from an ERP, say) in one transaction, one audit entry
        per customer; tiers move at the next review, not row by row."""
        now = self.clock.now()
        for row in rows:
            _validate(row.kind, row.amount, row.category, row.note, row.at, now)
        async with self.db.transaction() as session:
            wanted = {r.customer_id for r in rows}
            found = set(await session.scalars(select(Customer.id).where(Customer.id.in_(wanted))))
            if missing := sorted(wanted - found):
                raise BadUserInput([FieldError("customerId", f"no customer {missing[0]!r}")])
            session.add_all(
                Activity(
                    customer_id=r.customer_id,
                    kind=r.kind,
                    at=r.at,
                    amount=r.amount,
                    category=r.category,
                    note=r.note,
                    actor_id=actor.user_id,
                )
                for r in rows
            )
            audit = AuditWriter(session, actor, now)
            for customer_id in sorted(wanted):
                count = sum(1 for r in rows if r.customer_id == customer_id)
                audit.record(
                    "importActivities",
                    "Customer",
                    customer_id,
                    [{"field": "activity", "before": None, "after": f"{count} imported"}],
                )
        return len(rows)

    async def review(
        self, actor: Actor, *, progress: Callable[[int, int], object] | None = None
    ) -> ReviewResult:
        """Recompute every customer's tiers (the quarterly review), in one transaction."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customers = list((await session.scalars(select(Customer).order_by(Customer.id))).all())
            snapshots = await insight.load_snapshots(session, customers, now, self.plugins.plugins)
            population = insight.Population.of(
                [(insight.revenue_of(s), s.profit_contribution) for s in snapshots]
            )
            movements: list[Movement] = []
            for start in range(0, len(customers), REVIEW_CHUNK):
                chunk = customers[start : start + REVIEW_CHUNK]
                movements += await self._apply(
                    session,
                    actor,
                    chunk,
                    population,
                    now,
                    None,
                    snapshots[start : start + REVIEW_CHUNK],
                )
                if progress is not None:
                    progress(start + len(chunk), len(customers))
            return ReviewResult(len(customers), movements, now)

    async def _apply(
        self,
        session: AsyncSession,
        actor: Actor,
        customers: Sequence[Customer],
        population: insight.Population,
        now: datetime,
        extra_changes: list[dict[str, Any]] | None,
        snapshots: Sequence[Any] | None = None,
    ) -> list[Movement]:
        """Decide the tiers of ``customers``; write and audit what changed (set-based)."""
        if snapshots is None:
            snapshots = await insight.load_snapshots(session, customers, now, self.plugins.plugins)
        audit = AuditWriter(session, actor, now)
        movements: list[Movement] = []
        updates = []
        value_moved = []
        for customer, snapshot in zip(customers, snapshots, strict=True):
            health = insight.assess(snapshot, self.signals)
            tiers = insight.decide(snapshot, population, health, self.plugins.tier_criteria)
            decided = {
                "value_tier": tiers.value,
                "needs_tier": tiers.needs,
                "loyalty_tier": tiers.loyalty,
            }
            changes = list(extra_changes or [])
            for attr, tier in decided.items():
                before = getattr(customer, attr)
                if before == tier:
                    continue
                kind = attr.removesuffix("_tier")
                movements.append(
                    Movement(
                        customer.id, kind, before and before.value, tier.value, tiers.reasons[kind]
                    )
                )
                changes.append(
                    {
                        "field": f"{kind}Tier",
                        "before": before and before.value,
                        "after": tier.value,
                    }
                )
            if len(changes) > len(extra_changes or []):
                updates.append({"cid": customer.id, **decided})
                if decided["value_tier"] != customer.value_tier:
                    value_moved.append(customer.id)
            reason = "tier review" if extra_changes is None else "activity recorded"
            audit.record(
                "runTierReview" if extra_changes is None else "recordActivity",
                "Customer",
                customer.id,
                changes,
                reason,
            )
        if updates:
            table = cast(Table, Customer.__table__)
            await session.execute(
                update(table)
                .where(table.c.id == bindparam("cid"))
                .values(
                    **{attr: bindparam(attr) for attr in TIERS},
                    version=table.c.version + 1,
                    updated_at=now,
                ),
                updates,
            )
        if value_moved:
            await self.assignment.apply(
                session, actor, value_moved, now, reason="value tier changed"
            )
        return movements

    async def health(
        self, session: AsyncSession, customers: Sequence[Customer]
    ) -> list[insight.Health]:
        """Each customer's health now (one aggregate query for all)."""
        snapshots = await insight.load_snapshots(
            session, customers, self.clock.now(), self.plugins.plugins
        )
        return [insight.assess(s, self.signals) for s in snapshots]

    async def at_risk(
        self, session: AsyncSession, scope: CustomerScope, level: str | None, limit: int
    ) -> list[tuple[Customer, insight.Health]]:
        """Customers in scope with a warning (at ``level`` if given), most urgent first."""
        stmt = customers_query(Filter(), scope).order_by(Customer.id)
        customers = list((await session.scalars(stmt)).unique().all())
        found = []
        for customer, health in zip(customers, await self.health(session, customers), strict=True):
            warnings = [w for w in health.warnings if level is None or w.level == level]
            if warnings:
                found.append((customer, health))
        found.sort(
            key=lambda pair: (
                -insight.LEVELS.index(pair[1].warnings[0].level),
                pair[1].score,
                pair[0].id,
            )
        )
        return found[:limit]
