"""GraphQL for surveys (answers, NPS by dimension) and hand-set tiers (overrides)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import ClassVar

import strawberry
from strawberry.types import Info

from core import domain
from core.api.context import context_of
from core.api.types import Customer, Node, User, user_or_none
from core.authz.view import PermissionView
from core.domain import SurveyKind, SurveyOccasion, SurveyStatus
from core.insight import overrides as override_rules
from core.insight import surveys as survey_rules
from core.insight.service import Answer

for _enum, _description in (
    (SurveyKind, "NPS (0-10), CES (1-7, 7: very easy) or SATISFACTION (1-5)."),
    (SurveyOccasion, "Why the survey was sent."),
    (SurveyStatus, "SCHEDULED until answered."),
):
    strawberry.enum(_enum, description=_description)


@strawberry.type(description="An NPS, CES or satisfaction survey of a customer.")
class Survey(Node):
    kind: SurveyKind | None
    occasion: SurveyOccasion | None
    status: SurveyStatus | None
    due_at: datetime | None
    answered_at: datetime | None
    score: int | None
    reason: str | None = strawberry.field(description="Why they answered so (NPS asks).")

    @classmethod
    def from_model(cls, m: domain.Survey) -> Survey:
        return cls(
            id=strawberry.ID(m.id),
            kind=m.kind,
            occasion=m.occasion,
            status=m.status,
            due_at=m.due_at,
            answered_at=m.answered_at,
            score=m.score,
            reason=m.reason,
        )


@strawberry.enum(description="What an override sets.")
class OverriddenTier(Enum):
    VALUE = "value"
    NEEDS = "needs"
    LOYALTY = "loyalty"
    ENGAGEMENT = "engagement"


@strawberry.type(description="A hand-set tier the periodic review keeps until it expires.")
class TierOverride:
    # Authorised by ``Customer.tierOverrides``, and each by its tier's own field (valueTier).
    authz_exempt: ClassVar[bool] = True

    tier: OverriddenTier
    value: str
    reason: str
    expires_at: datetime | None = strawberry.field(description="Null: until cleared.")
    set_at: datetime
    set_by_id: strawberry.Private[str | None]

    @strawberry.field(description="Who set it.")
    async def set_by(self, info: Info) -> User | None:
        return await user_or_none(info, self.set_by_id)


def visible_overrides(
    found: dict[str, override_rules.Override], view: PermissionView
) -> list[TierOverride]:
    """The overrides whose tier field the viewer may read."""
    return [
        TierOverride(
            tier=OverriddenTier(o.tier),
            value=o.value,
            reason=o.reason,
            expires_at=o.expires_at,
            set_at=o.set_at,
            set_by_id=o.set_by_id,
        )
        for o in found.values()
        if view.can_read("Customer", override_rules.field_of(o.tier))
    ]


@strawberry.input
class RecordSurveyAnswerInput:
    customer_id: strawberry.ID
    kind: SurveyKind
    score: int = strawberry.field(description="NPS 0-10, CES 1-7, SATISFACTION 1-5.")
    reason: str | None = None
    answered_at: datetime | None = strawberry.field(default=None, description="Default: now.")
    survey_id: strawberry.ID | None = strawberry.field(
        default=None, description="The scheduled survey answered; none for an ad-hoc answer."
    )
    occasion: SurveyOccasion = SurveyOccasion.AD_HOC

    authz_entity: ClassVar[str] = "Customer"

    def authz_write_fields(self) -> list[str]:
        return ["surveys"]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.type
class RecordSurveyAnswerPayload:
    authz_exempt: ClassVar[bool] = True

    survey: Survey


@strawberry.input
class OverrideTierInput:
    customer_id: strawberry.ID
    tier: OverriddenTier
    value: str = strawberry.field(description="A value of the tier, e.g. `STRATEGIC`.")
    reason: str
    expires_at: datetime | None = strawberry.field(default=None, description="Null: no expiry.")

    authz_entity: ClassVar[str] = "Customer"

    def authz_write_fields(self) -> list[str]:
        return [override_rules.field_of(self.tier.value)]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.input
class ClearTierOverrideInput:
    customer_id: strawberry.ID
    tier: OverriddenTier
    reason: str | None = None

    authz_entity: ClassVar[str] = "Customer"

    def authz_write_fields(self) -> list[str]:
        return [override_rules.field_of(self.tier.value)]

    def authz_operations(self) -> list[str]:
        return []


@strawberry.type
class CustomerOverridePayload:
    authz_exempt: ClassVar[bool] = True

    customer: Customer


@strawberry.enum(description="How to group NPS answers.")
class NpsDimension(Enum):
    OWNER = "OWNER"
    TEAM = "TEAM"
    TIER = "TIER"
    QUARTER = "QUARTER"


# Grouping by a dimension reveals it: the viewer must read these fields.
DIMENSION_FIELDS = {
    NpsDimension.OWNER: [("Customer", "owner")],
    NpsDimension.TEAM: [("Customer", "owner"), ("User", "team")],
    NpsDimension.TIER: [("Customer", "valueTier")],
    NpsDimension.QUARTER: [],
}


@strawberry.type(description="NPS of one group: (promoters - detractors) / answers * 100.")
class NpsGroup:
    authz_exempt: ClassVar[bool] = True

    key: str | None = strawberry.field(
        description="Owner id, team, value tier or quarter (`2026Q1`); null: none."
    )
    answers: int
    promoters: int = strawberry.field(description="Answered 9 or 10.")
    passives: int = strawberry.field(description="Answered 7 or 8.")
    detractors: int = strawberry.field(description="Answered 0 to 6.")
    score: float | None = strawberry.field(description="-100 to 100.")


@strawberry.type
class SurveyQuery:
    @strawberry.field(
        description="NPS of the answers in [since, until) of customers in your scope, grouped."
    )
    async def nps_report(
        self, info: Info, by: NpsDimension, since: datetime, until: datetime
    ) -> list[NpsGroup] | None:
        ctx = context_of(info)
        for type_name, field in [("Survey", "score"), *DIMENSION_FIELDS[by]]:
            ctx.permissions.require_read(type_name, [field], "group NPS")
        among = await ctx.scope_ids()
        found = await ctx.read(lambda s: survey_rules.nps(s, by.value, since, until, among))
        return [
            NpsGroup(
                key=g.key,
                answers=g.answers,
                promoters=g.promoters,
                passives=g.passives,
                detractors=g.detractors,
                score=g.score,
            )
            for g in found
        ]


@strawberry.type
class SurveyMutation:
    @strawberry.mutation(description="Record a survey answer (audited); feeds the indicators.")
    async def record_survey_answer(
        self, info: Info, input: RecordSurveyAnswerInput
    ) -> RecordSurveyAnswerPayload | None:
        ctx = context_of(info)
        survey = await ctx.services.insight.record_answer(
            ctx.actor,
            Answer(
                customer_id=input.customer_id,
                kind=input.kind,
                score=input.score,
                reason=input.reason,
                answered_at=input.answered_at,
                survey_id=input.survey_id,
                occasion=input.occasion,
            ),
            scope=await ctx.scope(),
        )
        return RecordSurveyAnswerPayload(survey=Survey.from_model(survey))

    @strawberry.mutation(
        description="Set a tier or the engagement stage by hand, with a reason and an optional "
        "expiry; the periodic review keeps it until then (audited)."
    )
    async def override_tier(
        self, info: Info, input: OverrideTierInput
    ) -> CustomerOverridePayload | None:
        ctx = context_of(info)
        customer = await ctx.services.insight.override_tier(
            ctx.actor,
            input.customer_id,
            input.tier.value,
            input.value,
            input.reason,
            input.expires_at,
            scope=await ctx.scope(),
        )
        return CustomerOverridePayload(customer=Customer.from_model(customer))

    @strawberry.mutation(description="Drop an override; the next review computes the tier.")
    async def clear_tier_override(
        self, info: Info, input: ClearTierOverrideInput
    ) -> CustomerOverridePayload | None:
        ctx = context_of(info)
        customer = await ctx.services.insight.clear_override(
            ctx.actor, input.customer_id, input.tier.value, input.reason, scope=await ctx.scope()
        )
        return CustomerOverridePayload(customer=Customer.from_model(customer))
