"""GraphQL for activities, health, risk warnings and the tier review."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

import strawberry
from strawberry.types import Info

from core.api.assignment import customers_with_ids
from core.api.connection import Connection
from core.api.context import context_of
from core.api.enums import ActivityKind
from core.api.indicators import HealthIndicatorReading, visible_readings, visible_warnings
from core.api.types import Customer
from core.authz.view import PermissionView
from core.insight.health import Health, RaisedWarning
from core.services.pagination import DEFAULT_PAGE_SIZE
from core.services.tiering import Movement


@strawberry.enum(description="Red is worst: GREEN ≥ 80, YELLOW ≥ 60, ORANGE ≥ 40, RED below.")
class HealthLevel(Enum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    ORANGE = "ORANGE"
    RED = "RED"


@strawberry.enum(
    description="FOLLOW_UP: contact within 48 h; DIAGNOSIS: diagnose in depth; "
    "RETENTION: hand to the retention team."
)
class WarningLevel(Enum):
    FOLLOW_UP = "FOLLOW_UP"
    DIAGNOSIS = "DIAGNOSIS"
    RETENTION = "RETENTION"


@strawberry.type(description="A risk warning raised by a health signal (core or plugin).")
class RiskWarning:
    level: WarningLevel | None
    code: str | None
    message: str | None
    signal: str | None = strawberry.field(description="The signal that raised it.")
    since: datetime | None = strawberry.field(description="When its cause began, if known.")

    @classmethod
    def of(cls, w: RaisedWarning) -> RiskWarning:
        return cls(
            level=WarningLevel(w.level),
            code=w.code,
            message=w.message,
            signal=w.signal,
            since=w.since,
        )


@strawberry.type(
    description="How the relationship is doing: indicators with bands, and the score and "
    "warnings derived from them (docs/guides/health-and-surveys.md)."
)
class CustomerHealth:
    score: int | None = strawberry.field(description="0-100; 100: nothing wrong.")
    level: HealthLevel | None
    warnings: list[RiskWarning] | None = strawberry.field(
        description="Most urgent first; only those raised by indicators you may read."
    )
    indicators: list[HealthIndicatorReading] | None = strawberry.field(
        description="The indicators you may read (`HealthIndicator.<name>`), core ones first."
    )

    @classmethod
    def of(cls, h: Health, view: PermissionView) -> CustomerHealth:
        """``h`` as ``view`` may see it: indicators it may not read, and their warnings, left
        out."""
        return cls(
            score=h.score,
            level=HealthLevel(h.level),
            warnings=[RiskWarning.of(w) for w in visible_warnings(h, view)],
            indicators=[HealthIndicatorReading.of(r) for r in visible_readings(h.readings, view)],
        )


@strawberry.type(description="A customer with warnings, and its health.")
class AtRiskCustomer:
    authz_exempt: ClassVar[bool] = True

    customer: Customer
    health: CustomerHealth


@strawberry.type(
    description="A tier the review or an activity changed; values are withheld (`redacted`) "
    "where you may not read the customer's tier field."
)
class TierMovement:
    # Authorised like an audit change: by the moved customer field itself (``valueTier``).
    authz_exempt: ClassVar[bool] = True

    customer_id: strawberry.ID
    customer: Customer | None = strawberry.field(description="The customer whose tier moved.")
    tier: str = strawberry.field(description="value, needs or loyalty.")
    before: str | None
    after: str | None
    reason: str | None = strawberry.field(
        description="The criterion that decided (core, or `<plugin>/<criterion>`) and why."
    )
    redacted: bool = False

    @classmethod
    def of(cls, m: Movement, view: PermissionView, customer: Customer | None) -> TierMovement:
        shown = view.can_read("Customer", m.field)
        return cls(
            customer_id=strawberry.ID(m.customer_id),
            customer=customer,
            tier=m.tier,
            before=m.before if shown else None,
            after=m.after if shown else None,
            reason=m.reason if shown else None,
            redacted=not shown,
        )


@strawberry.input
class RecordActivityInput:
    customer_id: strawberry.ID
    kind: ActivityKind
    at: datetime | None = strawberry.field(default=None, description="Default: now.")
    amount: Decimal | None = strawberry.field(default=None, description="ORDER only.")
    category: str | None = None
    note: str | None = None
    days_late: int | None = strawberry.field(
        default=None, description="PAYMENT only: days after the due date (0: on time)."
    )


@strawberry.type
class RecordActivityPayload:
    authz_exempt: ClassVar[bool] = True

    customer: Customer
    movements: list[TierMovement] = strawberry.field(description="Tiers the activity changed.")


@strawberry.input
class RunTierReviewInput:
    customer_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Default: every customer in your scope."
    )
    dry_run: bool = strawberry.field(
        default=False, description="Decide the movements and write nothing."
    )


@strawberry.type
class TierReviewPayload:
    authz_exempt: ClassVar[bool] = True

    reviewed: int
    movements: list[TierMovement]
    dry_run: bool


@strawberry.type
class InsightQuery:
    @strawberry.field(
        description="Customers in your scope with risk warnings, most urgent first "
        "(worst level, then lowest score, then id); a Relay connection."
    )
    async def risk_warnings(
        self,
        info: Info,
        level: WarningLevel | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[AtRiskCustomer] | None:
        ctx = context_of(info)
        scope = await ctx.read_scope()
        page, total = await ctx.read(
            lambda s: ctx.services.tiering.at_risk(
                s,
                scope,
                level.value if level else None,
                first,
                after,
                warnings_of=lambda h: visible_warnings(h, ctx.permissions),
            )
        )

        async def count() -> int:
            return total

        def at_risk(pair: Any) -> AtRiskCustomer:
            customer, health = pair
            return AtRiskCustomer(
                customer=Customer.from_model(customer),
                health=CustomerHealth.of(health, ctx.permissions),
            )

        return Connection.of(page, at_risk, count)


@strawberry.type
class InsightMutation:
    @strawberry.mutation(
        description="Record an order, interaction, complaint or intent to leave; the "
        "customer's tiers are re-evaluated at once."
    )
    async def record_activity(
        self, info: Info, input: RecordActivityInput
    ) -> RecordActivityPayload | None:
        ctx = context_of(info)
        customer, movements = await ctx.services.tiering.record_activity(
            ctx.actor,
            input.customer_id,
            input.kind,
            at=input.at,
            amount=input.amount,
            category=input.category,
            note=input.note,
            days_late=input.days_late,
            scope=await ctx.scope(),
        )
        return RecordActivityPayload(
            customer=Customer.from_model(customer),
            movements=[
                TierMovement.of(m, ctx.permissions, Customer.from_model(customer))
                for m in movements
            ],
        )

    @strawberry.mutation(
        description="The tier review: recompute the tiers of the given customers (default: "
        "every customer in your scope, the quarterly review) against all customers."
    )
    async def run_tier_review(
        self, info: Info, input: RunTierReviewInput
    ) -> TierReviewPayload | None:
        ctx = context_of(info)
        result = await ctx.services.tiering.review(
            ctx.actor, input.customer_ids, dry_run=input.dry_run, scope=await ctx.scope()
        )
        moved = await ctx.read(
            lambda s: customers_with_ids(s, sorted({m.customer_id for m in result.movements}))
        )
        # A dry run's customers are read back as stored: their tiers have not moved.
        customers = {c.id: Customer.from_model(c) for c in moved}
        return TierReviewPayload(
            reviewed=result.reviewed,
            movements=[
                TierMovement.of(m, ctx.permissions, customers.get(m.customer_id))
                for m in result.movements
            ],
            dry_run=input.dry_run,
        )
