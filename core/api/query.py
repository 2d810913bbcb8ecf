"""Root query fields: thin resolvers over the read services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import cache
from typing import Annotated, Any

import strawberry
from sqlalchemy import Select, select
from strawberry.types import Info

from core import domain
from core.api.admin import AdminQuery
from core.api.assignment import AssignmentQuery, AssignmentRule, ReassignmentRequest
from core.api.connection import Connection, connection
from core.api.context import context_of
from core.api.handover import Handover, HandoverQuery
from core.api.hierarchy import HierarchyQuery
from core.api.indicators import IndicatorQuery
from core.api.inputs import AuditFilter, CustomerFilter, CustomerOrder, OrderDirection, UserFilter
from core.api.insight import InsightQuery
from core.api.portfolio import PortfolioQuery
from core.api.segments import SegmentQuery, narrowed
from core.api.surveys import SurveyQuery
from core.api.types import (
    AuditEntry,
    Customer,
    Node,
    Permission,
    PluginInfo,
    User,
    Viewer,
    customer_in_scope,
    user_or_none,
)
from core.authz.defaults import Scope
from core.errors import NotFound
from core.ids import PREFIXES, type_of_id
from core.notify.webhooks_api import WebhookQuery
from core.services import audit as audit_service
from core.services import customers as customer_service
from core.services import ownership as ownership_service
from core.services import reassignment as reassignment_service
from core.services.pagination import (
    DEFAULT_PAGE_SIZE,
    SortKey,
)

First = Annotated[int, strawberry.argument(description="Page size, at most 100.")]


async def _audit_entries(info: Info, f: audit_service.AuditFilter) -> Select[Any]:
    """Audit entries matching ``f`` that the viewer's customer scope reaches."""
    ctx = context_of(info)
    scope = await ctx.read_scope()
    visible = None
    if scope.level != Scope.ALL:
        visible = customer_service.customers_query(customer_service.CustomerFilter(), scope)
        visible = visible.with_only_columns(domain.Customer.id)
    return audit_service.audit_query(f, visible)


# ``node`` reaches each type only as far as the type's own root field does.
async def _audit_node(info: Info, node_id: str) -> Node | None:
    stmt = await _audit_entries(info, audit_service.AuditFilter())
    stmt = stmt.where(domain.AuditEntry.id == _audit_seq(node_id))
    entry = await context_of(info).read(lambda s: s.scalar(stmt))
    return AuditEntry.from_model(entry, context_of(info).permissions) if entry else None


async def _rule_node(info: Info, node_id: str) -> Node | None:
    rule = await context_of(info).rules.load(node_id)
    return AssignmentRule.from_model(rule) if rule else None


async def _request_node(info: Info, node_id: str) -> Node | None:
    ctx = context_of(info)
    scope = await ctx.read_scope()
    request = await ctx.read(lambda s: reassignment_service.load_request(s, node_id, scope))
    return ReassignmentRequest.from_model(request)


async def _handover_node(info: Info, node_id: str) -> Node | None:
    ctx = context_of(info)
    scope = await ctx.scope()
    handover = await ctx.read(lambda s: reassignment_service.load_handover(s, node_id, scope))
    return Handover.from_model(handover, ctx.services.clock.now(), ctx.services.handover.calendar)


# ``node`` reaches each type only as far as the type's own root field does.
NODES: dict[str, tuple[str, Callable[[Info, str], Awaitable[Node | None]]]] = {
    "Customer": ("Query.customer", customer_in_scope),
    "User": ("Query.user", user_or_none),
    "AuditEntry": ("Query.auditLog", _audit_node),
    "AssignmentRule": ("Query.assignmentRules", _rule_node),
    "ReassignmentRequest": ("Query.reassignmentRequests", _request_node),
    "Handover": ("Query.handovers", _handover_node),
}


