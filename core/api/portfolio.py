"""GraphQL for the managers' views: retention KPIs per owner, team or tier, and each owner's
portfolio (customers by tier and health, open warnings, overdue handovers, load)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from core import domain
from core.api.context import context_of
from core.api.types import User
from core.insight import kpis as kpi_rules
from core.services.customers import CustomerFilter, customers_query


@strawberry.enum(description="How to group the KPIs.")
class KpiDimension(Enum):
    OWNER = "OWNER"
    TEAM = "TEAM"
    TIER = "TIER"


KPI_FIELDS = {
    KpiDimension.OWNER: [("Customer", "owner")],
    KpiDimension.TEAM: [("Customer", "owner"), ("User", "team")],
    KpiDimension.TIER: [("Customer", "valueTier")],
}


@strawberry.type(description="Retention KPIs of one group over [since, until) (see the guide).")
class RetentionKpis:
    authz_exempt: ClassVar[bool] = True

    key: str | None = strawberry.field(description="Owner id, team or value tier; null: none.")
    customers: int
    repurchase_rate: float | None = strawberry.field(
        description="% of the previous period's buyers who bought again in this one."
    )
    churn_rate: float | None = strawberry.field(description="% of those who did not.")
    aov_growth: float | None = strawberry.field(description="% change of the average order.")
    referral_rate: float | None = strawberry.field(description="% of customers who referred.")
    nps: float | None


@strawberry.type
class TierCount:
    authz_exempt: ClassVar[bool] = True

    tier: str | None
    count: int


@strawberry.type(description="One owner's portfolio.")
class PortfolioOwner:
    authz_exempt: ClassVar[bool] = True

    owner: User
    customers: int
    capacity: int | None
    load: float | None = strawberry.field(description="Customers as a % of capacity.")
    by_value_tier: list[TierCount]
    by_health_level: list[TierCount]
    open_warnings: int = strawberry.field(
        description="Risk warnings across the customers (as stored with their health), but "
        "those raised by indicators you may not read."
    )
    overdue_handovers: int = strawberry.field(
        description="Open handovers past their step's deadline, outgoing or incoming."
    )
    refreshed_at: datetime | None = strawberry.field(
        description="The oldest stored health the levels and warnings rest on (they are "
        "recomputed at least daily and soon after a new activity; a customer not yet "
        "computed counts under a null level)."
    )


@strawberry.type
class PortfolioQuery:
    @strawberry.field(
        description="Repurchase, churn, AOV growth, referral rate and NPS of the customers in "
        "your scope over [since, until), against the period before (as many calendar months "
        "before when both ends are whole months in UTC, else as long before), grouped."
    )
    async def retention_kpis(
        self, info: Info, by: KpiDimension, since: datetime, until: datetime
    ) -> list[RetentionKpis] | None:
        ctx = context_of(info)
        for type_name, field in [("Survey", "score"), *KPI_FIELDS[by]]:
            ctx.permissions.require_read(type_name, [field], "group KPIs")
        among = await context_of(info).scope_ids()
        found = await ctx.read(lambda s: kpi_rules.kpis(s, by.value, since, until, among))
        return [
            RetentionKpis(
                key=k.key,
                customers=k.customers,
                repurchase_rate=k.repurchase_rate,
                churn_rate=k.churn_rate,
                aov_growth=k.aov_growth,
                referral_rate=k.referral_rate,
                nps=k.nps,
            )
            for k in found
        ]

    @strawberry.field(
        description="Each owner's customers in your scope by value tier and health level, "
        "open warnings, overdue handovers and load against capacity."
    )
    async def portfolio(self, info: Info) -> list[PortfolioOwner] | None:
        ctx = context_of(info)
        ctx.permissions.require_read("Customer", ["owner", "valueTier"], "group")
        ctx.permissions.require_read("CustomerHealth", ["level", "warnings"], "group")
        scope = await ctx.scope()
        # Everyone (no scope clause): no need to narrow the assigned customers any further.
        in_scope = None
        if scope.clause() is not None:
            in_scope = customers_query(CustomerFilter(unassigned=False), scope)

        # Only the warnings of indicators the viewer may read (as ``CustomerHealth.warnings``).
        hidden = ctx.hidden_signals()

        async def load(session: AsyncSession) -> Any:
            groups = list(await session.execute(kpi_rules.portfolio_counts(in_scope)))
            shown: dict[str, int] | None = None
            if hidden:
                rows = await session.execute(kpi_rules.warnings_shown(in_scope, hidden))
                shown = {owner: int(n) for owner, n in rows}
            owners = sorted({g.owner_id for g in groups})
            users = {
                u.id: u
                for u in await session.scalars(
                    select(domain.User).where(domain.User.id.in_(owners))
                )
            }
            overdue = await kpi_rules.overdue_handovers(session, owners, ctx.services.clock.now())
            return groups, users, overdue, shown

        groups, users, overdue, shown = await ctx.read(load)
        tiers: dict[str, Counter[str | None]] = {}
        levels: dict[str, Counter[str | None]] = {}
        warnings: Counter[str] = Counter()
        oldest: dict[str, datetime | None] = {}
        for g in groups:
            tier = g.value_tier.value if g.value_tier else None
            tiers.setdefault(g.owner_id, Counter())[tier] += g.customers
            levels.setdefault(g.owner_id, Counter())[g.level] += g.customers
            warnings[g.owner_id] += int(g.warnings or 0)
            if g.computed_at is not None:
                was = oldest.get(g.owner_id)
                oldest[g.owner_id] = g.computed_at if was is None else min(was, g.computed_at)
        if shown is not None:
            warnings = Counter(shown)
        result = []
        for owner_id in sorted(tiers):
            user = users[owner_id]
            count = sum(tiers[owner_id].values())
            result.append(
                PortfolioOwner(
                    owner=User.from_model(user),
                    customers=count,
                    capacity=user.capacity,
                    load=round(count / user.capacity * 100, 1) if user.capacity else None,
                    by_value_tier=_counts(tiers[owner_id]),
                    by_health_level=_counts(levels[owner_id]),
                    open_warnings=warnings[owner_id],
                    overdue_handovers=overdue[owner_id],
                    refreshed_at=oldest.get(owner_id),
                )
            )
        return result


def _counts(counter: Counter[str | None]) -> list[TierCount]:
    return [TierCount(tier=k, count=n) for k, n in sorted(counter.items(), key=lambda i: str(i[0]))]
