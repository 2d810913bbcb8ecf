"""Policy administration over GraphQL: grant/revoke permissions, assign/unassign roles."""

from __future__ import annotations

from typing import ClassVar

import strawberry
from strawberry.types import Info

from core.api.context import context_of
from core.api.types import Permission, User


@strawberry.type(description="A permission held by a role.")
class RolePermission:
    authz_exempt: ClassVar[bool] = True  # only reachable through admin operations

    role: str
    object: str
    action: str


@strawberry.type(description="A role's own policy lines.")
class RolePolicy:
    authz_exempt: ClassVar[bool] = True

    role: str
    inherits: list[str] = strawberry.field(description="Roles whose permissions it includes.")
    permissions: list[Permission] = strawberry.field(
        description="Its own permissions; `scope:OWN|TEAM|ALL` on `Customer` sets its row scope."
    )


@strawberry.input
class PermissionInput:
    role: str
    object: str = strawberry.field(description="`Type.field`, `Type.*`, `Mutation.name` or `*`.")
    action: str = strawberry.field(description="`read`, `write` or `call`.")

    def payload(self) -> PermissionPayload:
        return PermissionPayload(
            permission=RolePermission(role=self.role, object=self.object, action=self.action)
        )


@strawberry.input
class RoleInput:
    user_id: strawberry.ID
    role: str


@strawberry.type
class PermissionPayload:
    authz_exempt: ClassVar[bool] = True

    permission: RolePermission


@strawberry.type
class RolePayload:
    authz_exempt: ClassVar[bool] = True

    user: User


@strawberry.type
class AdminQuery:
    @strawberry.field(description="Each role's own policy lines, or one role's.")
    async def policies(self, info: Info, role: str | None = None) -> list[RolePolicy] | None:
        ctx = context_of(info)
        found = await ctx.read(lambda s: ctx.services.policies.role_policies(s, role))
        return [
            RolePolicy(
                role=p.role,
                inherits=p.inherits,
                permissions=[Permission(object=o, action=a) for o, a in p.permissions],
            )
            for p in found
        ]


@strawberry.type
class AdminMutation:
    @strawberry.mutation(description="Allow a role an action on an object (idempotent).")
    async def grant_permission(
        self, info: Info, input: PermissionInput
    ) -> PermissionPayload | None:
        ctx = context_of(info)
        await ctx.services.policies.grant(ctx.actor, input.role, input.object, input.action)
        return input.payload()

    @strawberry.mutation(description="Withdraw a permission from a role.")
    async def revoke_permission(
        self, info: Info, input: PermissionInput
    ) -> PermissionPayload | None:
        ctx = context_of(info)
        await ctx.services.policies.revoke(ctx.actor, input.role, input.object, input.action)
        return input.payload()

    @strawberry.mutation(description="Give a user a role; effective on the user's next request.")
    async def assign_role(self, info: Info, input: RoleInput) -> RolePayload | None:
        ctx = context_of(info)
        user = await ctx.services.policies.assign_role(
            ctx.actor, input.user_id, input.role, add=True
        )
        return RolePayload(user=User.from_model(user))

    @strawberry.mutation(description="Take a role away from a user.")
    async def unassign_role(self, info: Info, input: RoleInput) -> RolePayload | None:
        ctx = context_of(info)
        user = await ctx.services.policies.assign_role(
            ctx.actor, input.user_id, input.role, add=False
        )
        return RolePayload(user=User.from_model(user))
