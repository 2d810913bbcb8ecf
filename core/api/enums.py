"""The domain enums, registered with strawberry; API modules import them from here.

Registering before any GraphQL type refers to them keeps one definition per enum.
"""

from __future__ import annotations

import strawberry

from core.authz.defaults import Scope
from core.domain.enums import (
    ActivityKind,
    AssignedBy,
    CommunicationChannel,
    CustomerKind,
    EngagementStage,
    LifecycleStage,
    LoyaltyTier,
    NeedsTier,
    PaymentMethod,
    ValueTier,
)

# Registering the domain enums (same names in GraphQL) keeps one definition of each value set.
for _enum, _description in (
    (CustomerKind, "Company or private person."),
    (LifecycleStage, "Where the customer stands."),
    (ValueTier, "Value to the business."),
    (NeedsTier, "How tailored the service must be."),
    (LoyaltyTier, "Loyalty and churn risk."),
    (PaymentMethod, "How the customer pays."),
    (CommunicationChannel, "How the customer prefers to be contacted."),
    (AssignedBy, "How the current owner came to own the customer."),
    (
        ActivityKind,
        "What a customer did: ordered, talked to us, complained, said it may leave, referred "
        "someone, paid.",
    ),
    (
        EngagementStage,
        "Where the customer stands by its own activity (not the sales lifecycleStage).",
    ),
):
    strawberry.enum(_enum, description=_description)
strawberry.enum(Scope, name="CustomerScope", description="Which customers a role reaches.")

__all__ = [
    "ActivityKind",
    "AssignedBy",
    "CommunicationChannel",
    "CustomerKind",
    "EngagementStage",
    "LifecycleStage",
    "LoyaltyTier",
    "NeedsTier",
    "PaymentMethod",
    "Scope",
    "ValueTier",
]
