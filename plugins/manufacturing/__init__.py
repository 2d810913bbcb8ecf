"""Manufacturing: compliance, invoicing, delivery and batch needs of industrial buyers."""

from __future__ import annotations

from decimal import Decimal

from sdk import (
    AssignmentDimension,
    CustomerSnapshot,
    FieldSpec,
    HealthSignal,
    PolicyGrant,
    SignalReading,
    TierCriterion,
    TierVote,
    Warning,
    hookimpl,
)

BATON_REQUIRES = ">=0.1,<1"

PLANT_REGIONS = ("CN_EAST", "CN_NORTH", "CN_SOUTH", "CN_WEST", "EUROPE", "AMERICAS", "APAC")
CERTIFICATIONS = ("ISO_9001", "ISO_14001", "IATF_16949", "AS9100", "ISO_13485")
# Annual procurement (orders in the last 365 days) that makes a buyer key.
STRATEGIC_VOLUME = Decimal("50000000")
HIGH_VOLUME = Decimal("10000000")


@hookimpl
def baton_special_needs_fields() -> list[FieldSpec]:
    return [
        FieldSpec(
            "esg_requirements",
            "list[str]",
            "ESG compliance the buyer requires of suppliers, e.g. 'carbon report'.",
            max=20,
        ),
        FieldSpec(
            "invoicing_requirements",
            "str",
            "How invoices must be issued (PO numbers, e-invoicing portal).",
            max=2000,
        ),
        FieldSpec("delivery_sla_days", "int", "Promised delivery time in days.", min=1, max=365),
        FieldSpec(
            "preferred_batch_size", "int", "Units per delivery batch.", min=1, max=10_000_000
        ),
        FieldSpec(
            "quality_certifications",
            "list[str]",
            "Certifications the buyer demands.",
            choices=CERTIFICATIONS,
        ),
        FieldSpec(
            "plant_region", "enum", "Where the buyer's main plant is.", choices=PLANT_REGIONS
        ),
    ]


@hookimpl
def baton_tier_criteria() -> list[TierCriterion]:
    def procurement_volume(c: CustomerSnapshot) -> TierVote | None:
        spend = c.year.order_amount
        if spend >= STRATEGIC_VOLUME:
            return TierVote("STRATEGIC", f"annual procurement {spend}")
        if spend >= HIGH_VOLUME:
            return TierVote("HIGH", f"annual procurement {spend}")
        return None

    def category_breadth(c: CustomerSnapshot) -> TierVote | None:
        if len(c.year.categories) >= 5:
            return TierVote("PERSONALIZED", f"buys in {len(c.year.categories)} categories")
        return None

    def multi_region_group(c: CustomerSnapshot) -> TierVote | None:
        # The plants of one group: supplying a group whose plants sit in several regions
        # means coordinating deliveries and quality across them, for each of its accounts.
        regions = {
            m.special_needs.get("manufacturing", {}).get("plant_region") for m in c.group
        } - {None}
        if len(regions) >= 2:
            return TierVote("PERSONALIZED", f"its group has plants in {len(regions)} regions")
        return None

    return [
        TierCriterion(
            "procurement_volume", "value", "Annual procurement volume.", procurement_volume
        ),
        TierCriterion("category_breadth", "needs", "Breadth of categories.", category_breadth),
        TierCriterion(
            "multi_region_group",
            "needs",
            "An account of a group with plants in several regions.",
            multi_region_group,
        ),
    ]


@hookimpl
def baton_assignment_dimensions() -> list[AssignmentDimension]:
    return [AssignmentDimension("plantRegion", "plant_region", "Route by the main plant.")]


@hookimpl
def baton_health_signals() -> list[HealthSignal]:
    def order_frequency_drop(c: CustomerSnapshot) -> SignalReading | None:
        if c.previous.orders >= 4 and c.recent.orders * 2 <= c.previous.orders:
            return SignalReading(
                15,
                Warning(
                    "DIAGNOSIS",
                    "ORDER_FREQUENCY_DROP",
                    f"Orders fell from {c.previous.orders} to {c.recent.orders} a quarter",
                ),
            )
        return None

    return [
        HealthSignal(
            "order_frequency_drop",
            "Orders halved against the previous 90 days.",
            order_frequency_drop,
        )
    ]


@hookimpl
def baton_default_policies() -> list[PolicyGrant]:
    return [
        PolicyGrant("account_manager", "ManufacturingSpecialNeeds.*", "read"),
        PolicyGrant("account_manager", "ManufacturingSpecialNeeds.*", "write"),
        PolicyGrant("finance", "ManufacturingSpecialNeeds.invoicingRequirements", "read"),
        PolicyGrant("customer_service", "ManufacturingSpecialNeeds.deliverySlaDays", "read"),
    ]
