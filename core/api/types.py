"""GraphQL object types. Everything a role could be denied is nullable (see CONTRACT.md)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from core import domain
from core.api.connection import Connection, page_connection
from core.api.context import context_of
from core.api.enums import (
    AssignedBy,
    CommunicationChannel,
    CustomerKind,
    EngagementStage,
    LifecycleStage,
    LoyaltyTier,
    NeedsTier,
    PaymentMethod,
    Scope,
    ValueTier,
)
from core.authz.view import PermissionView
from core.errors import NotFound
from core.ids import PREFIXES
from core.plugins import Plugin
from core.services import hierarchy
from core.services.pagination import DEFAULT_PAGE_SIZE, check_page_size
from core.services.special_needs import policy_object

if TYPE_CHECKING:
    from core.api.assignment import AssignmentRule
    from core.api.hierarchy import AccountRollup, TeamMember
    from core.api.insight import CustomerHealth
    from core.api.segments import RfmScore
    from core.api.surveys import Survey, TierOverride


@strawberry.interface(description="An object with a stable, globally unique id.")
class Node:
    id: strawberry.ID


async def user_or_none(info: Info, user_id: str | None) -> User | None:
    """The user with this id through the request's dataloader (None for None or unknown)."""
    if user_id is None:
        return None
    model = await context_of(info).users.load(user_id)
    return User.from_model(model) if model is not None else None


async def customer_in_scope(info: Info, customer_id: str) -> Customer:
    """The customer, if the viewer's reading scope reaches it (else NOT_FOUND, like a missing
    one): a customer in their row scope, or one they are receiving through a handover."""
    model = await context_of(info).customers.load(customer_id)
    if model is None:
        raise NotFound("Customer", customer_id)
    return Customer.from_model(model)


async def visible_customer(info: Info, customer_id: str | None) -> Customer | None:
    """The customer through the request's dataloader, if the viewer's reading scope reaches
    it (None otherwise, as for None)."""
    if customer_id is None:
        return None
    model = await context_of(info).customers.load(customer_id)
    return Customer.from_model(model) if model is not None else None


@strawberry.type(description="A person who can own customers and use Baton.")
class User(Node):
    name: str | None
    email: str | None
    active: bool | None
    team: str | None
    capacity: int | None = strawberry.field(description="Most customers this user may own.")
    locale: str | None = strawberry.field(
        description="The language of the user's e-mails (zh or en); null: the server's default."
    )
    manager_id: strawberry.Private[str | None]
    # Attributes that are a column of the users table, unchanged by ``from_model``.
    sql_columns: ClassVar[dict[str, Any]] = {
        name: getattr(domain.User, name)
        for name in ("id", "name", "email", "active", "team", "capacity", "locale", "manager_id")
    }

    @strawberry.field(description="The user this user reports to.")
    async def manager(self, info: Info) -> User | None:
        return await user_or_none(info, self.manager_id)

    @strawberry.field(description="Roles assigned to the user (from the policy store).")
    async def roles(self, info: Info) -> list[str] | None:
        return await context_of(info).roles.load(str(self.id))

    @strawberry.field(description="How many customers the user owns now.")
    async def account_count(self, info: Info) -> int | None:
        return await context_of(info).account_counts.load(str(self.id))

    @classmethod
    def from_model(cls, m: domain.User) -> User:
        return cls(
            id=strawberry.ID(m.id),
            name=m.name,
            email=m.email,
            active=m.active,
            team=m.team,
            capacity=m.capacity,
            locale=m.locale,
            manager_id=m.manager_id,
        )


@strawberry.type(description="A person to talk to at the customer.")
class Contact:
    # Authorised as a whole by ``Customer.contacts``.
    authz_exempt: ClassVar[bool] = True

    name: str | None
    title: str | None
    role: str | None
    email: str | None
    phone: str | None


