"""The health indicators: each a named, documented measure with a green/yellow/red band.

A core indicator computes its value for period ``k`` (0: the 90 days up to now, 1: the 90
days before, ...) from ``CustomerFacts``; a plugin indicator (``baton_health_indicators``)
from a ``CustomerSnapshot`` as of the end of period ``k``. Bands come from thresholds: the
defaults below, or an admin's (``indicator_thresholds``). See
``docs/guides/health-and-surveys.md`` for the definitions and worked examples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.domain import ActivityKind, SurveyKind
from core.insight.facts import PERIOD, CustomerFacts, Period
from core.plugins import PluginRegistry, camel, indicator_name
from sdk.specs import CustomerSnapshot, HealthIndicator

log = logging.getLogger("baton.insight")

Band = Literal["GREEN", "YELLOW", "RED"]
Level = Literal["FOLLOW_UP", "DIAGNOSIS", "RETENTION"]
TREND_POINTS = 4  # the trend: the value at the end of each of the last four periods


@dataclass(frozen=True)
class Thresholds:
    """GREEN when the value reaches ``green``, YELLOW when it reaches ``yellow``, else RED."""

    green: float
    yellow: float


@dataclass(frozen=True)
class Inputs:
    """What an indicator reads of one customer: facts, and a snapshot per trend period (for
    plugin indicators; empty when no plugin has one)."""

    facts: CustomerFacts
    snapshots: Sequence[CustomerSnapshot | None] = ()


@dataclass(frozen=True)
class Indicator:
    """One indicator. ``warning`` (level, code, message with ``{value}``) is raised when RED."""

    name: str
    label: str
    unit: str
    description: str
    higher_is_better: bool
    default: Thresholds
    weight: int
    compute: Callable[[Inputs, int], float | None]
    warning: tuple[Level, str, str] | None = None
    source: str = "core"

    @property
    def object(self) -> str:
        """Its policy object, e.g. ``HealthIndicator.paymentPunctuality``."""
        return f"HealthIndicator.{camel(self.name)}"

    def valid(self, t: Thresholds) -> str | None:
        """Why ``t`` cannot be this indicator's thresholds (None when it can)."""
        if not all(math.isfinite(v) for v in (t.green, t.yellow)):
            return "thresholds must be finite numbers"
        if self.higher_is_better and t.green < t.yellow:
            return "green must be at least yellow (higher is better)"
        if not self.higher_is_better and t.green > t.yellow:
            return "green must be at most yellow (lower is better)"
        return None

    def band(self, value: float | None, t: Thresholds) -> Band | None:
        if value is None:
            return None
        if self.higher_is_better:
            return "GREEN" if value >= t.green else "YELLOW" if value >= t.yellow else "RED"
        return "GREEN" if value <= t.green else "YELLOW" if value <= t.yellow else "RED"

    def explain(self, value: float | None, band: Band | None, t: Thresholds) -> str:
        if value is None:
            return f"{self.description} No data yet."
        op = "≥" if self.higher_is_better else "≤"
        return (
            f"{self.description} Now {_number(value)} {self.unit}: {band} "
            f"(green {op} {_number(t.green)}, yellow {op} {_number(t.yellow)})."
        )


def _number(v: float) -> str:
    return f"{v:.1f}".removesuffix(".0")


def _ever(i: Inputs, count: Callable[[Period], int]) -> bool:
    return any(count(p) for p in i.facts.periods)


def _counted(count: Callable[[Period], int]) -> Callable[[Inputs, int], float | None]:
    """A count in period k; None when the customer has none in any loaded period."""

    def compute(i: Inputs, k: int) -> float | None:
        p = i.facts.get(k)
        if p is None:
            return None
        n = count(p)
        return float(n) if n or _ever(i, count) else None

    return compute


def _order_recency(i: Inputs, k: int) -> float | None:
    last = last_at(i.facts, ActivityKind.ORDER, k)
    return None if last is None else float((i.facts.end(k) - last).days)


def _change(now: float, before: float) -> float:
    return round((now - before) / before * 100, 1)


def _category_change(i: Inputs, k: int) -> float | None:
    now, before = i.facts.get(k), i.facts.get(k + 1)
    if now is None or before is None or not before.order_categories:
        return None
    return _change(len(now.order_categories), len(before.order_categories))


def _order_stability(i: Inputs, k: int) -> float | None:
    """Coefficient of variation of the order amounts over four periods (a year), in %."""
    year = i.facts.periods[k : k + 4]
    n = sum(p.orders for p in year)
    if n < 3:
        return None
    total = float(sum(p.order_amount for p in year))
    mean = total / n
    if mean <= 0:
        return None
    variance = max(0.0, sum(p.order_amount_sq for p in year) / n - mean * mean)
    return round(math.sqrt(variance) / mean * 100, 1)


