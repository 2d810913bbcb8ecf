"""GraphQL for the account hierarchy and account teams: roll-ups, team members, and the
mutations that move units, name group directors and change teams."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from core import domain
from core.api.assignment import ReassignmentRequest
from core.api.context import context_of
from core.api.insight import HealthLevel
from core.api.types import Customer, CustomerPayload, User, user_or_none
from core.domain.enums import ReassignmentTrigger, TeamRole
from core.services.customers import load_customer
from core.services.groups import cascading_units

strawberry.enum(TeamRole, description="The part a person plays in a key account's team.")


@strawberry.type(description="A person on a key account's team.")
class TeamMember:
    # Authorised as a whole by ``Customer.team``.
    authz_exempt: ClassVar[bool] = True

    role: TeamRole
    since: datetime
    user_id: strawberry.Private[str]

    @strawberry.field(description="The member.")
    async def user(self, info: Info) -> User | None:
        return await user_or_none(info, self.user_id)

    @classmethod
    def from_model(cls, m: domain.TeamMember) -> TeamMember:
        return cls(role=m.role, since=m.added_at, user_id=m.user_id)


@strawberry.type(description="An owner of accounts in a subtree and how many of them.")
class RollupOwner:
    # Authorised as a whole by ``AccountRollup.owners`` (that is, ``Customer.owner``).
    authz_exempt: ClassVar[bool] = True

    count: int
    owner_id: strawberry.Private[str]

    @strawberry.field(description="The owner.")
    async def owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.owner_id)


@strawberry.type(
    description="Figures over an account and its units, counting only the accounts you see. "
    "Each field is as readable as the customer field it adds up."
)
class AccountRollup:
    # The account (its id and materialised path): what the roll-up loaders are keyed by.
    node: strawberry.Private[tuple[str, str]]

    @strawberry.field(
        description="How many units are below the account (at any depth).",
        metadata={"authz": "Customer.children"},
    )
    async def unit_count(self, info: Info) -> int | None:
        return (await context_of(info).rollups.load(self.node)).units

    @strawberry.field(
        description="Annual revenue of the account and its units.",
        metadata={"authz": "Customer.annualRevenue"},
    )
    async def annual_revenue(self, info: Info) -> Decimal | None:
        return (await context_of(info).rollups.load(self.node)).annual_revenue

    @strawberry.field(
        description="Orders of the account and its units over the last 365 days (read like "
        "annual revenue).",
        metadata={"authz": "Customer.annualRevenue"},
    )
    async def order_value(self, info: Info) -> Decimal | None:
        return (await context_of(info).rollups.load(self.node)).order_value

    @strawberry.field(
        description="The worst health band of the account and its units, as last stored by "
        "the insight refresh (computed now for units with none stored yet).",
        metadata={"authz": "CustomerHealth.level"},
    )
    async def worst_health_level(self, info: Info) -> HealthLevel | None:
        found = await context_of(info).rollup_health.load(self.node)
        return HealthLevel(found.level) if found.level is not None else None

    @strawberry.field(
        description="How many risk warnings are open on the account and its units.",
        metadata={"authz": "CustomerHealth.warnings"},
    )
    async def open_warning_count(self, info: Info) -> int | None:
        return (await context_of(info).rollup_health.load(self.node)).warnings

    @strawberry.field(
        description="The owners of the account and its units, most accounts first.",
        metadata={"authz": "Customer.owner"},
    )
    async def owners(self, info: Info) -> list[RollupOwner] | None:
        counts = (await context_of(info).rollups.load(self.node)).owners
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [RollupOwner(owner_id=owner, count=n) for owner, n in ranked]


@strawberry.input
class MoveCustomerInput:
    customer_id: strawberry.ID
    expected_version: int
    parent_id: strawberry.ID | None = strawberry.field(
        description="The new parent account; null makes the customer a top-level account."
    )
    reason: str | None = None

    authz_entity: ClassVar[str] = "Customer"

    def authz_write_fields(self) -> list[str]:
        return ["parent"]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input
class SetGroupDirectorInput:
    customer_id: strawberry.ID = strawberry.field(description="A top-level account.")
    director_id: strawberry.ID | None = strawberry.field(description="Null clears it.")
    reason: str | None = None

    authz_entity: ClassVar[str] = "Customer"

    def authz_write_fields(self) -> list[str]:
        return ["groupDirector"]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input
class AddTeamMemberInput:
    customer_id: strawberry.ID
    user_id: strawberry.ID
    role: TeamRole
    reason: str | None = None


@strawberry.input
class RemoveTeamMemberInput:
    customer_id: strawberry.ID
    user_id: strawberry.ID
    reason: str | None = None


@strawberry.type(description="What reassigning a group would move: the account and its units.")
class GroupReassignmentPreview:
    authz_exempt: ClassVar[bool] = True

    customer: Customer
    units: list[Customer] = strawberry.field(
        description="The units that share the account's owner and move with it; pass their "
        "ids as `unitIds` to `requestGroupReassignment`."
    )


@strawberry.input
class RequestGroupReassignmentInput:
    customer_id: strawberry.ID
    to_owner_id: strawberry.ID
    trigger: ReassignmentTrigger
    unit_ids: list[strawberry.ID] = strawberry.field(
        description="Exactly the units `groupReassignmentPreview` showed (else CONFLICT)."
    )
    reason: str | None = None


@strawberry.type
class GroupRequestsPayload:
    authz_exempt: ClassVar[bool] = True

    requests: list[ReassignmentRequest] = strawberry.field(
        description="The account's request first, then one per unit, by position in the tree."
    )


@strawberry.type
class HierarchyQuery:
    @strawberry.field(
        description="Which units would move with the account if its owner were reassigned: "
        "those below it that share its owner, that you can change and that have no open "
        "request."
    )
    async def group_reassignment_preview(
        self, info: Info, customer_id: strawberry.ID
    ) -> GroupReassignmentPreview | None:
        ctx = context_of(info)
        scope = await ctx.scope()

        async def query(session: AsyncSession) -> GroupReassignmentPreview:
            customer = await load_customer(session, customer_id, scope)
            units = await cascading_units(session, customer, scope)
            return GroupReassignmentPreview(
                customer=Customer.from_model(customer),
                units=[Customer.from_model(u) for u in units],
            )

        return await ctx.read(query)


@strawberry.type
class HierarchyMutation:
    @strawberry.mutation(
        description="Put a customer and its units under another account (or make it "
        "top-level): audited, and a reorganisation: the rules re-apply to the moved accounts."
    )
    async def move_customer(self, info: Info, input: MoveCustomerInput) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.groups.move(
            ctx.actor,
            input.customer_id,
            input.expected_version,
            input.parent_id,
            reason=input.reason,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))

    @strawberry.mutation(
        description="Name the group account director of a top-level account: they see every "
        "unit of the group, within their own field rules."
    )
    async def set_group_director(
        self, info: Info, input: SetGroupDirectorInput
    ) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.groups.set_group_director(
            ctx.actor,
            input.customer_id,
            input.director_id,
            reason=input.reason,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))

    @strawberry.mutation(
        description="Ask for an account and the units that share its owner to move to another "
        "owner: one request each, reviewed and handed over under the rules of its own tier."
    )
    async def request_group_reassignment(
        self, info: Info, input: RequestGroupReassignmentInput
    ) -> GroupRequestsPayload | None:
        ctx = context_of(info)
        requests = await ctx.services.groups.reassign_group(
            ctx.actor,
            input.customer_id,
            input.to_owner_id,
            input.trigger,
            input.reason,
            [str(i) for i in input.unit_ids],
            scope=await ctx.scope(),
        )
        return GroupRequestsPayload(requests=[ReassignmentRequest.from_model(r) for r in requests])

    @strawberry.mutation(
        description="Put a person on a customer's team (the owner or the owner's manager)."
    )
    async def add_team_member(
        self, info: Info, input: AddTeamMemberInput
    ) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.teams.add(
            ctx.actor,
            input.customer_id,
            input.user_id,
            input.role,
            reason=input.reason,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))

    @strawberry.mutation(
        description="Take a person off a customer's team (the owner or the owner's manager)."
    )
    async def remove_team_member(
        self, info: Info, input: RemoveTeamMemberInput
    ) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.teams.remove(
            ctx.actor,
            input.customer_id,
            input.user_id,
            reason=input.reason,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))
