"""The hooks a Baton plugin may implement. Each returns what its docstring says.

A plugin implements any subset, and an implementation may take any subset of a hook's
arguments, so a hook can gain an argument later without breaking plugins.
"""

from __future__ import annotations

from datetime import date

import pluggy

from sdk.specs import (
    AssignmentDimension,
    EmailTemplate,
    FieldSpec,
    HealthIndicator,
    HealthSignal,
    PolicyGrant,
    TierCriterion,
    WorkflowEvent,
)

hookspec = pluggy.HookspecMarker("baton")


@hookspec
def baton_special_needs_fields() -> list[FieldSpec]:
    """The typed fields shown under ``Customer.specialNeeds.<plugin>``."""
    raise NotImplementedError


@hookspec
def baton_tier_criteria() -> list[TierCriterion]:
    """Criteria that can lift a customer's value, needs or loyalty tier."""
    raise NotImplementedError


@hookspec
def baton_assignment_dimensions() -> list[AssignmentDimension]:
    """Assignment-rule conditions read from the plugin's own special-needs fields."""
    raise NotImplementedError


@hookspec
def baton_health_signals() -> list[HealthSignal]:
    """Signals that take points off the health score and raise risk warnings."""
    raise NotImplementedError


@hookspec
def baton_health_indicators() -> list[HealthIndicator]:
    """Indicators shown with a band and a trend on the health dashboard (``Customer.health``)."""
    raise NotImplementedError


@hookspec
def baton_default_policies() -> list[PolicyGrant]:
    """Default permissions on the plugin's own fields, installed with the core defaults."""
    raise NotImplementedError


@hookspec
def baton_holidays() -> list[date]:
    """Extra non-working days for the working-day calendar (deadlines skip them)."""
    raise NotImplementedError


@hookspec
def baton_workflow_event(event: WorkflowEvent) -> None:
    """Called once per handover workflow event after its transaction committed."""
    raise NotImplementedError


@hookspec
def baton_email_templates() -> list[EmailTemplate]:
    """Wording that replaces Baton's own e-mail templates (per notice and locale)."""
    raise NotImplementedError


HOOKS = tuple(name for name in list(globals()) if name.startswith("baton_"))
