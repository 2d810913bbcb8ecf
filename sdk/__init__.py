"""What plugin authors import: ``hookimpl`` and the specs of what a plugin contributes.

A plugin is a module whose ``baton_*`` functions, marked with ``@hookimpl``, implement hooks
from ``sdk.hookspecs``; it is registered under the ``baton.plugins`` entry-point group.
"""

import pluggy

from sdk.specs import (
    ActivityWindow,
    AssignmentDimension,
    CustomerSnapshot,
    EmailTemplate,
    FieldSpec,
    GroupMember,
    HealthIndicator,
    HealthSignal,
    PolicyGrant,
    SignalReading,
    TierCriterion,
    TierVote,
    Warning,
    WorkflowEvent,
)

hookimpl = pluggy.HookimplMarker("baton")

__all__ = [
    "ActivityWindow",
    "AssignmentDimension",
    "CustomerSnapshot",
    "EmailTemplate",
    "FieldSpec",
    "GroupMember",
    "HealthIndicator",
    "HealthSignal",
    "PolicyGrant",
    "SignalReading",
    "TierCriterion",
    "TierVote",
    "Warning",
    "WorkflowEvent",
    "hookimpl",
]
