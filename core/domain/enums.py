"""Enumerations of the domain; their names are the GraphQL enum values."""

from __future__ import annotations

from enum import StrEnum


class CustomerKind(StrEnum):
    ENTERPRISE = "ENTERPRISE"
    INDIVIDUAL = "INDIVIDUAL"


class LifecycleStage(StrEnum):
    LEAD = "LEAD"
    PROSPECT = "PROSPECT"
    ACTIVE = "ACTIVE"
    DORMANT = "DORMANT"
    CHURNED = "CHURNED"


class ValueTier(StrEnum):
    STRATEGIC = "STRATEGIC"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class NeedsTier(StrEnum):
    PERSONALIZED = "PERSONALIZED"
    STANDARD = "STANDARD"
    POTENTIAL = "POTENTIAL"


class LoyaltyTier(StrEnum):
    LOYAL = "LOYAL"
    GENERAL = "GENERAL"
    CHURN_RISK = "CHURN_RISK"


class ActivityKind(StrEnum):
    ORDER = "ORDER"
    INTERACTION = "INTERACTION"
    COMPLAINT = "COMPLAINT"
    LEAVE_INTENT = "LEAVE_INTENT"
    REFERRAL = "REFERRAL"
    PAYMENT = "PAYMENT"


class PaymentMethod(StrEnum):
    BANK_TRANSFER = "BANK_TRANSFER"
    DIRECT_DEBIT = "DIRECT_DEBIT"
    CREDIT_CARD = "CREDIT_CARD"
    LETTER_OF_CREDIT = "LETTER_OF_CREDIT"
    CHEQUE = "CHEQUE"


class CommunicationChannel(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    VIDEO = "VIDEO"
    IN_PERSON = "IN_PERSON"
    MESSAGING = "MESSAGING"


class AssignedBy(StrEnum):
    RULE = "RULE"
    MANUAL = "MANUAL"
    HANDOVER = "HANDOVER"
    INTERIM = "INTERIM"


class Strategy(StrEnum):
    """How an assignment rule picks the owner once its conditions match."""

    FIXED_OWNER = "FIXED_OWNER"
    FIRST_CONTACT = "FIRST_CONTACT"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_LOADED = "LEAST_LOADED"
    # The parent account's current owner (a unit follows its group unless a rule says else).
    INHERIT_PARENT_OWNER = "INHERIT_PARENT_OWNER"


class ReassignmentTrigger(StrEnum):
    OWNER_LEFT = "OWNER_LEFT"
    ROLE_CHANGE = "ROLE_CHANGE"
    REORGANIZATION = "REORGANIZATION"
    NEEDS_CHANGE = "NEEDS_CHANGE"
    CUSTOMER_REQUEST = "CUSTOMER_REQUEST"
    PERFORMANCE = "PERFORMANCE"
    RULE_REALIGNMENT = "RULE_REALIGNMENT"


class RequestStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class HandoverStatus(StrEnum):
    """The handover workflow; CLOSED and CANCELLED are final."""

    HANDBOOK_PENDING = "HANDBOOK_PENDING"
    HANDBOOK_SUBMITTED = "HANDBOOK_SUBMITTED"
    HANDBOOK_APPROVED = "HANDBOOK_APPROVED"
    CUSTOMER_NOTIFIED = "CUSTOMER_NOTIFIED"
    COMPLETED = "COMPLETED"
    FEEDBACK_RECEIVED = "FEEDBACK_RECEIVED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"


class MeetingKind(StrEnum):
    BRIEFING = "BRIEFING"
    SIMULATION = "SIMULATION"
    THREE_PARTY = "THREE_PARTY"


class TeamRole(StrEnum):
    """The part a person plays in a key account's team (beside its one accountable owner)."""

    SERVICE = "SERVICE"
    PRE_SALES = "PRE_SALES"
    TECHNICAL = "TECHNICAL"
    FINANCE_CONTACT = "FINANCE_CONTACT"
    EXECUTIVE_SPONSOR = "EXECUTIVE_SPONSOR"


class IdempotencyState(StrEnum):
    """An Idempotency-Key's request: still running, or answered (the response is stored)."""

    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


class SurveyKind(StrEnum):
    NPS = "NPS"  # 0-10: how likely to recommend us
    CES = "CES"  # 1-7: how easy it was to get what they needed (7: very easy)
    SATISFACTION = "SATISFACTION"  # 1-5


class SurveyOccasion(StrEnum):
    QUARTERLY = "QUARTERLY"
    POST_HANDOVER = "POST_HANDOVER"
    POST_DELIVERY = "POST_DELIVERY"
    AD_HOC = "AD_HOC"


class SurveyStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    ANSWERED = "ANSWERED"


class EngagementStage(StrEnum):
    """Where a customer stands by its own activity (not the sales ``LifecycleStage``)."""

    NEW = "NEW"
    ACTIVE = "ACTIVE"
    DORMANT = "DORMANT"
    CHURNED = "CHURNED"
