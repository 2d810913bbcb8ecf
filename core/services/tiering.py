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

from sqlalchemy import Select, Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.domain import (
    Activity,
    ActivityKind,
    Customer,
    CustomerHealthRow,
    CustomerHealthWarning,
    CustomerInsight,
)
from core.errors import BadUserInput, FieldError, NotFound
from core.insight import health as health_model
from core.insight import indicators as ind
from core.insight import materialised, overrides, thresholds
from core.insight.facts import PERIOD, CustomerFacts, load_facts
from core.plugins import PluginRegistry
from core.services import insight
from core.services import validation as v
from core.services.assignment import AssignmentService
from core.services.audit import Actor, AuditWriter, audit_value
from core.services.customers import EVERYTHING, CustomerScope, customers_query, load_customer
from core.services.customers import CustomerFilter as Filter
from core.services.pagination import Page, page_of_sorted
from sdk.specs import CustomerSnapshot

TIERS = ("value_tier", "needs_tier", "loyalty_tier")
REVIEW_CHUNK = 500
HEALTH_BATCH = 2000  # customers whose stored health one refresh recomputes


# The warnings of a health a viewer may see (``core.api.indicators.visible_warnings``).
ShownWarnings = Callable[[health_model.Health], Sequence[health_model.RaisedWarning]]


