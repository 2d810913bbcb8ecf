"""GraphQL for engagement stages and RFM: the customer fields, the ``customers`` filter and
order they add, and the segment counts."""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar

import strawberry
from sqlalchemy import Select, func, select
from sqlalchemy.orm import with_expression
from strawberry.types import Info

from core import domain
from core.api.context import context_of
from core.api.enums import EngagementStage
from core.insight.segments import engagement_stage, rfm_table, stage_rank
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

    @classmethod
    def of(cls, r: Rfm) -> RfmScore:
        return cls(
            recency=r.recency,
            frequency=r.frequency,
            monetary=r.monetary,
            score=r.score,
            segment=RfmSegment(r.segment),
        )


@strawberry.type
class RfmSegmentCount:
    authz_exempt: ClassVar[bool] = True

    segment: RfmSegment
    count: int


def narrowed(
    info: Info,
    stmt: Select[Any],
    stages: list[EngagementStage] | None,
    segments: list[RfmSegment] | None,
) -> Select[Any]:
    """``stmt`` (customers) narrowed to these engagement stages and RFM segments."""
    insight = context_of(info).services.insight
    now = insight.clock.now()
    if stages:
        stmt = stmt.where(engagement_stage(insight.engagement, now).in_([s.value for s in stages]))
    if segments:
        rfm = rfm_table(now)
        stmt = stmt.join(rfm, rfm.c.customer_id == domain.Customer.id).where(
            rfm.c.segment.in_([s.value for s in segments])
        )
    return stmt


def computed_order(info: Info, field: str, descending: bool) -> tuple[SortKey, Any] | None:
    """The sort key and loader option for ordering by a computed field, else None."""
    insight = context_of(info).services.insight
    now = insight.clock.now()
    if field == "engagement_stage":
        value = stage_rank(engagement_stage(insight.engagement, now))
    elif field == "rfm_score":
        rfm = rfm_table(now)
        value = func.coalesce(
            select(rfm.c.score).where(rfm.c.customer_id == domain.Customer.id).scalar_subquery(),
            0,
        )
    else:
        return None
    key = SortKey(value, domain.Customer.id, descending, attribute="sort_value")
    return key, with_expression(domain.Customer.sort_value, value)


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
        return [RfmSegmentCount(segment=RfmSegment(k), count=n) for k, n in found.items()]
