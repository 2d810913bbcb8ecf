"""GraphQL for engagement stages and RFM: the customer fields, the ``customers`` filter and
order they add, and the segment counts."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.orm import with_expression
from strawberry.types import Info

from core import domain
from core.api.context import context_of
from core.api.enums import EngagementStage
from core.insight.service import Rfm
from core.services.customers import CustomerFilter, customers_query
from core.services.pagination import SortKey


@strawberry.enum(description="RFM segments (docs/guides/health-and-surveys.md).")
class RfmSegment(Enum):
    CHAMPIONS = "CHAMPIONS"
    LOYAL = "LOYAL"
    NEW = "NEW"
    AT_RISK = "AT_RISK"
    LOST = "LOST"
    POTENTIAL = "POTENTIAL"


@strawberry.type(description="Recency, frequency and monetary quintiles (5 best) of the year.")
class RfmScore:
    # Authorised as a whole by ``Customer.rfm``.
    authz_exempt: ClassVar[bool] = True

    recency: int
    frequency: int
    monetary: int
    score: int = strawberry.field(description="R·100 + F·10 + M, e.g. 545.")
    segment: RfmSegment
    refreshed_at: datetime = strawberry.field(
        description="When these scores (and the engagement stage) were computed: they follow "
        "the customer's activities within about a minute (docs/guides/health-and-surveys.md)."
    )

    @classmethod
    def of(cls, r: Rfm) -> RfmScore:
        return cls(
            recency=r.recency,
            frequency=r.frequency,
            monetary=r.monetary,
            score=r.score,
            segment=RfmSegment(r.segment),
            refreshed_at=r.refreshed_at,
        )


@strawberry.type
class RfmSegmentCount:
    authz_exempt: ClassVar[bool] = True

    segment: RfmSegment
    count: int
    refreshed_at: datetime | None = strawberry.field(
        description="The oldest refresh among the counted customers (null: none counted)."
    )


def narrowed(
    stmt: Select[Any],
    stages: list[EngagementStage] | None,
    segments: list[RfmSegment] | None,
) -> Select[Any]:
    """``stmt`` (customers) narrowed to these engagement stages and RFM segments (the
    materialised rows)."""
    t = domain.CustomerInsight
    if stages:
        chosen = select(t.customer_id).where(t.engagement_stage.in_([s.value for s in stages]))
        stmt = stmt.where(domain.Customer.id.in_(chosen))
    if segments:
        chosen = select(t.customer_id).where(t.segment.in_([s.value for s in segments]))
        stmt = stmt.where(domain.Customer.id.in_(chosen))
    return stmt


ORDERS = {"engagement_stage": "stage_rank", "rfm_score": "rfm_score"}


def computed_order(
    stmt: Select[Any], field: str, descending: bool
) -> tuple[Select[Any], SortKey] | None:
    """For ordering by a computed field: ``stmt`` joined to the materialised rows (customers
    appear once their first row is computed) and the sort key, else None."""
    if field not in ORDERS:
        return None
    t = domain.CustomerInsight
    value = getattr(t, ORDERS[field])
    key = SortKey(value, domain.Customer.id, descending, attribute="sort_value")
    joined = stmt.join(t, t.customer_id == domain.Customer.id).options(
        with_expression(domain.Customer.sort_value, value)
    )
    return joined, key


@strawberry.type
class SegmentQuery:
    @strawberry.field(description="How many customers in your scope are in each RFM segment.")
    async def rfm_segments(self, info: Info) -> list[RfmSegmentCount] | None:
        ctx = context_of(info)
        ctx.permissions.require_read("Customer", ["rfm"], "count")
        scope = await ctx.scope()
        among = None
        if scope.clause() is not None:
            among = customers_query(CustomerFilter(), scope).with_only_columns(domain.Customer.id)
        found = await ctx.read(lambda s: ctx.services.insight.rfm_segments(s, among))
        return [
            RfmSegmentCount(segment=RfmSegment(k), count=n, refreshed_at=at)
            for k, (n, at) in found.items()
        ]
