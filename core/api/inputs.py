"""GraphQL input types. Update inputs are partial: omitted fields stay, explicit null clears."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

import strawberry
from strawberry import UNSET

from core.api.enums import (
    CommunicationChannel,
    CustomerKind,
    EngagementStage,
    LifecycleStage,
    LoyaltyTier,
    NeedsTier,
    PaymentMethod,
    ValueTier,
)
from core.api.segments import RfmSegment
from core.api.special_needs import given_needs, needs_writes
from core.services.profile import PROFILE_FIELDS, field_name


@strawberry.input(description="A person to talk to at the customer.")
class ContactInput:
    name: str
    title: str | None = None
    role: str | None = None
    email: str | None = None
    phone: str | None = None


@strawberry.input(description="Profile fields shared by create and update.")
class CustomerProfileInput:
    kind: CustomerKind | None = UNSET
    industry: str | None = UNSET
    territory: str | None = UNSET
    product_lines: list[str] | None = UNSET
    lifecycle_stage: LifecycleStage | None = UNSET
    first_contact_id: strawberry.ID | None = UNSET
    first_contact_at: datetime | None = UNSET
    backup_owner_id: strawberry.ID | None = UNSET
    value_tier: ValueTier | None = UNSET
    needs_tier: NeedsTier | None = UNSET
    loyalty_tier: LoyaltyTier | None = UNSET
    annual_revenue: Decimal | None = UNSET
    profit_contribution: Decimal | None = UNSET
    growth_potential: int | None = UNSET
    strategic_fit: int | None = UNSET
    payment_terms_days: int | None = UNSET
    payment_method: PaymentMethod | None = UNSET
    invoice_requirements: str | None = UNSET
    communication_preference: CommunicationChannel | None = UNSET
    contacts: list[ContactInput] | None = UNSET
    reason: str | None = strawberry.field(default=None, description="Recorded in the audit log.")

    authz_entity: ClassVar[str] = "Customer"

    def authz_write_fields(self) -> list[str]:
        return [field_name(attr) for attr in self.profile()]

    def authz_operations(self) -> list[str]:
        return []

    def authz_nested_writes(self) -> dict[str, list[str]]:
        """Plugin fields written, by policy type (``BankingSpecialNeeds`` → ``riskTolerance``)."""
        return needs_writes(self.needs())

    def needs(self) -> dict[str, dict[str, Any]]:
        """Plugin special needs set (plugin → field → value); the field exists only in a
        schema with plugins (``core.api.special_needs.with_special_needs``)."""
        return given_needs(getattr(self, "special_needs", UNSET))

    def profile(self) -> dict[str, Any]:
        """The given profile fields as ``attribute → value`` (omitted ones left out)."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in PROFILE_FIELDS or value is UNSET:
                continue
            if f.name == "contacts" and value is not None:
                value = [dataclasses.asdict(c) for c in value]
            data[f.name] = value
        return data


@strawberry.input
class CreateCustomerInput(CustomerProfileInput):
    name: str
    owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="Assign this owner at once (a manual assignment)."
    )
    auto_assign: bool = strawberry.field(
        default=True, description="Without `ownerId`, let the live assignment rules decide."
    )
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Create the customer as a unit of this account."
    )

    def profile(self) -> dict[str, Any]:
        return {"name": self.name, **super().profile()}

    def authz_write_fields(self) -> list[str]:
        return super().authz_write_fields() + (["parent"] if self.parent_id is not None else [])

    def authz_operations(self) -> list[str]:
        # Naming the owner at creation is a manual assignment.
        return ["Mutation.assignOwner"] if self.owner_id is not None else []


@strawberry.input
class UpdateCustomerInput(CustomerProfileInput):
    id: strawberry.ID
    expected_version: int
    name: str | None = UNSET


