"""GraphQL for the health indicators: readings under ``Customer.health``, their definitions
and thresholds, and the admin's ``setIndicatorThresholds``.

Each indicator is authorised on its own, as the object ``HealthIndicator.<name>``: a reading
the viewer may not read is left out of ``indicators``, and so is a warning it raised.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

import strawberry
from strawberry.types import Info

from core.api.context import context_of
from core.authz.view import PermissionView
from core.errors import BadUserInput, FieldError
from core.insight.health import Health, RaisedWarning
from core.insight.indicators import Indicator, Reading, Thresholds
from core.plugins import camel


@strawberry.enum(description="GREEN: fine; YELLOW: watch; RED: act (see the thresholds).")
class IndicatorBand(Enum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"


def readable(view: PermissionView, indicator_name: str) -> bool:
    """May the viewer read this indicator (``HealthIndicator.<camelName>``)?"""
    return view.can_read("HealthIndicator", camel(indicator_name))


@strawberry.type(description="One health indicator of one customer.")
class HealthIndicatorReading:
    # Authorised per indicator (``HealthIndicator.<name>``) by ``CustomerHealth.indicators``.
    authz_exempt: ClassVar[bool] = True

    name: str = strawberry.field(description="camelCase, e.g. `orderFrequency`.")
    label: str
    unit: str
    value: float | None = strawberry.field(description="Null when there is no data yet.")
    band: IndicatorBand | None
    trend: list[float | None] = strawberry.field(
        description="The value at the end of each of the last four 90-day periods, oldest "
        "first; the last is `value`."
    )
    explanation: str

    @classmethod
    def of(cls, r: Reading) -> HealthIndicatorReading:
        return cls(
            name=camel(r.indicator.name),
            label=r.indicator.label,
            unit=r.indicator.unit,
            value=r.value,
            band=IndicatorBand(r.band) if r.band else None,
            trend=list(r.trend),
            explanation=r.explanation,
        )


def visible_readings(readings: tuple[Reading, ...], view: PermissionView) -> list[Reading]:
    return [r for r in readings if readable(view, r.indicator.name)]


def visible_warnings(health: Health, view: PermissionView) -> list[RaisedWarning]:
    """The warnings of ``health`` raised by indicators ``view`` may read, most urgent first:
    what ``CustomerHealth.warnings`` shows, and all that lists of warnings may filter, order
    or count by."""
    shown = {camel(r.indicator.name) for r in visible_readings(health.readings, view)}
    hidden = {camel(r.indicator.name) for r in health.readings} - shown
    return [w for w in health.warnings if w.signal not in hidden]


@strawberry.type(description="A health indicator's definition and thresholds.")
class HealthIndicatorDefinition:
    authz_exempt: ClassVar[bool] = True

    name: str
    label: str
    unit: str
    description: str
    source: str = strawberry.field(description="`core` or the plugin's name.")
    higher_is_better: bool
    green: float = strawberry.field(description="GREEN from here (at least, or at most).")
    yellow: float = strawberry.field(description="YELLOW from here; RED beyond.")
    default_green: float
    default_yellow: float
    weight: int = strawberry.field(
        description="Points a RED reading takes off the health score (YELLOW: half)."
    )
    warning_code: str | None = strawberry.field(description="The warning a RED reading raises.")

    @classmethod
    def of(cls, i: Indicator, t: Thresholds) -> HealthIndicatorDefinition:
        return cls(
            name=camel(i.name),
            label=i.label,
            unit=i.unit,
            description=i.description,
            source=i.source,
            higher_is_better=i.higher_is_better,
            green=t.green,
            yellow=t.yellow,
            default_green=i.default.green,
            default_yellow=i.default.yellow,
            weight=i.weight,
            warning_code=i.warning[1] if i.warning else None,
        )


@strawberry.input(description="Both thresholds, or neither to go back to the defaults.")
class SetIndicatorThresholdsInput:
    indicator: str = strawberry.field(description="The indicator's name, e.g. `orderFrequency`.")
    green: float | None = None
    yellow: float | None = None
    reason: str | None = None

    # Tuning an indicator is writing it: ``(HealthIndicator.<name>, write)``, checked by the
    # guard like every mutation input (``core.api.guard.authorize_operation``).
    authz_entity: ClassVar[str] = "HealthIndicator"

    def authz_write_fields(self) -> list[str]:
        return [self.indicator]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.type
class SetIndicatorThresholdsPayload:
    authz_exempt: ClassVar[bool] = True

    indicator: HealthIndicatorDefinition


@strawberry.type
class IndicatorQuery:
    @strawberry.field(description="The health indicators you may read, with their thresholds.")
    async def health_indicators(self, info: Info) -> list[HealthIndicatorDefinition] | None:
        ctx = context_of(info)
        found = await ctx.read(ctx.services.insight.thresholds)
        return [
            HealthIndicatorDefinition.of(i, found[i.name])
            for i in ctx.services.insight.indicators
            if readable(ctx.permissions, i.name)
        ]


@strawberry.type
class IndicatorMutation:
    @strawberry.mutation(
        description="Tune an indicator's thresholds (audited); both null resets the defaults."
    )
    async def set_indicator_thresholds(
        self, info: Info, input: SetIndicatorThresholdsInput
    ) -> SetIndicatorThresholdsPayload | None:
        ctx = context_of(info)
        if (input.green is None) != (input.yellow is None):
            missing = "yellow" if input.yellow is None else "green"
            raise BadUserInput([FieldError(missing, "give both thresholds, or neither")])
        value = (
            Thresholds(input.green, input.yellow)
            if input.green is not None and input.yellow is not None
            else None
        )
        indicator, now = await ctx.services.insight.set_thresholds(
            ctx.actor, input.indicator, value, input.reason
        )
        return SetIndicatorThresholdsPayload(indicator=HealthIndicatorDefinition.of(indicator, now))
