"""Root mutation fields: each takes one ``input`` and calls one use case (one transaction)."""

from __future__ import annotations

from typing import ClassVar

import strawberry
from strawberry.types import Info

from core.api.admin import AdminMutation
from core.api.assignment import AssignmentMutation, ReassignmentRequest
from core.api.context import context_of
from core.api.handover import HandoverMutation, HandoverStepMutation
from core.api.inputs import (
    AssignOwnerInput,
    CreateCustomerInput,
    CreateUserInput,
    DeactivateUserInput,
    UpdateCustomerInput,
)
from core.api.types import Customer, User


@strawberry.type
class CustomerPayload:
    authz_exempt: ClassVar[bool] = True

    customer: Customer


@strawberry.type
class UserPayload:
    authz_exempt: ClassVar[bool] = True

    user: User


@strawberry.type
class DeactivateUserPayload:
    authz_exempt: ClassVar[bool] = True

    user: User
    requests: list[ReassignmentRequest] = strawberry.field(
        description="The OWNER_LEFT requests opened for the user's customers."
    )


@strawberry.type
class Mutation(AdminMutation, AssignmentMutation, HandoverMutation, HandoverStepMutation):
    @strawberry.mutation(description="Create a customer; `ownerId` assigns its owner at once.")
    async def create_customer(
        self, info: Info, input: CreateCustomerInput
    ) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.customers.create(
            ctx.actor,
            input.profile(),
            owner_id=input.owner_id,
            reason=input.reason,
            auto_assign=input.auto_assign,
        )
        return CustomerPayload(customer=Customer.from_model(model))

    @strawberry.mutation(description="Change profile fields; needs the current `version`.")
    async def update_customer(
        self, info: Info, input: UpdateCustomerInput
    ) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.customers.update(
            ctx.actor,
            input.id,
            input.expected_version,
            input.profile(),
            reason=input.reason,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))

    @strawberry.mutation(description="Give a customer that has no owner its owner.")
    async def assign_owner(self, info: Info, input: AssignOwnerInput) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.customers.assign_owner(
            ctx.actor,
            input.customer_id,
            input.owner_id,
            backup_owner_id=input.backup_owner_id,
            reason=input.reason,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))

    @strawberry.mutation(description="Create a user with roles.")
    async def create_user(self, info: Info, input: CreateUserInput) -> UserPayload | None:
        ctx = context_of(info)
        model = await ctx.services.users.create(
            ctx.actor,
            input.id,
            input.name,
            email=input.email,
            roles=input.roles,
            manager_id=input.manager_id,
            team=input.team,
            capacity=input.capacity,
        )
        return UserPayload(user=User.from_model(model))

    @strawberry.mutation(
        description="Deactivate a user: no sign-in, never an eligible owner; each of their "
        "customers passes to its backup as INTERIM owner and gets an OWNER_LEFT request."
    )
    async def deactivate_user(
        self, info: Info, input: DeactivateUserInput
    ) -> DeactivateUserPayload | None:
        ctx = context_of(info)
        user, requests = await ctx.services.users.deactivate(ctx.actor, input.user_id, input.reason)
        return DeactivateUserPayload(
            user=User.from_model(user),
            requests=[ReassignmentRequest.from_model(r) for r in requests],
        )
