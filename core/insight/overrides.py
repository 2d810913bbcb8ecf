"""Hand-set tiers and engagement stages: kept by the periodic review until they expire.

An override names the tier (``value``, ``needs``, ``loyalty``) or ``engagement``, the value,
the reason and an optional expiry. While it is active (no expiry, or the clock before it) the
review and recorded activities keep that value instead of the computed one; once it expires
the next review computes the tier again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import EngagementStage, LoyaltyTier, NeedsTier, TierOverride, ValueTier
from core.errors import BadUserInput, FieldError
from core.services import validation as v

# tier → (the customer column it sets, or None for the computed engagement stage; values)
TIERS: dict[str, tuple[str | None, type[StrEnum]]] = {
    "value": ("value_tier", ValueTier),
    "needs": ("needs_tier", NeedsTier),
    "loyalty": ("loyalty_tier", LoyaltyTier),
    "engagement": (None, EngagementStage),
}


def field_of(tier: str) -> str:
    """The customer field an override of ``tier`` shows in (audit and authorisation)."""
    return "engagementStage" if tier == "engagement" else f"{tier}Tier"


@dataclass(frozen=True)
class Override:
    tier: str
    value: str
    reason: str
    expires_at: datetime | None
    set_by_id: str | None
    set_at: datetime

    @classmethod
    def of(cls, row: TierOverride) -> Override:
        return cls(row.tier, row.value, row.reason, row.expires_at, row.set_by_id, row.set_at)


def validate(tier: str, value: str, reason: str, expires_at: datetime | None, now: datetime) -> Any:
    """The typed value, or BAD_USER_INPUT naming every bad field."""
    errors = []
    typed = None
    if tier not in TIERS:
        errors.append(FieldError("tier", f"must be one of {', '.join(TIERS)}"))
    else:
        values = TIERS[tier][1]
        if value not in values.__members__:
            errors.append(FieldError("value", f"must be one of {', '.join(values.__members__)}"))
        else:
            typed = values(value)
    if problem := v.text(reason, max_length=2000, required=True):
        errors.append(FieldError("reason", problem))
    if expires_at is not None and expires_at <= now:
        errors.append(FieldError("expiresAt", "must be in the future"))
    if errors:
        raise BadUserInput(errors)
    return typed


async def active(
    session: AsyncSession, ids: Sequence[str] | Select[Any], now: datetime
) -> dict[str, dict[str, Override]]:
    """The unexpired overrides of the customers ``ids``: customer → tier → override."""
    rows = await session.scalars(
        select(TierOverride).where(
            TierOverride.customer_id.in_(ids),
            or_(TierOverride.expires_at.is_(None), TierOverride.expires_at > now),
        )
    )
    found: dict[str, dict[str, Override]] = {}
    for row in rows:
        found.setdefault(row.customer_id, {})[row.tier] = Override.of(row)
    return found