@strawberry.type(description="Who owned the customer, from when until when, and why.")
class Ownership:
    assigned_by: AssignedBy | None
    since: datetime | None
    until: datetime | None = strawberry.field(description="Null for the current owner.")
    reason: str | None
    rule_version: int | None = strawberry.field(
        description="The version of the rule when it decided (rules change later)."
    )
    rule_id: strawberry.Private[str | None]
    owner_id: strawberry.Private[str]
    # Fields that are the user an attribute names (``core.api.completed`` loads them at once).
    user_references: ClassVar[dict[str, str]] = {"owner": "owner_id"}

    @strawberry.field(description="The owner in this period.")
    async def owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.owner_id)

    @strawberry.field(description="The assignment rule that decided (null if manual or deleted).")
    async def rule(
        self, info: Info
    ) -> Annotated[AssignmentRule, strawberry.lazy("core.api.assignment")] | None:
        from core.api.assignment import AssignmentRule

        if self.rule_id is None:
            return None
        model = await context_of(info).rules.load(self.rule_id)
        return AssignmentRule.from_model(model) if model is not None else None

    @classmethod
    def from_model(cls, m: domain.Ownership) -> Ownership:
        return cls(
            assigned_by=m.assigned_by,
            since=m.valid_from,
            until=m.valid_to,
            reason=m.reason,
            rule_id=m.rule_id,
            rule_version=m.rule_version,
            owner_id=m.owner_id,
        )


