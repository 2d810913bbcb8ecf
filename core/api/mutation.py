"""Root mutation fields: each takes one ``input`` and calls one use case (one transaction)."""

from __future__ import annotations

from typing import Any, ClassVar

import strawberry
from strawberry.tools import create_type
from strawberry.types import Info

from core import domain
from core.api.admin import AdminMutation
from core.api.assignment import AssignmentMutation, ReassignmentRequest
from core.api.context import context_of
from core.api.handover import HandoverMutation
from core.api.handover_steps import HandoverStepMutation
from core.api.hierarchy import HierarchyMutation
from core.api.indicators import IndicatorMutation
from core.api.inputs import (
    AssignOwnerInput,
    CreateCustomerInput,
    CreateUserInput,
    DeactivateUserInput,
    UpdateCustomerInput,
    UpdateUserInput,
)
from core.api.insight import InsightMutation
from core.api.surveys import SurveyMutation
from core.api.types import Customer, CustomerPayload, User, customer_in_scope, user_or_none
from core.notify.webhooks_api import WebhookMutation
from core.services.users import load_user


@strawberry.type
class UserPayload:
    authz_exempt: ClassVar[bool] = True

    user: User


@strawberry.type
class DeactivateUserPayload:
    authz_exempt: ClassVar[bool] = True

    user: User
    requests: list[ReassignmentRequest] = strawberry.field(
        description="The OWNER_LEFT requests opened for the user's customers (none in a dry run)."
    )
    releases: list[DeactivationRelease] = strawberry.field(
        description="What happens (or, in a dry run, would happen) to each customer they own."
    )
    dry_run: bool


@strawberry.type(description="What a user's deactivation does to one customer they own.")
class DeactivationRelease:
    authz_exempt: ClassVar[bool] = True

    customer_id: strawberry.Private[str]
    interim_owner_id: strawberry.Private[str | None]
    opens_request: bool = strawberry.field(
        description="An OWNER_LEFT request is opened (false: one is already pending)."
    )

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        return await customer_in_scope(info, self.customer_id)

    @strawberry.field(description="Its backup, now INTERIM owner; null: it stays unowned.")
    async def interim_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.interim_owner_id)


def customer_writes(create_input: type, update_input: type) -> type:
    """``createCustomer`` and ``updateCustomer`` taking these inputs: the schema builder passes
    inputs that carry the plugins' typed ``specialNeeds``."""

    async def create_customer(self: Any, info: Info, input: Any) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.customers.create(
            ctx.actor,
            input.profile(),
            needs=input.needs(),
            owner_id=input.owner_id,
            reason=input.reason,
            auto_assign=input.auto_assign,
            parent_id=input.parent_id,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))

    async def update_customer(self: Any, info: Info, input: Any) -> CustomerPayload | None:
        ctx = context_of(info)
        model = await ctx.services.customers.update(
            ctx.actor,
            input.id,
            input.expected_version,
            input.profile(),
            needs=input.needs(),
            reason=input.reason,
            scope=await ctx.scope(),
        )
        return CustomerPayload(customer=Customer.from_model(model))

    for resolver, input_type in ((create_customer, create_input), (update_customer, update_input)):
        resolver.__annotations__ = {
            "info": Info,
            "input": input_type,
            "return": CustomerPayload | None,
        }
    return create_type(
        "CustomerWrites",
        [
            strawberry.mutation(
                create_customer,
                description="Create a customer; `ownerId` assigns its owner at once.",
            ),
            strawberry.mutation(
                update_customer, description="Change profile fields; needs the current `version`."
            ),
        ],
    )


@strawberry.type
class Mutation(
    customer_writes(CreateCustomerInput, UpdateCustomerInput),  # type: ignore[misc]
    AdminMutation,
    AssignmentMutation,
    HandoverMutation,
    HandoverStepMutation,
    HierarchyMutation,
    InsightMutation,
    WebhookMutation,
    IndicatorMutation,
    SurveyMutation,
):
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
            locale=input.locale,
        )
        return UserPayload(user=User.from_model(model))

    @strawberry.mutation(description="Change a user's settings (today: the e-mail locale).")
    async def update_user(self, info: Info, input: UpdateUserInput) -> UserPayload | None:
        ctx = context_of(info)
        if input.locale is strawberry.UNSET:
            model = await ctx.read(lambda s: load_user(s, str(input.user_id)))
        else:
            model = await ctx.services.users.set_locale(ctx.actor, input.user_id, input.locale)
        return UserPayload(user=User.from_model(model))

    @strawberry.mutation(
        description="Deactivate a user: no sign-in, never an eligible owner; each of their "
        "customers passes to its backup as INTERIM owner and gets an OWNER_LEFT request. "
        "With `dryRun`, nothing is written: `releases` shows what it would do."
    )
    async def deactivate_user(
        self, info: Info, input: DeactivateUserInput
    ) -> DeactivateUserPayload | None:
        ctx = context_of(info)
        if input.dry_run:
            user, plan = await ctx.services.users.preview_deactivation(input.user_id)
            requests: list[domain.ReassignmentRequest] = []
        else:
            user, requests, plan = await ctx.services.users.deactivate(
                ctx.actor, input.user_id, input.reason
            )
        return DeactivateUserPayload(
            user=User.from_model(user),
            requests=[ReassignmentRequest.from_model(r) for r in requests],
            releases=[
                DeactivationRelease(
                    customer_id=r.customer_id,
                    interim_owner_id=r.interim_owner_id,
                    opens_request=r.opens_request,
                )
                for r in plan
            ],
            dry_run=input.dry_run,
        )
