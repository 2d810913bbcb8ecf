"""Assignment rules over GraphQL: rules, explain, preview, run."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry
from sqlalchemy import select
from strawberry import UNSET
from strawberry.scalars import JSON
from strawberry.types import Info

from core import domain
from core.api.connection import Connection, connection
from core.api.context import context_of
from core.api.enums import LifecycleStage, ValueTier
from core.api.types import Customer, Node, User, customer_in_scope, user_or_none
from core.authz.view import PermissionView
from core.domain.enums import ReassignmentTrigger, RequestStatus, Strategy
from core.services import customers as customer_service
from core.services.assignment import Move, conditions_of
from core.services.pagination import DEFAULT_PAGE_SIZE, SortKey
from core.services.rules import Decision, Reason, Rule

if TYPE_CHECKING:
    from core.api.handover import Handover

strawberry.enum(Strategy, description="How a rule picks the owner once its conditions match.")
strawberry.enum(ReassignmentTrigger, description="Why ownership should move.")
strawberry.enum(RequestStatus, description="Where a reassignment request stands.")


@strawberry.type(description="Every non-empty list must match; within a list, any value matches.")
class AssignmentConditions:
    authz_exempt: ClassVar[bool] = True  # authorised by ``AssignmentRule.conditions``

    territories: list[str]
    industries: list[str]
    value_tiers: list[ValueTier]
    product_lines: list[str]
    lifecycle_stages: list[LifecycleStage]
    extra: JSON = strawberry.field(description="Plugin dimensions: name → accepted values.")
    root_territories: list[str] = strawberry.field(
        description="The group's top-level account is in one of these territories."
    )
    root_industries: list[str] = strawberry.field(
        description="The group's top-level account is in one of these industries."
    )
    root_value_tiers: list[ValueTier] = strawberry.field(
        description="The group's top-level account has one of these value tiers."
    )


@strawberry.type(description="A prioritised rule that decides customers' owners.")
class AssignmentRule(Node):
    version: int
    name: str | None
    priority: int | None
    enabled: bool | None
    conditions: AssignmentConditions | None
    strategy: Strategy | None
    owner_id: strawberry.Private[str | None]
    pool_ids: strawberry.Private[list[str]]

    @strawberry.field(description="The owner of a FIXED_OWNER rule.")
    async def owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.owner_id)

    @strawberry.field(description="The users a ROUND_ROBIN or LEAST_LOADED rule picks from.")
    async def pool(self, info: Info) -> list[User] | None:
        users = [await user_or_none(info, uid) for uid in self.pool_ids]
        return [u for u in users if u is not None]

    @classmethod
    def from_model(cls, m: domain.AssignmentRule) -> AssignmentRule:
        c = m.conditions
        return cls(
            id=strawberry.ID(m.id),
            version=m.version,
            name=m.name,
            priority=m.priority,
            enabled=m.enabled,
            strategy=m.strategy,
            owner_id=m.owner_id,
            pool_ids=list(m.pool),
            conditions=AssignmentConditions(
                territories=c.get("territories", []),
                industries=c.get("industries", []),
                value_tiers=[domain.ValueTier(t) for t in c.get("valueTiers", [])],
                product_lines=c.get("productLines", []),
                lifecycle_stages=[domain.LifecycleStage(s) for s in c.get("lifecycleStages", [])],
                extra=c.get("extra", {}),
                root_territories=c.get("rootTerritories", []),
                root_industries=c.get("rootIndustries", []),
                root_value_tiers=[domain.ValueTier(t) for t in c.get("rootValueTiers", [])],
            ),
        )


@strawberry.input
class AssignmentConditionsInput:
    territories: list[str] = strawberry.field(default_factory=list)
    industries: list[str] = strawberry.field(default_factory=list)
    value_tiers: list[ValueTier] = strawberry.field(default_factory=list)
    product_lines: list[str] = strawberry.field(default_factory=list)
    lifecycle_stages: list[LifecycleStage] = strawberry.field(default_factory=list)
    # Nullable with a null default: a JSON object default cannot be shown by introspection.
    extra: JSON | None = strawberry.field(
        default=None, description="Plugin dimensions: name → accepted values; null: none."
    )
    root_territories: list[str] = strawberry.field(default_factory=list)
    root_industries: list[str] = strawberry.field(default_factory=list)
    root_value_tiers: list[ValueTier] = strawberry.field(default_factory=list)

    def stored(self) -> dict[str, Any]:
        """The JSON kept on the rule (GraphQL names, enum names)."""
        return {
            "territories": self.territories,
            "industries": self.industries,
            "valueTiers": [t.value for t in self.value_tiers],
            "productLines": self.product_lines,
            "lifecycleStages": [s.value for s in self.lifecycle_stages],
            "extra": self.extra or {},
            "rootTerritories": self.root_territories,
            "rootIndustries": self.root_industries,
            "rootValueTiers": [t.value for t in self.root_value_tiers],
        }


@strawberry.input
class CreateAssignmentRuleInput:
    name: str
    priority: int
    strategy: Strategy
    conditions: AssignmentConditionsInput = strawberry.field(
        default_factory=AssignmentConditionsInput
    )
    enabled: bool = True
    owner_id: strawberry.ID | None = None
    pool_ids: list[strawberry.ID] = strawberry.field(default_factory=list)

    authz_entity: ClassVar[str] = "AssignmentRule"

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "priority": self.priority,
            "strategy": self.strategy,
            "conditions": self.conditions.stored(),
            "enabled": self.enabled,
            "owner_id": self.owner_id,
            "pool": list(self.pool_ids),
        }

    def authz_write_fields(self) -> list[str]:
        return ["name", "priority", "strategy", "conditions", "enabled", "owner", "pool"]

    def authz_operations(self) -> list[str]:
        return []

    def to_rule(self, index: int) -> Rule:
        """This input as a proposed rule that is never stored (``previewAssignment``)."""
        return Rule(
            id=f"proposed-{index}",
            version=0,
            name=self.name,
            priority=self.priority,
            conditions=conditions_of(self.conditions.stored()),
            strategy=self.strategy,
            owner_id=self.owner_id,
            pool=tuple(self.pool_ids),
        )


@strawberry.input
class UpdateAssignmentRuleInput:
    id: strawberry.ID
    expected_version: int
    name: str | None = UNSET
    priority: int | None = UNSET
    strategy: Strategy | None = UNSET
    conditions: AssignmentConditionsInput | None = UNSET
    enabled: bool | None = UNSET
    owner_id: strawberry.ID | None = UNSET
    pool_ids: list[strawberry.ID] | None = UNSET

    authz_entity: ClassVar[str] = "AssignmentRule"

    def fields(self) -> dict[str, Any]:
        given = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("id", "expected_version") and getattr(self, f.name) is not UNSET
        }
        if isinstance(given.get("conditions"), AssignmentConditionsInput):
            given["conditions"] = given["conditions"].stored()
        if "pool_ids" in given:
            given["pool"] = list(given.pop("pool_ids") or [])
        return given

    def authz_write_fields(self) -> list[str]:
        return ["owner" if name == "owner_id" else name for name in self.fields()]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input
class DeleteAssignmentRuleInput:
    id: strawberry.ID
    expected_version: int


@strawberry.type(description="One rule's verdict in an explanation.")
class AssignmentStep:
    authz_exempt: ClassVar[bool] = True  # reasons are redacted field by field

    rule: AssignmentRule
    matched: bool
    reasons: list[str]


@strawberry.type(description="Why the rules give a customer the owner they give.")
class AssignmentExplanation:
    authz_exempt: ClassVar[bool] = True

    decided_owner: User | None
    rule: AssignmentRule | None
    steps: list[AssignmentStep]


def _reason_text(reason: Reason, view: PermissionView) -> str:
    if view.can_read("Customer", reason.field):
        return reason.text
    return f"{reason.field} does not match (you may not read {reason.field})"


async def explanation(
    info: Info, decision: Decision, stored: dict[str, domain.AssignmentRule]
) -> AssignmentExplanation:
    """The decision as the viewer may see it: reasons about unreadable fields are redacted."""
    view = context_of(info).permissions
    owner = (
        await user_or_none(info, decision.owner_id) if view.can_read("Customer", "owner") else None
    )
    return AssignmentExplanation(
        decided_owner=owner,
        rule=AssignmentRule.from_model(stored[decision.rule.id]) if decision.rule else None,
        steps=[
            AssignmentStep(
                rule=AssignmentRule.from_model(stored[s.rule.id]),
                matched=s.matched,
                reasons=[_reason_text(r, view) for r in s.reasons],
            )
            for s in decision.steps
        ],
    )


@strawberry.type(description="A proposed change of a customer's owner, approved before it happens.")
class ReassignmentRequest(Node):
    trigger: ReassignmentTrigger | None
    reason: str | None
    status: RequestStatus | None
    created_at: datetime | None
    review_comment: str | None = None
    customer_id: strawberry.Private[str]
    from_owner_id: strawberry.Private[str | None]
    to_owner_id: strawberry.Private[str | None]
    requested_by_id: strawberry.Private[str | None] = None
    reviewed_by_id: strawberry.Private[str | None] = None

    @strawberry.field
    async def requested_by(self, info: Info) -> User | None:
        return await user_or_none(info, self.requested_by_id)

    @strawberry.field
    async def reviewed_by(self, info: Info) -> User | None:
        return await user_or_none(info, self.reviewed_by_id)

    @classmethod
    def from_model(cls, m: domain.ReassignmentRequest) -> ReassignmentRequest:
        return cls(
            id=strawberry.ID(m.id),
            trigger=m.trigger,
            reason=m.reason,
            status=m.status,
            created_at=m.created_at,
            review_comment=m.review_comment,
            customer_id=m.customer_id,
            from_owner_id=m.from_owner_id,
            to_owner_id=m.to_owner_id,
            requested_by_id=m.requested_by_id,
            reviewed_by_id=m.reviewed_by_id,
        )

    @strawberry.field
    async def from_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.from_owner_id)

    @strawberry.field
    async def to_owner(self, info: Info) -> User | None:
        return await user_or_none(info, self.to_owner_id)

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        return await customer_in_scope(info, self.customer_id)

    @strawberry.field(description="The handover the approval opened; null until approved.")
    async def handover(
        self, info: Info
    ) -> Annotated[Handover, strawberry.lazy("core.api.handover")] | None:
        from core.api.handover import opened_by

        if self.status is not RequestStatus.APPROVED:
            return None  # pending, rejected or cancelled: no handover
        return await opened_by(info, str(self.id))

    @classmethod
    def planned(cls, request_id: str, move: Move, at: datetime) -> ReassignmentRequest:
        """A RULE_REALIGNMENT request as a run opens it."""
        return cls(
            id=strawberry.ID(request_id),
            trigger=ReassignmentTrigger.RULE_REALIGNMENT,
            reason=f"rule {move.rule.name!r}",
            status=RequestStatus.PENDING,
            created_at=at,
            customer_id=move.customer_id,
            from_owner_id=move.from_owner_id,
            to_owner_id=move.to_owner_id,
        )


@strawberry.type(description="A customer the rules would give another owner.")
class AssignmentMove:
    authz_exempt: ClassVar[bool] = True  # owners shown only to viewers who may read owners

    customer: Customer
    from_owner: User | None
    to_owner: User | None
    rule: AssignmentRule | None


@strawberry.type(description="How an owner's number of customers would change.")
class LoadChange:
    authz_exempt: ClassVar[bool] = True

    owner: User
    before: int
    after: int


@strawberry.type(description="The exact effect of the rules; computing it writes nothing.")
class AssignmentPreview:
    authz_exempt: ClassVar[bool] = True

    moves: list[AssignmentMove]
    unchanged_count: int
    unassigned_count: int
    load_changes: list[LoadChange]


@strawberry.input
class PreviewAssignmentInput:
    customer_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Default: every customer in your scope."
    )
    rules: list[CreateAssignmentRuleInput] | None = strawberry.field(
        default=None, description="A proposed rule set replacing the live one, for the preview."
    )


@strawberry.input
class RunAssignmentInput:
    customer_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Default: every customer in your scope."
    )
    dry_run: bool = False


@strawberry.type
class AssignmentRulePayload:
    authz_exempt: ClassVar[bool] = True

    rule: AssignmentRule


@strawberry.type
class RunAssignmentPayload:
    authz_exempt: ClassVar[bool] = True

    assigned: list[Customer]
    requests: list[ReassignmentRequest]
    dry_run: bool


async def _stored_rules(info: Info) -> dict[str, domain.AssignmentRule]:
    rows = await context_of(info).read(lambda s: s.scalars(select(domain.AssignmentRule)))
    return {r.id: r for r in rows}


@strawberry.enum(description="What a rule warning is about.")
class RuleWarningCode(Enum):
    SHADOWED = "SHADOWED"
    EMPTY_POOL = "EMPTY_POOL"
    INACTIVE_OWNER = "INACTIVE_OWNER"
    OVERLAP = "OVERLAP"


@strawberry.type(description="Something about the live rules an admin should look at.")
class RuleWarning:
    authz_exempt: ClassVar[bool] = True

    code: RuleWarningCode
    rule: AssignmentRule
    message: str
    other_rule: AssignmentRule | None


@strawberry.type
class AssignmentQuery:
    @strawberry.field(
        description="Warnings for the enabled rules: shadowed rules, empty pools, "
        "inactive owners, overlapping rules that pick owners differently."
    )
    async def lint_assignment_rules(self, info: Info) -> list[RuleWarning] | None:
        ctx = context_of(info)
        stored = await _stored_rules(info)
        warnings = await ctx.read(ctx.services.assignment.lint)
        return [
            RuleWarning(
                code=RuleWarningCode(w.code),
                rule=AssignmentRule.from_model(stored[w.rule.id]),
                message=w.message,
                other_rule=AssignmentRule.from_model(stored[w.other.id]) if w.other else None,
            )
            for w in warnings
        ]

    @strawberry.field(description="Every rule, by ascending priority then id; a Relay connection.")
    async def assignment_rules(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[AssignmentRule] | None:
        key = SortKey(domain.AssignmentRule.priority, domain.AssignmentRule.id)
        stmt = select(domain.AssignmentRule)
        return await connection(info, stmt, key, first, after, AssignmentRule.from_model, int)

    @strawberry.field(description="Why the live rules give this customer the owner they give.")
    async def explain_assignment(
        self, info: Info, customer_id: strawberry.ID
    ) -> AssignmentExplanation | None:
        ctx = context_of(info)
        scope = await ctx.read_scope()
        decision = await ctx.read(lambda s: ctx.services.assignment.explain(s, customer_id, scope))
        return await explanation(info, decision, await _stored_rules(info))

    @strawberry.field(description="What the live rules, or a proposed set, would change.")
    async def preview_assignment(
        self, info: Info, input: PreviewAssignmentInput
    ) -> AssignmentPreview | None:
        ctx = context_of(info)
        ctx.permissions.require_read("Customer", ["owner"], "preview owners")
        scope = await ctx.scope()
        for i, rule in enumerate(input.rules or []):
            ctx.services.assignment.check_conditions(rule.conditions.stored(), f"input.rules.{i}")
        proposed = (
            [r.to_rule(i) for i, r in enumerate(sorted(input.rules, key=lambda r: r.priority))]
            if input.rules is not None
            else None
        )
        result = await ctx.read(
            lambda s: ctx.services.assignment.preview(s, input.customer_ids, proposed, scope)
        )
        stored = await _stored_rules(info)
        customers = {
            c.id: c
            for c in await ctx.read(
                lambda s: customers_with_ids(s, [m.customer_id for m in result.moves])
            )
        }
        moves = [
            AssignmentMove(
                customer=Customer.from_model(customers[m.customer_id]),
                from_owner=await user_or_none(info, m.from_owner_id),
                to_owner=await user_or_none(info, m.to_owner_id),
                rule=AssignmentRule.from_model(stored[m.rule.id]) if m.rule.id in stored else None,
            )
            for m in result.moves
        ]
        owners = sorted({*result.load_before, *result.load_after})
        changes = [(o, result.load_before.get(o, 0), result.load_after.get(o, 0)) for o in owners]
        load_changes = []
        for owner, before, after in changes:
            user = await user_or_none(info, owner)
            if before != after and user is not None:
                load_changes.append(LoadChange(owner=user, before=before, after=after))
        return AssignmentPreview(
            moves=moves,
            unchanged_count=result.unchanged,
            unassigned_count=result.unassigned,
            load_changes=load_changes,
        )


async def customers_with_ids(session: Any, ids: list[str]) -> list[domain.Customer]:
    """The customers with these ids, each with its active ownership (one query)."""
    if not ids:
        return []
    stmt = customer_service.customers_query(customer_service.CustomerFilter())
    return list((await session.scalars(stmt.where(domain.Customer.id.in_(ids)))).unique())


@strawberry.type
class AssignmentMutation:
    @strawberry.mutation(description="Add an assignment rule.")
    async def create_assignment_rule(
        self, info: Info, input: CreateAssignmentRuleInput
    ) -> AssignmentRulePayload | None:
        ctx = context_of(info)
        rule = await ctx.services.assignment.create_rule(ctx.actor, input.fields())
        return AssignmentRulePayload(rule=AssignmentRule.from_model(rule))

    @strawberry.mutation(description="Change an assignment rule; needs its current `version`.")
    async def update_assignment_rule(
        self, info: Info, input: UpdateAssignmentRuleInput
    ) -> AssignmentRulePayload | None:
        ctx = context_of(info)
        rule = await ctx.services.assignment.update_rule(
            ctx.actor, input.id, input.expected_version, input.fields()
        )
        return AssignmentRulePayload(rule=AssignmentRule.from_model(rule))

    @strawberry.mutation(description="Remove an assignment rule; needs its current `version`.")
    async def delete_assignment_rule(
        self, info: Info, input: DeleteAssignmentRuleInput
    ) -> AssignmentRulePayload | None:
        ctx = context_of(info)
        rule = await ctx.services.assignment.delete_rule(
            ctx.actor, input.id, input.expected_version
        )
        return AssignmentRulePayload(rule=AssignmentRule.from_model(rule))

    @strawberry.mutation(
        description="Assign unowned customers by the rules; open a "
        "RULE_REALIGNMENT request for owned ones whose outcome differs."
    )
    async def run_assignment(
        self, info: Info, input: RunAssignmentInput
    ) -> RunAssignmentPayload | None:
        ctx = context_of(info)
        result = await ctx.services.assignment.run(
            ctx.actor, input.customer_ids, dry_run=input.dry_run, scope=await ctx.scope()
        )
        customers = await ctx.read(
            lambda s: customers_with_ids(s, [m.customer_id for m in result.assigned])
        )
        return RunAssignmentPayload(
            assigned=[Customer.from_model(c) for c in customers],
            requests=[ReassignmentRequest.planned(rid, m, result.at) for rid, m in result.requests],
            dry_run=input.dry_run,
        )