@strawberry.type(description="A key customer and its profile.")
class Customer(Node):
    version: int
    name: str | None
    kind: CustomerKind | None
    industry: str | None = strawberry.field(
        description="Dotted code, e.g. `manufacturing.automotive`."
    )
    territory: str | None = strawberry.field(
        description="`/`-separated path, e.g. `CN/East/Shanghai`."
    )
    product_lines: list[str] | None
    lifecycle_stage: LifecycleStage | None
    first_contact_at: datetime | None
    value_tier: ValueTier | None
    needs_tier: NeedsTier | None
    loyalty_tier: LoyaltyTier | None
    annual_revenue: Decimal | None
    profit_contribution: Decimal | None
    growth_potential: int | None = strawberry.field(description="0-100.")
    strategic_fit: int | None = strawberry.field(description="0-100.")
    payment_terms_days: int | None
    payment_method: PaymentMethod | None
    invoice_requirements: str | None
    communication_preference: CommunicationChannel | None
    contacts: list[Contact] | None
    created_at: datetime | None
    updated_at: datetime | None
    ownership: Ownership | None = strawberry.field(
        description="The current ownership; null while the customer has no owner.",
        metadata={"authz": "container"},
    )
    owner_id: strawberry.Private[str | None]
    backup_owner_id: strawberry.Private[str | None]
    first_contact_id: strawberry.Private[str | None]
    parent_id: strawberry.Private[str | None]
    root_id: strawberry.Private[str]
    path: strawberry.Private[str]
    group_director_id: strawberry.Private[str | None]
    # Shown as the typed ``specialNeeds`` when the schema has plugins (``core.api.schema``).
    special_needs_data: strawberry.Private[dict[str, dict[str, Any]]]
    # Fields that are the user an attribute names (``core.api.completed`` loads them at once).
    user_references: ClassVar[dict[str, str]] = {
        "owner": "owner_id",
        "backupOwner": "backup_owner_id",
        "firstContact": "first_contact_id",
    }
    # Attributes that are a column of the customers list's rows, unchanged by ``from_model``:
    # a page needing only these is loaded as rows (``core.api.connection``). Every column of
    # the table is one, except those ``from_model`` converts (list a new converted one here).
    sql_columns: ClassVar[dict[str, Any]] = {
        **{
            column.key: getattr(domain.Customer, column.key)
            for column in domain.Customer.__table__.columns
            if column.key not in ("contacts", "special_needs")  # converted by from_model
        },
        "owner_id": domain.Ownership.owner_id,
    }

    @strawberry.field(description="The one accountable owner; null while unassigned.")
    async def owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.owner_id)

    @strawberry.field(description="Stands in when the owner is away or leaves.")
    async def backup_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.backup_owner_id)

    @strawberry.field(description="The user who first contacted the customer.")
    async def first_contact(self, info: Info) -> User | None:
        return await user_or_none(info, self.first_contact_id)

    @strawberry.field(
        description="Health score and risk warnings from the activity history.",
        metadata={"authz": "container"},
    )
    async def health(
        self, info: Info
    ) -> Annotated[CustomerHealth, strawberry.lazy("core.api.insight")] | None:
        from core.api.insight import CustomerHealth

        ctx = context_of(info)
        return CustomerHealth.of(await ctx.health.load(str(self.id)), ctx.permissions)

    @strawberry.field(
        description="Where the customer stands by its own activity: NEW, ACTIVE, DORMANT or "
        "CHURNED (not the sales `lifecycleStage`); as of `rfm.refreshedAt`, null until first "
        "computed (within about a minute of creation)."
    )
    async def engagement_stage(self, info: Info) -> EngagementStage | None:
        stage, _ = await context_of(info).segments.load(str(self.id))
        return EngagementStage(stage) if stage is not None else None

    @strawberry.field(description="RFM quintiles and segment; null without an order in a year.")
    async def rfm(
        self, info: Info
    ) -> Annotated[RfmScore, strawberry.lazy("core.api.segments")] | None:
        from core.api.segments import RfmScore

        _, found = await context_of(info).segments.load(str(self.id))
        return RfmScore.of(found) if found is not None else None

    @strawberry.field(description="The customer's latest surveys (at most 20), newest first.")
    async def surveys(
        self, info: Info
    ) -> list[Annotated[Survey, strawberry.lazy("core.api.surveys")]] | None:
        from core.api.surveys import Survey

        return [Survey.from_model(m) for m in await context_of(info).surveys.load(str(self.id))]

    @strawberry.field(
        description="Hand-set tiers the review keeps, those whose tier field you may read."
    )
    async def tier_overrides(
        self, info: Info
    ) -> list[Annotated[TierOverride, strawberry.lazy("core.api.surveys")]] | None:
        from core.api.surveys import visible_overrides

        ctx = context_of(info)
        return visible_overrides(await ctx.overrides.load(str(self.id)), ctx.permissions)

    @strawberry.field(description="Every owner the customer has had, oldest first.")
    async def ownership_history(self, info: Info) -> list[Ownership] | None:
        rows = await context_of(info).ownership_history.load(str(self.id))
        return [Ownership.from_model(r) for r in rows]

    @strawberry.field(description="The account this one is a unit of; null at the top.")
    async def parent(self, info: Info) -> Customer | None:
        return await visible_customer(info, self.parent_id)

    @strawberry.field(
        description="The top-level account of the group (the account itself at the top)."
    )
    async def root(self, info: Info) -> Customer | None:
        return await visible_customer(info, self.root_id)

    @strawberry.field(
        description="The accounts above this one that you can see, from the top down."
    )
    async def ancestors(self, info: Info) -> list[Customer] | None:
        found = await context_of(info).customers.load_many(hierarchy.ancestor_ids(self.path))
        return [Customer.from_model(m) for m in found if m is not None]

    @strawberry.field(description="The direct units of this account, by name.")
    async def children(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Customer] | None:
        check_page_size(first)
        ctx = context_of(info)
        parent = str(self.id)
        page = await ctx.children.load((parent, first, after))
        return await page_connection(
            info, page, Customer.from_model, lambda: ctx.child_counts.load(parent)
        )

    @strawberry.field(
        description="The group account director (top-level accounts): sees every unit."
    )
    async def group_director(self, info: Info) -> User | None:
        return await user_or_none(info, self.group_director_id)

    @strawberry.field(description="The people around the account and their team roles.")
    async def team(
        self, info: Info
    ) -> list[Annotated[TeamMember, strawberry.lazy("core.api.hierarchy")]] | None:
        from core.api.hierarchy import TeamMember

        found = await context_of(info).teams.load(str(self.id))
        return [TeamMember.from_model(m) for m in found]

    @strawberry.field(
        description="Figures over this account and its units that you can see.",
        metadata={"authz": "container"},
    )
    def rollup(self) -> Annotated[AccountRollup, strawberry.lazy("core.api.hierarchy")] | None:
        from core.api.hierarchy import AccountRollup

        return AccountRollup(node=(str(self.id), self.path))

    @classmethod
    def from_model(cls, m: domain.Customer) -> Customer:
        active = m.active_ownership
        return cls(
            id=strawberry.ID(m.id),
            version=m.version,
            name=m.name,
            kind=m.kind,
            industry=m.industry,
            territory=m.territory,
            product_lines=list(m.product_lines),
            lifecycle_stage=m.lifecycle_stage,
            first_contact_at=m.first_contact_at,
            value_tier=m.value_tier,
            needs_tier=m.needs_tier,
            loyalty_tier=m.loyalty_tier,
            annual_revenue=m.annual_revenue,
            profit_contribution=m.profit_contribution,
            growth_potential=m.growth_potential,
            strategic_fit=m.strategic_fit,
            payment_terms_days=m.payment_terms_days,
            payment_method=m.payment_method,
            invoice_requirements=m.invoice_requirements,
            communication_preference=m.communication_preference,
            contacts=[
                Contact(**{k: c.get(k) for k in ("name", "title", "role", "email", "phone")})
                for c in m.contacts
            ],
            created_at=m.created_at,
            updated_at=m.updated_at,
            ownership=Ownership.from_model(active) if active else None,
            owner_id=active.owner_id if active else None,
            backup_owner_id=m.backup_owner_id,
            first_contact_id=m.first_contact_id,
            parent_id=m.parent_id,
            root_id=m.root_id,
            path=m.path,
            group_director_id=m.group_director_id,
            special_needs_data=m.special_needs,
        )