def _survey(kind: SurveyKind) -> Callable[[Inputs, int], float | None]:
    def compute(i: Inputs, k: int) -> float | None:
        p = i.facts.get(k)
        mean = p.survey_mean(kind) if p is not None else None
        return None if mean is None else round(mean, 2)

    return compute


def _response_time(i: Inputs, k: int) -> float | None:
    p = i.facts.get(k)
    if p is None or not p.response_days:
        return None
    return round(sum(p.response_days) / len(p.response_days), 2)


def _repurchase_rate(i: Inputs, k: int) -> float | None:
    now, before = i.facts.get(k), i.facts.get(k + 1)
    if now is None or before is None or not before.order_categories:
        return None
    again = len(before.order_categories & now.order_categories)
    return round(again / len(before.order_categories) * 100, 1)


def _aov_growth(i: Inputs, k: int) -> float | None:
    now, before = i.facts.get(k), i.facts.get(k + 1)
    if now is None or before is None or not now.orders or not before.orders:
        return None
    aov_before = float(before.order_amount) / before.orders
    if aov_before <= 0:
        return None
    return _change(float(now.order_amount) / now.orders, aov_before)


def _referrals(i: Inputs, k: int) -> float | None:
    return float(sum(p.referrals for p in i.facts.periods[k : k + 4]))


def _punctuality(i: Inputs, k: int) -> float | None:
    p = i.facts.get(k)
    if p is None or not p.payments:
        return None
    return round((p.payments - p.late_payments) / p.payments * 100, 1)


DAYS = PERIOD.days
CORE_INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "order_frequency",
        "Order frequency",
        "orders",
        f"Orders in the last {DAYS} days.",
        True,
        Thresholds(3, 1),
        10,
        _counted(lambda p: p.orders),
    ),
    Indicator(
        "order_recency",
        "Days since the last order",
        "days",
        "Whole days since the last order.",
        False,
        Thresholds(30, 59),
        20,
        _order_recency,
        ("FOLLOW_UP", "NO_RECENT_ORDER", "No order for {value} days: contact within 48 h"),
    ),
    Indicator(
        "category_change",
        "Change in purchased categories",
        "%",
        f"Change in the number of categories ordered, the last {DAYS} days against the "
        f"{DAYS} days before.",
        True,
        Thresholds(0, -30),
        20,
        _category_change,
        ("DIAGNOSIS", "CATEGORIES_DOWN", "Categories bought down {value}%: diagnose in depth"),
    ),
    Indicator(
        "interaction_frequency",
        "Interaction frequency",
        "interactions",
        f"Interactions (visits, calls, meetings) in the last {DAYS} days.",
        True,
        Thresholds(2, 1),
        10,
        _counted(lambda p: p.interactions),
    ),
    Indicator(
        "complaint_count",
        "Complaints",
        "complaints",
        f"Complaints in the last {DAYS} days.",
        False,
        Thresholds(0, 1),
        25,
        lambda i, k: float(i.facts.periods[k].complaints),
        ("DIAGNOSIS", "COMPLAINTS_UP", "{value} complaints in 90 days: diagnose in depth"),
    ),
    Indicator(
        "order_stability",
        "Order stability",
        "%",
        "Coefficient of variation of the order amounts over the last year (at least three "
        "orders); lower is steadier.",
        False,
        Thresholds(50, 100),
        5,
        _order_stability,
    ),
    Indicator(
        "satisfaction",
        "Satisfaction (trend)",
        "of 5",
        f"Mean answer to the satisfaction surveys (1-5) of the last {DAYS} days.",
        True,
        Thresholds(4, 3),
        15,
        _survey(SurveyKind.SATISFACTION),
        ("DIAGNOSIS", "LOW_SATISFACTION", "Satisfaction at {value} of 5: diagnose in depth"),
    ),
    Indicator(
        "willingness_to_recommend",
        "Willingness to recommend (NPS)",
        "of 10",
        f"Mean NPS answer (0-10) of the last {DAYS} days: 9-10 promoter, 7-8 passive.",
        True,
        Thresholds(9, 7),
        15,
        _survey(SurveyKind.NPS),
        ("DIAGNOSIS", "DETRACTOR", "Would not recommend us ({value} of 10): diagnose in depth"),
    ),
    Indicator(
        "customer_effort",
        "Customer effort (CES)",
        "of 7",
        f"Mean CES answer (1-7, 7: very easy) of the last {DAYS} days.",
        True,
        Thresholds(5, 4),
        10,
        _survey(SurveyKind.CES),
        ("FOLLOW_UP", "HIGH_EFFORT", "Hard to work with us ({value} of 7): follow up"),
    ),
    Indicator(
        "need_response_time",
        "Need response time",
        "days",
        f"Mean days from each complaint of the last {DAYS} days to the next interaction "
        "(an unanswered one counts until the period's end).",
        False,
        Thresholds(1, 2),
        10,
        _response_time,
        ("FOLLOW_UP", "SLOW_RESPONSE", "Complaints answered in {value} days: follow up"),
    ),
    Indicator(
        "repurchase_rate",
        "Repurchase rate",
        "%",
        f"Share of the categories ordered in the {DAYS} days before that were ordered again "
        f"in the last {DAYS} days.",
        True,
        Thresholds(70, 40),
        10,
        _repurchase_rate,
    ),
    Indicator(
        "aov_growth",
        "Average order value growth",
        "%",
        f"Change in the average order amount, the last {DAYS} days against the {DAYS} days before.",
        True,
        Thresholds(0, -15),
        10,
        _aov_growth,
    ),
    Indicator(
        "referral_rate",
        "Referrals",
        "referrals",
        "Customers referred to us in the last year; a bonus, so never red by default.",
        True,
        Thresholds(1, 0),
        0,
        _referrals,
    ),
    Indicator(
        "payment_punctuality",
        "Payment punctuality",
        "%",
        f"Share of the payments of the last {DAYS} days made on time (not days late).",
        True,
        Thresholds(95, 80),
        10,
        _punctuality,
        ("FOLLOW_UP", "LATE_PAYMENTS", "Only {value}% of payments on time: follow up"),
    ),
    Indicator(
        "leave_intent",
        "Intent to leave",
        "times",
        f"Times the customer said it may leave, in the last {DAYS} days.",
        False,
        Thresholds(0, 0),
        40,
        lambda i, k: float(i.facts.periods[k].leave_intents),
        ("RETENTION", "LEAVE_INTENT", "Said they may leave: hand to the retention team"),
    ),
)


