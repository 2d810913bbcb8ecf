"""Banking: investment risk, assets under management, privacy and concierge service.

Finance reads none of the risk or privacy fields; account managers read and write them all.
"""

from __future__ import annotations

from decimal import Decimal

from sdk import (
    AssignmentDimension,
    CustomerSnapshot,
    FieldSpec,
    HealthIndicator,
    HealthSignal,
    PolicyGrant,
    SignalReading,
    TierCriterion,
    TierVote,
    Warning,
    hookimpl,
)

BATON_REQUIRES = ">=0.1,<1"

AUM_BANDS = ("BELOW_1M", "FROM_1M_TO_10M", "FROM_10M_TO_100M", "ABOVE_100M")
# Private banking starts at 10 million under management.
PRIVATE_BANKING_BANDS = frozenset({"FROM_10M_TO_100M", "ABOVE_100M"})
RISK_AND_PRIVACY = ("riskTolerance", "privacyOptOut", "marketingOptOut", "kycReviewDate")


@hookimpl
def baton_special_needs_fields() -> list[FieldSpec]:
    return [
        FieldSpec(
            "risk_tolerance",
            "enum",
            "Investment risk tolerance, C1 (lowest) to C5 (highest).",
            choices=("C1", "C2", "C3", "C4", "C5"),
            sensitive=True,
        ),
        FieldSpec("aum_band", "enum", "Assets under management.", choices=AUM_BANDS),
        FieldSpec(
            "privacy_opt_out",
            "bool",
            "Customer data may not be shared with group companies.",
            sensitive=True,
        ),
        FieldSpec("marketing_opt_out", "bool", "No marketing contact.", sensitive=True),
        FieldSpec(
            "concierge_channel",
            "str",
            "The 24-hour concierge line or address, e.g. +86 21 5555 0100.",
            max=100,
        ),
        FieldSpec(
            "kyc_review_date", "date", "When know-your-customer is next reviewed.", sensitive=True
        ),
    ]


@hookimpl
def baton_tier_criteria() -> list[TierCriterion]:
    def private_banking(c: CustomerSnapshot) -> TierVote | None:
        band = c.special_needs.get("banking", {}).get("aum_band")
        if band in PRIVATE_BANKING_BANDS:
            return TierVote("STRATEGIC" if band == "ABOVE_100M" else "HIGH", f"AUM {band}")
        return None

    def group_exposure(c: CustomerSnapshot) -> TierVote | None:
        # The bank's exposure is to the whole group: a subsidiary of a group that holds
        # private-banking assets anywhere is served as a high-value account itself.
        for member in c.group:
            band = member.special_needs.get("banking", {}).get("aum_band")
            if member.id != c.id and band in PRIVATE_BANKING_BANDS:
                return TierVote("HIGH", f"its group holds AUM {band} at {member.id}")
        return None

    def concierge(c: CustomerSnapshot) -> TierVote | None:
        if c.special_needs.get("banking", {}).get("concierge_channel"):
            return TierVote("PERSONALIZED", "has a 24-hour concierge channel")
        return None

    return [
        TierCriterion("private_banking", "value", "Private banking by AUM.", private_banking),
        TierCriterion(
            "group_exposure",
            "value",
            "A unit of a group with private-banking AUM elsewhere in the group.",
            group_exposure,
        ),
        TierCriterion(
            "concierge", "needs", "Concierge customers need a personal touch.", concierge
        ),
    ]


@hookimpl
def baton_assignment_dimensions() -> list[AssignmentDimension]:
    return [AssignmentDimension("aumBand", "aum_band", "Route by assets under management.")]


@hookimpl
def baton_health_signals() -> list[HealthSignal]:
    def aum_outflow(c: CustomerSnapshot) -> SignalReading | None:
        # Withdrawals are recorded as orders with a negative amount in the "aum" category.
        if "aum" not in c.recent.categories and "aum" not in c.previous.categories:
            return None
        if c.recent.order_amount < Decimal(0) and -c.recent.order_amount > abs(
            c.previous.order_amount
        ):
            return SignalReading(
                20,
                Warning("DIAGNOSIS", "AUM_OUTFLOW", "Assets are flowing out: review the mandate"),
            )
        return None

    return [HealthSignal("aum_outflow", "Net withdrawals over the last 90 days.", aum_outflow)]


@hookimpl
def baton_health_indicators() -> list[HealthIndicator]:
    def net_flow(c: CustomerSnapshot) -> float | None:
        # Deposits are orders in the "aum" category, withdrawals the same with a negative amount.
        if "aum" not in c.recent.categories:
            return None
        return float(c.recent.order_amount)

    return [
        HealthIndicator(
            "net_flow",
            "Net asset flow",
            "Deposits minus withdrawals (orders in the aum category) of the last 90 days.",
            "CNY",
            green=0,
            yellow=-1_000_000,
            evaluate=net_flow,
            weight=10,
        )
    ]


@hookimpl
def baton_default_policies() -> list[PolicyGrant]:
    every = "BankingSpecialNeeds.*"
    return [
        PolicyGrant("account_manager", every, "read"),
        PolicyGrant("account_manager", every, "write"),
        PolicyGrant("customer_service", "BankingSpecialNeeds.conciergeChannel", "read"),
        PolicyGrant("customer_service", "BankingSpecialNeeds.marketingOptOut", "read"),
        PolicyGrant("finance", "BankingSpecialNeeds.aumBand", "read"),
        PolicyGrant("finance", "HealthIndicator.bankingNetFlow", "read"),
    ]
