"""The frozen values a plugin hands to Baton, and the read-only customer view it is handed.

A plugin never touches the database or the GraphQL schema: it describes fields, criteria,
dimensions, signals and policies with these specs, and Baton does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

FieldType = Literal["str", "int", "float", "bool", "date", "enum", "list[str]"]
TierKind = Literal["value", "needs", "loyalty"]
Action = Literal["read", "write", "call"]


@dataclass(frozen=True)
class FieldSpec:
    """A typed special-needs field, shown as ``Customer.specialNeeds.<plugin>.<name>``.

    Args:
        name: snake_case; GraphQL shows it camelCased (``risk_tolerance`` → ``riskTolerance``).
        type: the value type; ``enum`` needs ``choices``.
        description: shown in the schema.
        required: once the plugin's special needs are set, this field may not be null.
        sensitive: withheld from roles that read customers broadly (the plugin's policies say who
            reads it); the schema description says so.
        min, max: inclusive bounds for ``int`` and ``float``; for ``str`` and ``list[str]``, length.
        pattern: a regular expression a ``str`` (or each ``list[str]`` item) must fully match.
        choices: the allowed values of an ``enum`` (SCREAMING_SNAKE) or of ``list[str]`` items.
    """

    name: str
    type: FieldType
    description: str
    required: bool = False
    sensitive: bool = False
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActivityWindow:
    """What a customer did in one period (see ``CustomerSnapshot``)."""

    orders: int = 0
    order_amount: Decimal = Decimal(0)
    categories: frozenset[str] = frozenset()
    interactions: int = 0
    complaints: int = 0


@dataclass(frozen=True)
class GroupMember:
    """One account of a customer's group, as plugins read it (the group's top-level account
    has no ``parent_id``)."""

    id: str
    parent_id: str | None
    depth: int
    value_tier: str | None
    annual_revenue: Decimal | None
    special_needs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerSnapshot:
    """A customer as tier criteria, health signals and dimensions read it; never written back.

    ``recent`` is the last 90 days, ``previous`` the 90 days before, ``year`` the last 365 days,
    all counted back from ``as_of``. ``special_needs`` maps plugin name → field name → value.
    ``parent_id`` and ``root_id`` place the customer in its group (a top-level account is its
    own root); ``group`` lists every account of the group, the customer included, when the
    group has units (empty for a stand-alone account).
    """

    id: str
    as_of: datetime
    name: str
    kind: str
    industry: str | None
    territory: str | None
    product_lines: tuple[str, ...]
    lifecycle_stage: str
    value_tier: str | None
    needs_tier: str | None
    loyalty_tier: str | None
    annual_revenue: Decimal | None
    profit_contribution: Decimal | None
    growth_potential: int | None
    strategic_fit: int | None
    special_needs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    recent: ActivityWindow = ActivityWindow()
    previous: ActivityWindow = ActivityWindow()
    year: ActivityWindow = ActivityWindow()
    last_order_at: datetime | None = None
    last_interaction_at: datetime | None = None
    leave_intent_at: datetime | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group: tuple[GroupMember, ...] = ()


@dataclass(frozen=True)
class TierVote:
    """A criterion's verdict: the customer's tier is at least ``at_least``, because ``reason``."""

    at_least: str
    reason: str


@dataclass(frozen=True)
class TierCriterion:
    """A rule that can lift a customer's value, needs or loyalty tier.

    ``evaluate`` returns a vote or None (no opinion); the tier is the highest of the core
    verdict and every vote, so a plugin can raise a tier but never lower it.
    """

    name: str
    tier: TierKind
    description: str
    evaluate: Callable[[CustomerSnapshot], TierVote | None]


@dataclass(frozen=True)
class AssignmentDimension:
    """An assignment-rule condition read from one of the plugin's own special-needs fields.

    Rules name it in ``conditions.extra`` (``{"aumBand": ["ABOVE_100M"]}``); a customer matches
    when the field's value is one of the listed values.
    """

    name: str
    field: str
    description: str


@dataclass(frozen=True)
class Warning:
    """A risk warning a health signal raises. ``level`` is the seed's escalation level."""

    level: Literal["FOLLOW_UP", "DIAGNOSIS", "RETENTION"]
    code: str
    message: str


@dataclass(frozen=True)
class SignalReading:
    """What one health signal says of one customer: points off the 0-100 score, and a warning."""

    penalty: int
    warning: Warning | None = None


@dataclass(frozen=True)
class HealthSignal:
    """A contribution to the health score; ``evaluate`` returns None when it has nothing to say."""

    name: str
    description: str
    evaluate: Callable[[CustomerSnapshot], SignalReading | None]


@dataclass(frozen=True)
class HealthIndicator:
    """A named indicator on the health dashboard, next to the core ones.

    ``evaluate`` reads a snapshot and returns the value (None: no data). Its band is GREEN
    when the value reaches ``green``, YELLOW when it reaches ``yellow``, else RED ("reaches":
    at least, or at most when ``higher_is_better`` is False); admins may tune both thresholds.
    A RED indicator takes ``weight`` points off the health score (a YELLOW one half of them)
    and raises ``warning`` if given. Baton shows it as ``<plugin>_<name>`` and authorises it
    as the object ``HealthIndicator.<pluginName>`` (camelCase), like the core indicators.
    """

    name: str
    label: str
    description: str
    unit: str
    green: float
    yellow: float
    evaluate: Callable[[CustomerSnapshot], float | None]
    higher_is_better: bool = True
    weight: int = 0
    warning: Warning | None = None


@dataclass(frozen=True)
class PolicyGrant:
    """A default permission for the plugin's own objects (``BankingSpecialNeeds.riskTolerance``)."""

    role: str
    object: str
    action: Action = "read"


@dataclass(frozen=True)
class WorkflowEvent:
    """A workflow event from the outbox, delivered after its transaction committed.

    ``kind`` is one of ``HANDOVER_OPENED``, ``STEP_DONE``, ``DUE_SOON``, ``OVERDUE``,
    ``COMPLETED``, ``CANCELLED``, ``TEAM_MEMBER_REMOVED`` (more may come: ignore kinds you do
    not know). ``handover_id`` is None for an event about the customer only (a team change).
    """

    id: int
    kind: str
    at: datetime
    handover_id: str | None
    customer_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailTemplate:
    """A plugin's wording for one e-mail notice in one locale, replacing Baton's own.

    ``name`` is a notice (``handbook_submitted``, ``step_due_soon``, ``step_overdue``,
    ``customer_notice_draft``, ``health_red``), ``locale`` ``zh`` or ``en``; ``subject`` and
    ``body`` are ``string.Template`` text using that notice's ``$placeholders``
    (docs/admin/notifications.md lists them). Values a recipient may not read are left out
    before the template sees them.
    """

    name: str
    locale: str
    subject: str
    body: str


__all__ = [
    "Action",
    "ActivityWindow",
    "AssignmentDimension",
    "CustomerSnapshot",
    "EmailTemplate",
    "FieldSpec",
    "FieldType",
    "GroupMember",
    "HealthIndicator",
    "HealthSignal",
    "PolicyGrant",
    "SignalReading",
    "TierCriterion",
    "TierKind",
    "TierVote",
    "Warning",
    "WorkflowEvent",
]
