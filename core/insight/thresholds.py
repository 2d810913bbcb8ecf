"""Admin-tuned indicator thresholds: persisted per indicator; the defaults live in the code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import IndicatorThreshold
from core.errors import BadUserInput, FieldError
from core.insight.indicators import Indicator, Thresholds
from core.plugins import camel
from core.services.audit import Actor, AuditWriter


async def load(session: AsyncSession) -> dict[str, Thresholds]:
    """Every tuned indicator's thresholds (one small query)."""
    rows = await session.scalars(select(IndicatorThreshold))
    return {r.name: Thresholds(r.green, r.yellow) for r in rows}


def find(indicators: Sequence[Indicator], name: str) -> Indicator:
    """The indicator named ``name`` (snake_case or camelCase), or BAD_USER_INPUT."""
    for indicator in indicators:
        if name in (indicator.name, camel(indicator.name)):
            return indicator
    raise BadUserInput([FieldError("indicator", f"no health indicator {name!r}")])


async def set_thresholds(
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    indicator: Indicator,
    thresholds: Thresholds | None,
    reason: str | None,
) -> Thresholds:
    """Tune (or, with None, reset to the default) one indicator's thresholds, audited as a
    change of ``HealthIndicator.<name>`` (readable by whoever may read that indicator)."""
    if thresholds is not None and (problem := indicator.valid(thresholds)):
        raise BadUserInput([FieldError("green", problem)])
    row = await session.get(IndicatorThreshold, indicator.name)
    before = Thresholds(row.green, row.yellow) if row else indicator.default
    after = thresholds or indicator.default
    if thresholds is None:
        await session.execute(
            delete(IndicatorThreshold).where(IndicatorThreshold.name == indicator.name)
        )
    elif row is None:
        session.add(
            IndicatorThreshold(
                name=indicator.name,
                green=after.green,
                yellow=after.yellow,
                updated_at=now,
                updated_by_id=actor.user_id,
            )
        )
    else:
        row.green, row.yellow = after.green, after.yellow
        row.updated_at, row.updated_by_id = now, actor.user_id
    if before != after:
        AuditWriter(session, actor, now).record(
            "setIndicatorThresholds",
            "HealthIndicator",
            indicator.name,
            [
                {
                    "field": camel(indicator.name),
                    "before": {"green": before.green, "yellow": before.yellow},
                    "after": {"green": after.green, "yellow": after.yellow},
                }
            ],
            reason,
        )
    return after