@dataclass(frozen=True)
class Movement:
    """One customer's tier that the review (or an activity) changed."""

    customer_id: str
    tier: str
    before: str | None
    after: str
    reason: str

    @property
    def field(self) -> str:
        """The customer field that moved (``valueTier``), as audited and authorised."""
        return f"{self.tier}Tier"

    def audit_change(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


def _overridden(tiers: insight.Tiers, found: dict[str, overrides.Override]) -> insight.Tiers:
    """``tiers`` with the active overrides in place of the computed values."""
    if not found:
        return tiers
    values: dict[str, Any] = {"value": tiers.value, "needs": tiers.needs, "loyalty": tiers.loyalty}
    reasons = dict(tiers.reasons)
    for tier, o in found.items():
        if tier in values:
            values[tier] = overrides.TIERS[tier][1](o.value)
            until = f" until {o.expires_at.isoformat()}" if o.expires_at else ""
            reasons[tier] = f"overridden{until}: {o.reason}"
    return insight.Tiers(values["value"], values["needs"], values["loyalty"], reasons)


def _movements(customer: Customer, tiers: insight.Tiers) -> list[Movement]:
    moved = []
    for kind, after in (("value", tiers.value), ("needs", tiers.needs), ("loyalty", tiers.loyalty)):
        before = getattr(customer, f"{kind}_tier")
        if before != after:
            before_value = before.value if before is not None else None
            moved.append(
                Movement(customer.id, kind, before_value, after.value, tiers.reasons[kind])
            )
    return moved


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
    days_late: int | None = None


def _validate(
    kind: ActivityKind,
    amount: Decimal | None,
    category: str | None,
    note: str | None,
    at: datetime,
    now: datetime,
    days_late: int | None = None,
) -> None:
    errors = []
    if kind is ActivityKind.ORDER:
        if amount is None:
            errors.append(FieldError("amount", "an ORDER needs an amount"))
        elif reason := v.money(amount):
            errors.append(FieldError("amount", reason))
    elif amount is not None:
        errors.append(FieldError("amount", "only an ORDER has an amount"))
    if kind is not ActivityKind.PAYMENT and days_late is not None:
        errors.append(FieldError("daysLate", "only a PAYMENT has days late"))
    elif reason := v.int_range(days_late, 0, 3650):
        errors.append(FieldError("daysLate", reason))
    if reason := v.text(category, max_length=100):
        errors.append(FieldError("category", reason))
    if reason := v.text(note, max_length=2000):
        errors.append(FieldError("note", reason))
    if at > now:
        errors.append(FieldError("at", "must not be in the future"))
    if errors:
        raise BadUserInput(errors)


def validate_activity(row: ActivityRow, now: datetime) -> None:
    """BAD_USER_INPUT naming every bad field of ``row``."""
    _validate(row.kind, row.amount, row.category, row.note, row.at, now, row.days_late)


class TieringService:
    """Activities, health, risk warnings and tier reviews."""

    def __init__(
        self, db: Database, clock: Clock, plugins: PluginRegistry, assignment: AssignmentService
    ) -> None:
        self.db = db
        self.clock = clock
        self.plugins = plugins
        self.assignment = assignment
        self.signals = plugins.health_signals
        self.indicators = ind.registry(plugins)

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
        days_late: int | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> tuple[Customer, list[Movement]]:
        """Record what the customer did and re-evaluate its tiers in the same transaction."""
        now = self.clock.now()
        at = at or now
        _validate(kind, amount, category, note, at, now, days_late)
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
                    days_late=days_late,
                    actor_id=actor.user_id,
                )
            )
            await materialised.mark(session, [customer.id], now)
            await session.flush()
            (snapshot,) = await insight.load_snapshots(
                session, [customer], now, self.plugins.plugins
            )
            activity = {"kind": kind, "at": at, "amount": amount, "category": category}
            if days_late is not None:
                activity["daysLate"] = days_late
            movements = await self._retier(
                session,
                actor,
                [(customer, snapshot)],
                [customer.id],
                await insight.load_population(session, now),
                now,
                action="recordActivity",
                reason="activity recorded",
                extra_changes=[
                    {"field": "activity", "before": None, "after": audit_value(activity)}
                ],
            )
            return await load_customer(session, customer.id), movements

    async def import_activities(self, actor: Actor, rows: Sequence[ActivityRow]) -> int:
        """Load activity history in bulk (from an ERP, say) in one transaction, one audit entry
        per customer; tiers move at the next review, not row by row."""
        now = self.clock.now()
        for row in rows:
            validate_activity(row, now)
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
                    days_late=r.days_late,
                    actor_id=actor.user_id,
                )
                for r in rows
            )
            await materialised.mark(session, wanted, now)
            AuditWriter(session, actor, now).record_import(
                "importActivities", "activity", (r.customer_id for r in rows)
            )
        return len(rows)

    async def review(
        self,
        actor: Actor,
        customer_ids: Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        scope: CustomerScope = EVERYTHING,
        progress: Callable[[int, int], object] | None = None,
    ) -> ReviewResult:
        """Recompute the tiers of ``customer_ids`` (default: every customer in ``scope``, the
        quarterly review) against the whole population, in one transaction; ``dry_run``
        decides the same movements and writes nothing. An id outside the scope is NOT_FOUND."""
        now = self.clock.now()
        chosen = customers_query(Filter(), scope)
        if customer_ids is not None:
            chosen = chosen.where(Customer.id.in_(customer_ids))
        async with self.db.transaction(commit=not dry_run) as session:
            customers = list((await session.scalars(chosen.order_by(Customer.id))).unique().all())
            if customer_ids is not None:
                found = {c.id for c in customers}
                if missing := [i for i in customer_ids if i not in found]:
                    raise NotFound("Customer", missing[0])
            among = chosen.with_only_columns(Customer.id)
            snapshots = await insight.load_snapshots(
                session, customers, now, self.plugins.plugins, among=among
            )
            everyone = customer_ids is None and scope.clause() is None
            population = (
                insight.Population.of(snapshots)
                if everyone
                else await insight.load_population(session, now)
            )
            movements = await self._retier(
                session,
                actor,
                list(zip(customers, snapshots, strict=True)),
                among,
                population,
                now,
                action="runTierReview",
                reason="tier review",
                progress=progress,
            )
            return ReviewResult(len(customers), movements, now)

    async def _retier(
        self,
        session: AsyncSession,
        actor: Actor,
        pairs: Sequence[tuple[Customer, CustomerSnapshot]],
        among: Sequence[str] | Select[Any],
        population: insight.Population,
        now: datetime,
        *,
        action: str,
        reason: str,
        extra_changes: Sequence[dict[str, Any]] = (),
        progress: Callable[[int, int], object] | None = None,
    ) -> list[Movement]:
        """Decide each customer's tiers (``among``: their ids, or a query of them); one audit
        entry per customer (with ``extra_changes``), one UPDATE for all that moved, then the
        rules for those whose value tier moved."""
        audit = AuditWriter(session, actor, now)
        movements: list[Movement] = []
        updates: list[dict[str, Any]] = []
        value_moved: list[str] = []
        healths = await self._assess(session, [s for _, s in pairs], among, now)
        kept = await overrides.active(session, among, now)
        for done, ((customer, snapshot), health) in enumerate(zip(pairs, healths, strict=True), 1):
            tiers = insight.decide(snapshot, population, health, self.plugins.tier_criteria)
            tiers = _overridden(tiers, kept.get(customer.id, {}))
            moved = _movements(customer, tiers)
            audit.record(
                action,
                "Customer",
                customer.id,
                [*extra_changes, *(m.audit_change() for m in moved)],
                reason,
            )
            if moved:
                movements += moved
                updates.append({"cid": customer.id, **tiers.columns()})
                if any(m.tier == "value" for m in moved):
                    value_moved.append(customer.id)
            if progress is not None and (done % REVIEW_CHUNK == 0 or done == len(pairs)):
                progress(done, len(pairs))
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
        self,
        session: AsyncSession,
        customers: Sequence[Customer],
        among: Select[Any] | None = None,
    ) -> list[health_model.Health]:
        """Each customer's health now, with its indicator readings, in a constant number of
        statements (see ``load_snapshots`` and ``core.insight.facts``)."""
        now = self.clock.now()
        snapshots = await insight.load_snapshots(
            session, customers, now, self.plugins.plugins, among=among
        )
        ids = among if among is not None else [c.id for c in customers]
        return await self._assess(session, snapshots, ids, now)

    async def refresh_health(self, limit: int = HEALTH_BATCH, now: datetime | None = None) -> int:
        """Store the health of up to ``limit`` customers whose insight row was refreshed since
        their health was last stored (``health_due``: a new activity, answer or override, a
        stage that time moved, and everyone at the daily re-rank), the latest refreshed first
        so that a new activity is not queued behind a re-rank. One transaction, a constant
        number of statements (an index range for the due ones); returns how many."""
        now = now or self.clock.now()
        h, i, w = CustomerHealthRow, CustomerInsight, CustomerHealthWarning
        due = (
            select(Customer)
            .join(i, i.customer_id == Customer.id)
            .where(i.health_due.is_(True))
            .order_by(i.refreshed_at.desc(), i.customer_id.desc())  # newest changes first
            .limit(limit)
        )
        async with self.db.transaction() as session:
            customers = list((await session.scalars(due)).unique())
            if not customers:
                return 0
            ids = [c.id for c in customers]
            snapshots = await insight.load_snapshots(session, customers, now, self.plugins.plugins)
            found = await self._assess(session, snapshots, ids, now)
            await session.execute(delete(h).where(h.customer_id.in_(ids)))
            await session.execute(delete(w).where(w.customer_id.in_(ids)))
            if raised := [
                {"customer_id": c.id, "code": warning.code, "signal": warning.signal}
                for c, health in zip(customers, found, strict=True)
                for warning in {x.code: x for x in health.warnings}.values()
            ]:
                await session.execute(insert(w), raised)
            await session.execute(
                insert(h),
                [
                    {
                        "customer_id": c.id,
                        "score": health.score,
                        "level": health.level,
                        "warnings": len(health.warnings),
                        "computed_at": now,
                    }
                    for c, health in zip(customers, found, strict=True)
                ],
            )
            stored = update(i).where(i.customer_id.in_(ids), i.refreshed_at <= now)
            await session.execute(stored.values(health_due=False))
        return len(customers)

    async def _assess(
        self,
        session: AsyncSession,
        snapshots: Sequence[CustomerSnapshot],
        ids: Sequence[str] | Select[Any],
        now: datetime,
    ) -> list[health_model.Health]:
        """Indicators, score and warnings of the customers of ``snapshots`` (taken at ``now``)."""
        if not snapshots:
            return []
        facts = await load_facts(session, ids, now)
        tuned = await thresholds.load(session)
        past = await self._past_snapshots(session, snapshots, ids, now)
        found = []
        for i, snapshot in enumerate(snapshots):
            own = facts.get(snapshot.id) or CustomerFacts(snapshot.id, now)
            inputs = ind.Inputs(own, [snapshot, *(p[i] for p in past)])
            readings = ind.read(self.indicators, inputs, tuned)
            found.append(health_model.assess(readings, snapshot, self.signals, own))
        return found

    async def _past_snapshots(
        self,
        session: AsyncSession,
        snapshots: Sequence[CustomerSnapshot],
        ids: Sequence[str] | Select[Any],
        now: datetime,
    ) -> list[list[CustomerSnapshot]]:
        """Snapshots as of the end of each earlier trend period, for plugin indicators only
        (none when no plugin has one)."""
        if all(i.source == "core" for i in self.indicators):
            return []
        moments = [now - k * PERIOD for k in range(1, ind.TREND_POINTS)]
        return await insight.snapshots_at(session, snapshots, moments, ids)

    async def at_risk(
        self,
        session: AsyncSession,
        scope: CustomerScope,
        level: str | None,
        first: int,
        after: str | None = None,
        warnings_of: Callable[[health_model.Health], Sequence[health_model.RaisedWarning]]
        | None = None,
    ) -> tuple[Page[tuple[Customer, health_model.Health]], int]:
        """One page of the customers in scope with a warning (at ``level`` if given), most
        urgent first, and how many there are in all. ``warnings_of``: the warnings the
        viewer may see (default: all); only those are filtered, ordered and counted by, so a
        hidden warning neither lists a customer nor moves it."""
        shown = warnings_of or (lambda h: h.warnings)
        in_scope = customers_query(Filter(), scope)
        customers = list((await session.scalars(in_scope.order_by(Customer.id))).unique().all())
        among = in_scope.with_only_columns(Customer.id)
        found = [
            (customer, health)
            for customer, health in zip(
                customers, await self.health(session, customers, among), strict=True
            )
            if any(level is None or w.level == level for w in shown(health))
        ]

        def urgency(pair: tuple[Customer, health_model.Health]) -> tuple[int, int, str]:
            customer, health = pair
            worst = shown(health)[0].level
            return (-health_model.LEVELS.index(worst), health.score, customer.id)

        found.sort(key=urgency)
        return page_of_sorted(found, urgency, first, after), len(found)
