"""Engagement stages and RFM scores: the definitions, and the SQL expressions that compute
them (``core.insight.materialised`` stores them per customer, refreshed incrementally).

Engagement stage, from the customer's activities (any kind), kept apart from the sales
``lifecycleStage`` the assignment rules use. With ``first``/``last`` the first and last
activity (the creation time when there is none), in this order:

- NEW: ``first`` within the last ``new_days`` (default 90);
- ACTIVE: ``last`` within the last ``active_days`` (default 90);
- DORMANT: ``last`` within the last ``churned_days`` (default 365);
- CHURNED: otherwise.

An unexpired ``engagement`` override (``overrideTier``) takes precedence.

RFM, over the orders of the last 365 days of every customer with one: recency (the last
order), frequency (the number of orders) and monetary value (their sum) are each scored 1-5 by
quintile (``NTILE(5)`` at each re-rank, 5 the most recent, frequent or valuable; a row
refreshed between re-ranks is scored against the stored quintile boundaries). The segment
follows from the scores (first match): CHAMPIONS R≥4 F≥4 M≥4; AT_RISK R≤2 F≥3; LOYAL F≥4;
NEW R≥4 F≤2; LOST R≤2 F≤2; POTENTIAL otherwise. Ties are broken by customer id. Customers without an
order in the year have no RFM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal

from core.domain import EngagementStage

STAGES = tuple(EngagementStage)
RFM_WINDOW = timedelta(days=365)
SEGMENTS = ("CHAMPIONS", "AT_RISK", "LOYAL", "NEW", "LOST", "POTENTIAL")


@dataclass(frozen=True)
class EngagementRule:
    """The windows of the engagement stages, in days (``BATON_ENGAGEMENT_*_DAYS``)."""

    new_days: int = 90
    active_days: int = 90
    churned_days: int = 365

    def problems(self) -> list[str]:
        if min(self.new_days, self.active_days, self.churned_days) < 1:
            return ["engagement windows must be at least one day"]
        if self.churned_days < self.active_days:
            return ["the churned window must be at least the active window"]
        return []


def stage_rank(stage: ColumnElement[Any]) -> ColumnElement[int]:
    """NEW 0, ACTIVE 1, DORMANT 2, CHURNED 3: the order ``engagementStage`` sorts in."""
    return case(*((stage == s.value, i) for i, s in enumerate(STAGES)), else_=len(STAGES))


def segment_of(r: Any, f: Any, m: Any) -> ColumnElement[str]:
    """The RFM segment of the scores ``r``, ``f``, ``m`` (first match, see the module)."""
    return case(
        (and_(r >= 4, f >= 4, m >= 4), literal("CHAMPIONS")),
        (and_(r <= 2, f >= 3), literal("AT_RISK")),
        (f >= 4, literal("LOYAL")),
        (and_(r >= 4, f <= 2), literal("NEW")),
        (and_(r <= 2, f <= 2), literal("LOST")),
        else_=literal("POTENTIAL"),
    )
