"""The health score and warnings, derived from the indicators (and plugin health signals).

- Each RED indicator takes its ``weight`` off 100, each YELLOW one half its weight (rounded
  down); an indicator without data takes nothing. Plugin ``HealthSignal`` penalties come off
  too. The score is never below 0.
- The level is the score's colour: GREEN ≥ 80, YELLOW ≥ 60, ORANGE ≥ 40, RED below.
- A RED indicator with a warning raises it at its level (FOLLOW_UP, DIAGNOSIS, RETENTION);
  warnings are ordered most urgent first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.domain import ActivityKind
from core.insight.facts import CustomerFacts
from core.insight.indicators import Reading, last_at
from core.plugins import camel
from sdk.specs import CustomerSnapshot, HealthSignal, SignalReading

log = logging.getLogger("baton.insight")

LEVELS = ("FOLLOW_UP", "DIAGNOSIS", "RETENTION")


@dataclass(frozen=True)
class RaisedWarning:
    """A warning with the indicator or signal that raised it and when its cause began."""

    level: str
    code: str
    message: str
    signal: str
    since: datetime | None


@dataclass(frozen=True)
class Health:
    """A 0-100 score (100: nothing wrong), its colour, the warnings (most urgent first) and
    the indicator readings they come from."""

    score: int
    level: str
    warnings: tuple[RaisedWarning, ...]
    readings: tuple[Reading, ...] = ()


def colour(score: int) -> str:
    return (
        "GREEN" if score >= 80 else "YELLOW" if score >= 60 else "ORANGE" if score >= 40 else "RED"
    )


def penalty(reading: Reading) -> int:
    """Points the reading takes off the score."""
    weight = max(0, min(100, reading.indicator.weight))
    return weight if reading.band == "RED" else weight // 2 if reading.band == "YELLOW" else 0


def _message(template: str, value: float) -> str:
    return template.format(value=f"{value:.1f}".removesuffix(".0"))


# The activity whose last occurrence dates a warning's cause.
_CAUSES = {
    "NO_RECENT_ORDER": ActivityKind.ORDER,
    "COMPLAINTS_UP": ActivityKind.COMPLAINT,
    "LEAVE_INTENT": ActivityKind.LEAVE_INTENT,
}


def assess(
    readings: Sequence[Reading],
    snapshot: CustomerSnapshot | None = None,
    signals: Iterable[tuple[str, HealthSignal]] = (),
    facts: CustomerFacts | None = None,
) -> Health:
    """The score, level and warnings of one customer from its ``readings`` and, given a
    ``snapshot``, the plugin ``signals`` (a signal that fails is skipped and logged)."""
    points = sum(penalty(r) for r in readings)
    warnings = [
        RaisedWarning(
            level,
            code,
            _message(template, r.value),
            camel(r.indicator.name),
            last_at(facts, _CAUSES[code]) if facts is not None and code in _CAUSES else None,
        )
        for r in readings
        if r.band == "RED" and r.value is not None and r.indicator.warning is not None
        for level, code, template in [r.indicator.warning]
    ]
    for source, signal in signals if snapshot is not None else ():
        assert snapshot is not None
        try:
            found = signal.evaluate(snapshot)
            if found is not None and not isinstance(found, SignalReading):
                raise TypeError(f"returned {type(found).__name__}, not SignalReading")
        except Exception:  # a plugin's bug must not break a customer's page
            log.exception("health signal %s/%s failed for %s", source, signal.name, snapshot.id)
            continue
        if found is None:
            continue
        points += max(0, min(100, found.penalty))
        if (w := found.warning) is not None and w.level in LEVELS:
            warnings.append(RaisedWarning(w.level, w.code, w.message, signal.name, None))
    score = max(0, 100 - points)
    warnings.sort(key=lambda w: (-LEVELS.index(w.level), w.code))
    return Health(score, colour(score), tuple(warnings), tuple(readings))


__all__ = ["LEVELS", "Health", "RaisedWarning", "assess", "colour", "penalty"]
