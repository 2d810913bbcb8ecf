"""The insight use cases that write: thresholds, tier overrides, survey answers and the
survey schedule. Each write is one transaction with its audit entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.domain import (
    Customer,
    CustomerInsight,
    Survey,
    SurveyKind,
    SurveyOccasion,
    SurveyStatus,
    TierOverride,
)
from core.errors import BadUserInput, FieldError
from core.ids import new_id
from core.insight import materialised, overrides, rollup, surveys, thresholds
from core.insight.indicators import Indicator, Thresholds, registry
from core.insight.materialised import Refreshed
from core.insight.segments import SEGMENTS, EngagementRule
from core.plugins import PluginRegistry
from core.services.assignment import AssignmentService
from core.services.audit import Actor, AuditWriter, audit_value
from core.services.customers import EVERYTHING, CustomerScope, load_customer


@dataclass(frozen=True)
class Rfm:
    """A customer's RFM scores (1-5 each) and segment."""

    recency: int
    frequency: int
    monetary: int
    segment: str
    refreshed_at: datetime

    @property
    def score(self) -> int:
        return self.recency * 100 + self.frequency * 10 + self.monetary


@dataclass(frozen=True)
class Answer:
    """A survey answer to record."""

    customer_id: str
    kind: SurveyKind
    score: int
    reason: str | None = None
    answered_at: datetime | None = None
    survey_id: str | None = None
    occasion: SurveyOccasion = SurveyOccasion.AD_HOC


