"""Enumerations of the domain; their names are the GraphQL enum values."""

from __future__ import annotations

from enum import Enum


class CustomerKind(str, Enum):
    ENTERPRISE = "ENTERPRISE"
    INDIVIDUAL = "INDIVIDUAL"


class LifecycleStage(str, Enum):
    LEAD = "LEAD"
    PROSPECT = "PROSPECT"
    ACTIVE = "ACTIVE"
    DORMANT = "DORMANT"
    CHURNED = "CHURNED"


class ValueTier(str, Enum):
    STRATEGIC = "STRATEGIC"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class NeedsTier(str, Enum):
    PERSONALIZED = "PERSONALIZED"
    STANDARD = "STANDARD"
    POTENTIAL = "POTENTIAL"


class LoyaltyTier(str, Enum):
    LOYAL = "LOYAL"
    GENERAL = "GENERAL"
    CHURN_RISK = "CHURN_RISK"


class PaymentMethod(str, Enum):
    BANK_TRANSFER = "BANK_TRANSFER"
    DIRECT_DEBIT = "DIRECT_DEBIT"
    CREDIT_CARD = "CREDIT_CARD"
    LETTER_OF_CREDIT = "LETTER_OF_CREDIT"
    CHEQUE = "CHEQUE"


class CommunicationChannel(str, Enum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    VIDEO = "VIDEO"
    IN_PERSON = "IN_PERSON"
    MESSAGING = "MESSAGING"


class AssignedBy(str, Enum):
    RULE = "RULE"
    MANUAL = "MANUAL"
    HANDOVER = "HANDOVER"
    INTERIM = "INTERIM"
