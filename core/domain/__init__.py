"""Models and invariants: users, customers, ownership history, audit entries, policies."""

from core.domain.base import Base
from core.domain.enums import (
    AssignedBy,
    CommunicationChannel,
    CustomerKind,
    LifecycleStage,
    LoyaltyTier,
    NeedsTier,
    PaymentMethod,
    ValueTier,
)
from core.domain.models import (
    AuditEntry,
    CasbinRule,
    Customer,
    Ownership,
    PolicyVersion,
    User,
)

__all__ = [
    "AssignedBy",
    "AuditEntry",
    "Base",
    "CasbinRule",
    "CommunicationChannel",
    "Customer",
    "CustomerKind",
    "LifecycleStage",
    "LoyaltyTier",
    "NeedsTier",
    "Ownership",
    "PaymentMethod",
    "PolicyVersion",
    "User",
    "ValueTier",
]