@strawberry.type
class CustomerPayload:
    authz_exempt: ClassVar[bool] = True

    customer: Customer


@strawberry.type(description="One field's value before and after a change.")
class FieldChange:
    # Authorised by ``AuditEntry.changes``; values by the changed field itself (redaction).
    authz_exempt: ClassVar[bool] = True

    field: str
    before: JSON | None
    after: JSON | None
    redacted: bool = strawberry.field(
        default=False, description="True when you may not read the field: values are withheld."
    )


@strawberry.type(description="One changed entity in one successful mutation.")
class AuditEntry(Node):
    at: datetime | None
    action: str | None
    entity_type: str | None
    entity_id: str | None
    changes: list[FieldChange] | None
    reason: str | None
    request_id: str | None
    actor_id: strawberry.Private[str | None]

    @strawberry.field(description="Who made the change; null for the system.")
    async def actor(self, info: Info) -> User | None:
        return await user_or_none(info, self.actor_id)

    @classmethod
    def from_model(cls, m: domain.AuditEntry, view: PermissionView) -> AuditEntry:
        """The entry as ``view`` may see it: values of unreadable fields are redacted."""
        changes: list[dict[str, Any]] = m.changes
        return cls(
            id=strawberry.ID(f"{PREFIXES['AuditEntry']}_{m.id}"),
            at=m.at,
            action=m.action,
            entity_type=m.entity_type,
            entity_id=m.entity_id,
            reason=m.reason,
            request_id=m.request_id,
            actor_id=m.actor_id,
            changes=[_change(c, m.entity_type, view) for c in changes],
        )


def _change(change: dict[str, Any], entity_type: str, view: PermissionView) -> FieldChange:
    if view.can_read(*policy_object(entity_type, change["field"])):
        return FieldChange(field=change["field"], before=change["before"], after=change["after"])
    return FieldChange(field=change["field"], before=None, after=None, redacted=True)


@strawberry.type(description="An allowed action on an object (`Customer.name`, `Customer.*`).")
class Permission:
    authz_exempt: ClassVar[bool] = True

    object: str
    action: str


@strawberry.type(description="The signed-in user and what they may do.")
class Viewer:
    authz_exempt: ClassVar[bool] = True

    user: User
    roles: list[str] = strawberry.field(description="Roles assigned to the user.")
    permissions: list[Permission] = strawberry.field(
        description="Effective permissions, inherited ones included: decide what to render."
    )
    scope: Scope = strawberry.field(description="Which customers the viewer reaches.")


@strawberry.type(description="A loaded plugin: what it is and which hooks it implements.")
class PluginInfo:
    authz_exempt: ClassVar[bool] = True

    name: str
    version: str
    hooks: list[str]
    special_needs_type: str | None = strawberry.field(
        description="The GraphQL type of its special needs (null if it adds none)."
    )

    @classmethod
    def from_plugin(cls, p: Plugin) -> PluginInfo:
        return cls(
            name=p.name,
            version=p.version,
            hooks=list(p.hooks),
            special_needs_type=p.type_name if p.fields else None,
        )
