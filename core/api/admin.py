"""Policy administration over GraphQL: roles with their effective permissions and row scope,
the guarded objects a policy can name, grant/revoke permissions, assign/unassign roles, and the
audit chain's verification."""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

import strawberry
from graphql import GraphQLField, GraphQLObjectType, get_named_type, is_leaf_type
from strawberry.types import Info

from core.api.context import context_of
from core.api.enums import Scope
from core.api.guard import guarded_fields, operations
from core.api.types import Permission, User
from core.services import audit_chain
from core.services.see_as import SEE_AS_OBJECT


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

    @strawberry.field(description="Its permissions with the inherited ones (what its users get).")
    async def effective_permissions(self, info: Info) -> list[Permission]:
        view = await context_of(info).services.authz.view_for_roles([self.role])
        return [
            Permission(object=p.object, action=p.action)
            for p in sorted(view.permissions, key=lambda p: (p.object, p.action))
        ]

    @strawberry.field(description="Which customers its users reach (inherited when not its own).")
    async def scope(self, info: Info) -> Scope:
        view = await context_of(info).services.authz.view_for_roles([self.role])
        return view.scope


@strawberry.enum(description="What a policy object is.")
class PolicyObjectKind(Enum):
    FIELD = "FIELD"
    OPERATION = "OPERATION"


@strawberry.type(
    description="Something a permission can name: a field (read/write) or an operation (call)."
)
class PolicyObject:
    authz_exempt: ClassVar[bool] = True

    object: str = strawberry.field(description="`Type.field` or `Query.name`/`Mutation.name`.")
    kind: PolicyObjectKind
    type_name: str
    field_name: str
    description: str | None
    return_type: str = strawberry.field(
        description="Its GraphQL type as printed, e.g. `[Contact!]`."
    )
    leaf: bool = strawberry.field(description="A scalar or enum: selected without subfields.")


@strawberry.type(
    description="The result of verifying the audit log's hash chain (`baton audit verify`)."
)
class AuditChainStatus:
    authz_exempt: ClassVar[bool] = True

    ok: bool
    entries: int = strawberry.field(description="Entries verified good, from the first on.")
    head_seq: int = strawberry.field(description="`seq` of the last good entry.")
    head_hash: str = strawberry.field(description="Its hash: an anchor to keep off the server.")
    bad_seq: int | None = strawberry.field(description="The first bad entry's `seq`, if any.")
    reason: str | None = strawberry.field(description="Why that entry is bad.")


@strawberry.input
class PermissionInput:
    role: str
    object: str = strawberry.field(description="`Type.field`, `Type.*`, `Mutation.name` or `*`.")
    action: str = strawberry.field(description="`read`, `write` or `call`.")
    reason: str | None = strawberry.field(default=None, description="Recorded in the audit log.")

    def payload(self) -> PermissionPayload:
        return PermissionPayload(
            permission=RolePermission(role=self.role, object=self.object, action=self.action)
        )


@strawberry.input
class RoleInput:
    user_id: strawberry.ID
    role: str
    reason: str | None = strawberry.field(default=None, description="Recorded in the audit log.")


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

    @strawberry.field(
        description="Every object a permission can name: each guarded field of each type "
        "(plugin fields included) and each operation, `Query.seeAs` among them."
    )
    def policy_objects(self, info: Info) -> list[PolicyObject] | None:
        schema = info.schema._schema
        found = [
            _policy_object(PolicyObjectKind.FIELD, t, f, field)
            for t, f, field in guarded_fields(schema)
        ]
        for op in operations(schema):
            root, name = op.split(".")
            root_type = schema.get_type(root)
            assert isinstance(root_type, GraphQLObjectType)
            found.append(
                _policy_object(PolicyObjectKind.OPERATION, root, name, root_type.fields[name])
            )
        root, name = SEE_AS_OBJECT.split(".")
        found.append(
            PolicyObject(
                object=SEE_AS_OBJECT,
                kind=PolicyObjectKind.OPERATION,
                type_name=root,
                field_name=name,
                description="Run read-only requests as another role or user "
                "(header X-Baton-See-As).",
                return_type="",
                leaf=False,
            )
        )
        return sorted(found, key=lambda o: (o.kind.value, o.object))

    @strawberry.field(
        description="Verify the audit log's hash chain now (as `baton audit verify`, without an "
        "anchor): the first altered, removed or reordered entry, if any."
    )
    async def audit_chain(self, info: Info) -> AuditChainStatus | None:
        result = await context_of(info).read(audit_chain.verify)
        return AuditChainStatus(
            ok=result.ok,
            entries=result.entries,
            head_seq=result.head.seq,
            head_hash=result.head.hash,
            bad_seq=result.bad_seq,
            reason=result.reason,
        )


def _policy_object(
    kind: PolicyObjectKind, type_name: str, field_name: str, field: GraphQLField
) -> PolicyObject:
    return PolicyObject(
        object=f"{type_name}.{field_name}",
        kind=kind,
        type_name=type_name,
        field_name=field_name,
        description=field.description,
        return_type=str(field.type),
        leaf=is_leaf_type(get_named_type(field.type)),
    )


@strawberry.type
class AdminMutation:
    @strawberry.mutation(description="Allow a role an action on an object (idempotent).")
    async def grant_permission(
        self, info: Info, input: PermissionInput
    ) -> PermissionPayload | None:
        ctx = context_of(info)
        await ctx.services.policies.grant(
            ctx.actor, input.role, input.object, input.action, input.reason
        )
        return input.payload()

    @strawberry.mutation(description="Withdraw a permission from a role.")
    async def revoke_permission(
        self, info: Info, input: PermissionInput
    ) -> PermissionPayload | None:
        ctx = context_of(info)
        await ctx.services.policies.revoke(
            ctx.actor, input.role, input.object, input.action, input.reason
        )
        return input.payload()

    @strawberry.mutation(description="Give a user a role; effective on the user's next request.")
    async def assign_role(self, info: Info, input: RoleInput) -> RolePayload | None:
        ctx = context_of(info)
        user = await ctx.services.policies.assign_role(
            ctx.actor, input.user_id, input.role, add=True, reason=input.reason
        )
        return RolePayload(user=User.from_model(user))

    @strawberry.mutation(description="Take a role away from a user.")
    async def unassign_role(self, info: Info, input: RoleInput) -> RolePayload | None:
        ctx = context_of(info)
        user = await ctx.services.policies.assign_role(
            ctx.actor, input.user_id, input.role, add=False, reason=input.reason
        )
        return RolePayload(user=User.from_model(user))