@strawberry.type
class Query(
    AdminQuery,
    AssignmentQuery,
    HandoverQuery,
    HierarchyQuery,
    InsightQuery,
    IndicatorQuery,
    SurveyQuery,
    SegmentQuery,
    PortfolioQuery,
    WebhookQuery,
):
    @strawberry.field(description="The signed-in user, their roles and effective permissions.")
    async def viewer(self, info: Info) -> Viewer:
        ctx = context_of(info)
        view = ctx.permissions
        return Viewer(
            user=User.from_model(ctx.viewer),
            # Seeing as a role (a read-only view), the viewer is that role, not a stored user.
            roles=list(view.roles)
            if view.read_only
            else await ctx.services.authz.roles_of(ctx.viewer.id),
            permissions=[
                Permission(object=p.object, action=p.action)
                for p in sorted(view.permissions, key=lambda p: (p.object, p.action))
            ],
            scope=view.scope,
        )

    @strawberry.field(description="Any object by its id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        kind = type_of_id(id)
        operation, load = NODES.get(kind, ("", None))
        if load is None or not context_of(info).permissions.allows(operation, "call"):
            raise NotFound("Node", id)
        found = await load(info, id)
        if found is None:
            raise NotFound("Node", id)
        return found

    @strawberry.field(description="Who owned the customer at a moment (null: nobody).")
    async def owner_at(self, info: Info, customer_id: strawberry.ID, at: datetime) -> User | None:
        ctx = context_of(info)
        ctx.permissions.require_read("Customer", ["owner"], "look up")
        await customer_in_scope(info, customer_id)  # NOT_FOUND outside the viewer's scope
        owner_id = await ctx.read(lambda s: ownership_service.owner_at(s, customer_id, at))
        return await user_or_none(info, owner_id)

    @strawberry.field(description="The loaded plugins, in load order.")
    async def plugins(self, info: Info) -> list[PluginInfo] | None:
        return [PluginInfo.from_plugin(p) for p in context_of(info).services.plugins.plugins]

    @strawberry.field(description="One customer by id.")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        return await customer_in_scope(info, id)

    @strawberry.field(description="Customers, filtered and ordered; a Relay connection.")
    async def customers(
        self,
        info: Info,
        first: First = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: CustomerFilter | None = None,
        order_by: CustomerOrder | None = None,
    ) -> Connection[Customer] | None:
        f = filter or CustomerFilter()
        order = order_by or CustomerOrder()
        ctx = context_of(info)
        scope = await ctx.services.scope_sizes.for_page(ctx.read, await ctx.read_scope(), first + 1)
        stmt = customer_service.customers_query(
            customer_service.CustomerFilter(
                owner_id=f.owner_id,
                territory=f.territory,
                industry=f.industry,
                value_tiers=tuple(f.value_tiers or ()),
                lifecycle_stages=tuple(f.lifecycle_stages or ()),
                unassigned=f.unassigned,
                search=f.search,
                parent_id=f.parent_id,
                root_id=f.root_id,
                has_children=f.has_children,
            ),
            scope,
        )
        descending = order.direction == OrderDirection.DESC
        stmt, computed = narrowed(
            stmt, f.engagement_stages, f.rfm_segments, order.field.value, descending
        )
        value_type: type = int
        if computed is not None:
            key = computed
        else:
            key = _column_order(order.field.value, descending)
            value_type = str if order.field.value == "name" else datetime
        return await connection(
            info, stmt, key, first, after, Customer.from_model, value_type, Customer.sql_columns
        )

    @strawberry.field(description="One user by id.")
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        user = await user_or_none(info, id)
        if user is None:
            raise NotFound("User", id)
        return user

    @strawberry.field(description="Users ordered by id; a Relay connection.")
    async def users(
        self,
        info: Info,
        first: First = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: UserFilter | None = None,
    ) -> Connection[User] | None:
        f = filter or UserFilter()
        stmt = select(domain.User)
        if f.team is not None:
            stmt = stmt.where(domain.User.team == f.team)
        if f.active is not None:
            stmt = stmt.where(domain.User.active == f.active)
        if f.manager_id is not None:
            stmt = stmt.where(domain.User.manager_id == f.manager_id)
        key = SortKey(domain.User.id, domain.User.id)
        return await connection(info, stmt, key, first, after, User.from_model)

    @strawberry.field(description="Audit entries, newest first.")
    async def audit_log(
        self,
        info: Info,
        first: First = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: AuditFilter | None = None,
    ) -> Connection[AuditEntry] | None:
        f = filter or AuditFilter()
        stmt = await _audit_entries(
            info,
            audit_service.AuditFilter(
                entity_type=f.entity_type,
                entity_id=f.entity_id,
                actor_id=f.actor_id,
                action=f.action,
                since=f.since,
                until=f.until,
            ),
        )
        key = SortKey(domain.AuditEntry.id, domain.AuditEntry.id, descending=True)
        view = context_of(info).permissions
        return await connection(
            info, stmt, key, first, after, lambda m: AuditEntry.from_model(m, view), int
        )


def _audit_seq(node_id: str) -> int:
    try:
        return int(node_id.removeprefix(PREFIXES["AuditEntry"] + "_"))
    except ValueError as exc:
        raise NotFound("Node", node_id) from exc


@cache
def _column_order(column: str, descending: bool) -> SortKey:
    """The sort key of a ``customers`` order by a column, shared by every request (the page
    statements built from it are remembered by its identity)."""
    return SortKey(getattr(domain.Customer, column), domain.Customer.id, descending)