@strawberry.input
class AssignOwnerInput:
    customer_id: strawberry.ID
    owner_id: strawberry.ID
    backup_owner_id: strawberry.ID | None = None
    reason: str | None = None

    authz_entity: ClassVar[str] = "Customer"

    def authz_write_fields(self) -> list[str]:
        return ["owner"] + (["backupOwner"] if self.backup_owner_id is not None else [])

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input
class CreateUserInput:
    id: strawberry.ID
    name: str
    email: str | None = None
    roles: list[str] = strawberry.field(default_factory=list)
    manager_id: strawberry.ID | None = None
    team: str | None = None
    capacity: int | None = None
    locale: str | None = strawberry.field(
        default=None, description="The language of the user's e-mails: zh or en."
    )

    authz_entity: ClassVar[str] = "User"

    def authz_write_fields(self) -> list[str]:
        given = {
            "name": self.name,
            "email": self.email,
            "roles": self.roles,
            "manager": self.manager_id,
            "team": self.team,
            "capacity": self.capacity,
            "locale": self.locale,
        }
        return [name for name, value in given.items() if value not in (None, [])]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input
class UpdateUserInput:
    user_id: strawberry.ID
    locale: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The language of the user's e-mails: zh or en; null: the server's default.",
    )

    authz_entity: ClassVar[str] = "User"

    def authz_write_fields(self) -> list[str]:
        return ["locale"] if self.locale is not strawberry.UNSET else []

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input
class DeactivateUserInput:
    user_id: strawberry.ID
    reason: str | None = None
    dry_run: bool = strawberry.field(
        default=False, description="Only show what it would do (`releases`); write nothing."
    )

    authz_entity: ClassVar[str] = "User"

    def authz_write_fields(self) -> list[str]:
        return ["active"]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input(description="Combined with AND; prefixes match a code and everything below it.")
class CustomerFilter:
    owner_id: strawberry.ID | None = None
    territory: str | None = strawberry.field(default=None, description="Territory path prefix.")
    industry: str | None = strawberry.field(default=None, description="Industry code prefix.")
    value_tiers: list[ValueTier] | None = None
    lifecycle_stages: list[LifecycleStage] | None = None
    unassigned: bool | None = None
    search: str | None = strawberry.field(default=None, description="Part of the name.")
    engagement_stages: list[EngagementStage] | None = None
    rfm_segments: list[RfmSegment] | None = None

    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="The direct units of this account."
    )
    root_id: strawberry.ID | None = strawberry.field(
        default=None, description="Every account of this group (the top-level one included)."
    )
    has_children: bool | None = strawberry.field(
        default=None, description="Accounts with (true) or without (false) units."
    )

    authz_entity: ClassVar[str] = "Customer"
    _FIELDS: ClassVar[dict[str, str]] = {
        "engagement_stages": "engagementStage",
        "rfm_segments": "rfm",
        "parent_id": "parent",
        "root_id": "root",
        "has_children": "children",
        "owner_id": "owner",
        "territory": "territory",
        "industry": "industry",
        "value_tiers": "valueTier",
        "lifecycle_stages": "lifecycleStage",
        "unassigned": "owner",
        "search": "name",
    }

    def authz_read_fields(self) -> set[str]:
        """Filtering by a field reveals its values, so it needs read on that field."""
        return {f for attr, f in self._FIELDS.items() if getattr(self, attr) is not None}


@strawberry.enum
class CustomerOrderField(Enum):
    NAME = "name"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    ENGAGEMENT_STAGE = "engagement_stage"
    RFM_SCORE = "rfm_score"


@strawberry.enum
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input
class CustomerOrder:
    field: CustomerOrderField = CustomerOrderField.NAME
    direction: OrderDirection = OrderDirection.ASC

    authz_entity: ClassVar[str] = "Customer"

    def authz_read_fields(self) -> set[str]:
        return {
            "rfm" if self.field is CustomerOrderField.RFM_SCORE else field_name(self.field.value)
        }


@strawberry.input
class UserFilter:
    team: str | None = None
    active: bool | None = None
    manager_id: strawberry.ID | None = None

    authz_entity: ClassVar[str] = "User"

    def authz_read_fields(self) -> set[str]:
        given = {"team": self.team, "active": self.active, "manager": self.manager_id}
        return {name for name, value in given.items() if value is not None}


@strawberry.input
class AuditFilter:
    entity_type: str | None = None
    entity_id: strawberry.ID | None = None
    actor_id: strawberry.ID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    authz_entity: ClassVar[str] = "AuditEntry"

    def authz_read_fields(self) -> set[str]:
        given = {
            "entityType": self.entity_type,
            "entityId": self.entity_id,
            "actor": self.actor_id,
            "action": self.action,
            "at": self.since or self.until,
        }
        return {name for name, value in given.items() if value is not None}
