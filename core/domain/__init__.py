"""Models and invariants: users, customers, ownership history, audit entries, policies."""

from core.domain.base import Base
from core.domain.enums import (
    AssignedBy,
    CommunicationChannel,
    CustomerKind,
    HandoverStatus,
    LifecycleStage,
    LoyaltyTier,
    NeedsTier,
    PaymentMethod,
    ReassignmentTrigger,
    RequestStatus,
    Strategy,
    ValueTier,
)
from core.domain.models import (
    AssignmentRule,
    AuditEntry,
    CasbinRule,
    Customer,
    Handover,
    Ownership,
    PolicyVersion,
    ReassignmentRequest,
    User,
)

__all__ = [
    "AssignedBy",
    "AssignmentRule",
    "AuditEntry",
    "Base",
    "CasbinRule",
    "CommunicationChannel",
    "Customer",
    "CustomerKind",
    "Handover",
    "HandoverStatus",
    "LifecycleStage",
    "LoyaltyTier",
    "NeedsTier",
    "Ownership",
    "PaymentMethod",
    "PolicyVersion",
    "ReassignmentRequest",
    "ReassignmentTrigger",
    "RequestStatus",
    "Strategy",
    "User",
    "ValueTier",
]