class InsightService:
    """Thresholds, overrides and surveys."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        plugins: PluginRegistry,
        assignment: AssignmentService,
        engagement: EngagementRule | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.assignment = assignment
        self.indicators: tuple[Indicator, ...] = registry(plugins)
        self.engagement = engagement or EngagementRule()
        if problems := self.engagement.problems():
            raise ValueError(problems[0])

    async def segments_of(
        self, session: AsyncSession, customer_ids: list[str]
    ) -> dict[str, tuple[str | None, Rfm | None]]:
        """Each customer's engagement stage and RFM as last refreshed (one statement; no
        stage before the customer's first refresh)."""
        t = CustomerInsight
        rows = await session.execute(
            select(
                t.customer_id,
                t.engagement_stage,
                t.recency,
                t.frequency,
                t.monetary,
                t.segment,
                t.refreshed_at,
            ).where(t.customer_id.in_(customer_ids))
        )
        found: dict[str, tuple[str | None, Rfm | None]] = dict.fromkeys(customer_ids, (None, None))
        for cid, stage, r, f, m, segment, at in rows:
            rfm = None
            if r is not None and f is not None and m is not None and segment is not None:
                rfm = Rfm(r, f, m, segment, at)
            found[cid] = (stage, rfm)
        return found

    async def rfm_segments(
        self, session: AsyncSession, among: Select[Any] | None
    ) -> dict[str, tuple[int, datetime | None]]:
        """How many customers (of ``among``, a query of ids) are in each RFM segment, and
        the oldest refresh those counts rest on (one statement over the materialised rows)."""
        t = CustomerInsight
        stmt = (
            select(t.segment, func.count(), func.min(t.refreshed_at))
            .where(t.segment.is_not(None))
            .group_by(t.segment)
        )
        if among is not None:
            stmt = stmt.where(t.customer_id.in_(among))
        found: dict[str, tuple[int, datetime | None]] = {s: (0, None) for s in SEGMENTS}
        found.update({str(s): (int(n), at) for s, n, at in await session.execute(stmt)})
        return found

    async def refresh(self, full: bool = False, now: datetime | None = None) -> Refreshed:
        """Bring the materialised engagement and RFM rows and the monthly roll-up up to date
        (``full``: re-rank everyone and rebuild the roll-up now); see ``core.insight.
        materialised`` and ``core.insight.rollup``."""
        at = now or self.clock.now()
        async with self.db.transaction() as session:
            if full:
                months = await rollup.rebuild(session)
                done = await materialised.rerank(session, self.engagement, at)
                return Refreshed(done.rows, True, months)
            return await materialised.refresh(session, self.engagement, at)

    async def thresholds(self, session: AsyncSession) -> dict[str, Thresholds]:
        """Each indicator's thresholds now (tuned or default)."""
        tuned = await thresholds.load(session)
        return {i.name: tuned.get(i.name, i.default) for i in self.indicators}

    async def set_thresholds(
        self,
        actor: Actor,
        name: str,
        value: Thresholds | None,
        reason: str | None = None,
    ) -> tuple[Indicator, Thresholds]:
        """Tune one indicator's thresholds (None: back to the default)."""
        indicator = thresholds.find(self.indicators, name)
        async with self.db.transaction() as session:
            now = self.clock.now()
            return indicator, await thresholds.set_thresholds(
                session, actor, now, indicator, value, reason
            )

    async def override_tier(
        self,
        actor: Actor,
        customer_id: str,
        tier: str,
        value: str,
        reason: str,
        expires_at: datetime | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Set a tier (or the engagement stage) by hand; the review keeps it until
        ``expires_at``. A changed value tier re-applies the assignment rules."""
        now = self.clock.now()
        typed = overrides.validate(tier, value, reason, expires_at, now)
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            row = await session.get(TierOverride, (customer.id, tier))
            column = overrides.TIERS[tier][0]
            before: Any = getattr(customer, column) if column else (row.value if row else None)
            if row is None:
                row = TierOverride(customer_id=customer.id, tier=tier)
                session.add(row)
            row.value, row.reason, row.expires_at = value, reason, expires_at
            row.set_by_id, row.set_at = actor.user_id, now
            if column is not None and before != typed:
                setattr(customer, column, typed)
                customer.updated_at = now
            if tier == "engagement":
                await materialised.mark(session, [customer.id], now)
            await session.flush()
            until = f" until {expires_at.isoformat()}" if expires_at else ""
            AuditWriter(session, actor, now).record(
                "overrideTier",
                "Customer",
                customer.id,
                [
                    {
                        "field": overrides.field_of(tier),
                        "before": audit_value(before),
                        "after": value,
                    }
                ],
                f"override{until}: {reason}",
            )
            if tier == "value" and before != typed:
                await self.assignment.apply(
                    session, actor, [customer.id], now, reason="value tier overridden"
                )
            return await load_customer(session, customer.id)

    async def clear_override(
        self,
        actor: Actor,
        customer_id: str,
        tier: str,
        reason: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Drop an override: the next review computes the tier again."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            row = await session.get(TierOverride, (customer.id, tier))
            if row is not None:
                await session.execute(
                    delete(TierOverride).where(
                        TierOverride.customer_id == customer.id, TierOverride.tier == tier
                    )
                )
                if tier == "engagement":
                    await materialised.mark(session, [customer.id], now)
                AuditWriter(session, actor, now).record(
                    "clearTierOverride",
                    "Customer",
                    customer.id,
                    [{"field": overrides.field_of(tier), "before": row.value, "after": None}],
                    reason,
                )
            return customer

    async def overrides_of(
        self, session: AsyncSession, customer_ids: list[str]
    ) -> dict[str, dict[str, overrides.Override]]:
        return await overrides.active(session, customer_ids, self.clock.now())

    async def record_answer(
        self, actor: Actor, answer: Answer, scope: CustomerScope = EVERYTHING
    ) -> Survey:
        """Record a survey answer (audited as a change of ``Customer.surveys``)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await load_customer(session, answer.customer_id, scope, lock=True)
            survey = await surveys.answer(
                session,
                customer,
                kind=answer.kind,
                score=answer.score,
                reason=answer.reason,
                answered_at=answer.answered_at or now,
                now=now,
                recorded_by=actor.user_id,
                survey_id=answer.survey_id,
                occasion=answer.occasion,
            )
            await materialised.mark(session, [customer.id], now)  # its health moves
            AuditWriter(session, actor, now).record(
                "recordSurveyAnswer", "Customer", customer.id, [surveys.audit_change(survey)]
            )
            return survey

    async def import_answers(self, actor: Actor, answers: list[Answer]) -> int:
        """Load survey history in bulk in one transaction, one audit entry per customer."""
        now = self.clock.now()
        for a in answers:
            surveys.validate_answer(a.kind, a.score, a.reason)
        async with self.db.transaction() as session:
            wanted = {a.customer_id for a in answers}
            found = set(await session.scalars(select(Customer.id).where(Customer.id.in_(wanted))))
            if missing := sorted(wanted - found):
                raise BadUserInput([FieldError("customerId", f"no customer {missing[0]!r}")])
            session.add_all(
                Survey(
                    id=new_id("Survey"),
                    customer_id=a.customer_id,
                    kind=a.kind,
                    occasion=a.occasion,
                    status=SurveyStatus.ANSWERED,
                    due_at=a.answered_at or now,
                    answered_at=a.answered_at or now,
                    score=a.score,
                    reason=a.reason,
                    recorded_by_id=actor.user_id,
                    created_at=now,
                )
                for a in answers
            )
            await materialised.mark(session, wanted, now)
            AuditWriter(session, actor, now).record_import(
                "importSurveys", "surveys", (a.customer_id for a in answers)
            )
        return len(answers)

    async def schedule_surveys(self, now: datetime | None = None) -> int:
        """Create the surveys due now (see ``surveys.schedule``)."""
        async with self.db.transaction() as session:
            return await surveys.schedule(session, now or self.clock.now())

    async def surveys_of(
        self, session: AsyncSession, customer_ids: list[str], limit: int = 20
    ) -> dict[str, list[Survey]]:
        """Each customer's latest surveys, newest first (one query)."""
        rows = await session.scalars(
            select(Survey)
            .where(Survey.customer_id.in_(customer_ids))
            .order_by(Survey.customer_id, Survey.due_at.desc(), Survey.id.desc())
        )
        found: dict[str, list[Survey]] = {i: [] for i in customer_ids}
        for row in rows:
            if len(found[row.customer_id]) < limit:
                found[row.customer_id].append(row)
        return found


async def run(services: Any, now: datetime) -> int:
    """The scheduler's "surveys due" job: create the surveys due at ``now``."""
    service: InsightService = services.insight
    return await service.schedule_surveys(now)


async def refresh_job(services: Any, now: datetime) -> int:
    """The scheduler's ``insight_refresh`` job: the engagement and RFM rows that are due
    (everyone on a re-rank), then a batch of stored health; returns the rows recomputed."""
    service: InsightService = services.insight
    rows = (await service.refresh(now=now)).rows
    return rows + int(await services.tiering.refresh_health(now=now))