def _plugin_indicator(plugin: str, spec: HealthIndicator) -> Indicator:
    def compute(i: Inputs, k: int) -> float | None:
        snapshot = i.snapshots[k] if k < len(i.snapshots) else None
        if snapshot is None:
            return None
        value = spec.evaluate(snapshot)
        if value is not None and not isinstance(value, int | float):
            raise TypeError(f"returned {type(value).__name__}, not a number")
        return None if value is None else float(value)

    w = spec.warning
    return Indicator(
        indicator_name(plugin, spec.name),
        spec.label,
        spec.unit,
        spec.description,
        spec.higher_is_better,
        Thresholds(spec.green, spec.yellow),
        spec.weight,
        compute,
        (w.level, w.code, w.message) if w is not None else None,
        plugin,
    )


def registry(plugins: PluginRegistry) -> tuple[Indicator, ...]:
    """The core indicators, then every plugin's, in load order."""
    return CORE_INDICATORS + tuple(
        _plugin_indicator(source, spec) for source, spec in plugins.health_indicators
    )


@dataclass(frozen=True)
class Reading:
    """One indicator of one customer: its value now, band, trend (oldest first, the value now
    last) and an explanation."""

    indicator: Indicator
    value: float | None
    band: Band | None
    trend: tuple[float | None, ...]
    explanation: str


def read(
    indicators: Sequence[Indicator], inputs: Inputs, thresholds: Mapping[str, Thresholds]
) -> list[Reading]:
    """Every indicator's reading of one customer; an indicator that fails is logged and shown
    without data (a plugin's bug must not break a customer's page)."""
    readings = []
    for indicator in indicators:
        t = thresholds.get(indicator.name, indicator.default)
        try:
            trend = tuple(indicator.compute(inputs, k) for k in reversed(range(TREND_POINTS)))
        except Exception:
            log.exception("indicator %s failed for %s", indicator.name, inputs.facts.customer_id)
            trend = (None,) * TREND_POINTS
        value = trend[-1]
        band = indicator.band(value, t)
        readings.append(Reading(indicator, value, band, trend, indicator.explain(value, band, t)))
    return readings


def last_at(facts: CustomerFacts, kind: ActivityKind, k: int = 0) -> datetime | None:
    """When the customer last did ``kind`` by the end of period ``k`` (None: not in the
    loaded periods)."""
    return max((p.last_at[kind] for p in facts.periods[k:] if kind in p.last_at), default=None)
