"""GraphQL for engagement stages and RFM: the customer fields, the ``customers`` filter and
order they add, and the segment counts."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

import strawberry
from sqlalchemy import Select
from sqlalchemy.orm import with_expression
from strawberry.types import Info

from core import domain
from core.api.context import context_of
from core.api.enums import EngagementStage
from core.insight.service import Rfm
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


ORDERS = {"engagement_stage": "stage_rank", "rfm_score": "rfm_score"}


def narrowed(
    stmt: Select[Any],
    stages: list[EngagementStage] | None,
    segments: list[RfmSegment] | None,
    order_field: str,
    descending: bool,
) -> tuple[Select[Any], SortKey | None]:
    """``stmt`` (customers) joined to their materialised insight rows when it filters on
    engagement stages or RFM segments or orders by a computed field (customers appear once
    their first row is computed), and the sort key of that order (else None). One join, so
    that a filtered page in RFM order walks the RFM index instead of sorting every match."""
    t = domain.CustomerInsight
    if not (stages or segments or order_field in ORDERS):
        return stmt, None
    stmt = stmt.join(t, t.customer_id == domain.Customer.id)
    if stages:
        stmt = stmt.where(t.engagement_stage.in_([s.value for s in stages]))
    if segments:
        stmt = stmt.where(t.segment.in_([s.value for s in segments]))
    if order_field not in ORDERS:
        return stmt, None
    value = getattr(t, ORDERS[order_field])
    # The tie-break is the insight row's customer id (equal to the customer's, the join being
    # inner): the cursor's condition ``(value, id) > (…)`` is then a range of one index
    # (``ix_customer_insight_stage`` or ``_rfm``), and a deep page costs what the first does.
    key = SortKey(value, t.customer_id, descending, attribute="sort_value", tie_attribute="id")
    return stmt.options(with_expression(domain.Customer.sort_value, value)), key


@strawberry.type
class SegmentQuery:
    @strawberry.field(description="How many customers in your scope are in each RFM segment.")
    async def rfm_segments(self, info: Info) -> list[RfmSegmentCount] | None:
        ctx = context_of(info)
        ctx.permissions.require_read("Customer", ["rfm"], "count")
        among = await ctx.scope_ids()
        found = await ctx.read(lambda s: ctx.services.insight.rfm_segments(s, among))
        return [
            RfmSegmentCount(segment=RfmSegment(k), count=n, refreshed_at=at)
            for k, (n, at) in found.items()
        ]
