"""The handover steps over GraphQL: each is one call of ``HandoverService`` with the request's
scope, and answers the handover after the step."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar

import strawberry
from strawberry.types import Info

from core import domain
from core.api.context import context_of
from core.api.handover import Handover, ReviewDecision, handover_of
from core.domain.enums import MeetingKind
from core.services.audit import to_camel
from core.services.handover import HandoverService


@strawberry.input
class HandoverStepInput:
    handover_id: strawberry.ID
    expected_version: int


@strawberry.input
class SubmitHandbookInput(HandoverStepInput):
    profile_summary: str
    open_items: str
    strategy_advice: str
    risk_warnings: str


@strawberry.input
class ReviewHandbookInput(HandoverStepInput):
    decision: ReviewDecision
    comment: str | None = strawberry.field(default=None, description="Required to send back.")


@strawberry.input
class RecordHandoverMeetingInput(HandoverStepInput):
    kind: MeetingKind
    held_at: datetime
    notes: str | None = None


@strawberry.input
class SubmitHandoverFeedbackInput(HandoverStepInput):
    clear_items: str
    pending_items: str
    help_needed: str


@strawberry.input
class RecordSatisfactionInput(HandoverStepInput):
    score: int = strawberry.field(description="1 (poor) to 5 (excellent).")


@strawberry.input
class CancelHandoverInput(HandoverStepInput):
    reason: str | None = None


@strawberry.type
class HandoverPayload:
    authz_exempt: ClassVar[bool] = True

    handover: Handover


Step = Callable[..., Awaitable[domain.Handover]]


async def _take(info: Info, step: Step, input: HandoverStepInput, *args: Any) -> HandoverPayload:
    """Run the ``HandoverService`` step for ``input``'s handover as the viewer, in their scope,
    and answer the handover after it."""
    ctx = context_of(info)
    h = await step(
        ctx.services.handover,
        ctx.actor,
        input.handover_id,
        input.expected_version,
        *args,
        scope=await ctx.scope(),
    )
    return HandoverPayload(handover=handover_of(info, h))


def _sections(input: HandoverStepInput) -> dict[str, Any]:
    """The input's written sections (its fields beyond the handover's), by GraphQL name."""
    own = {f.name for f in dataclasses.fields(HandoverStepInput)}
    return {
        to_camel(f.name): getattr(input, f.name)
        for f in dataclasses.fields(input)
        if f.name not in own
    }


@strawberry.type
class HandoverStepMutation:
    @strawberry.mutation(description="The outgoing owner submits the handbook (all sections).")
    async def submit_handbook(
        self, info: Info, input: SubmitHandbookInput
    ) -> HandoverPayload | None:
        return await _take(info, HandoverService.submit_handbook, input, _sections(input))

    @strawberry.mutation(description="The outgoing owner's manager approves or sends it back.")
    async def review_handbook(
        self, info: Info, input: ReviewHandbookInput
    ) -> HandoverPayload | None:
        approve = input.decision is ReviewDecision.APPROVE
        return await _take(info, HandoverService.review_handbook, input, approve, input.comment)

    @strawberry.mutation(description="Record a briefing, simulation or three-party meeting.")
    async def record_handover_meeting(
        self, info: Info, input: RecordHandoverMeetingInput
    ) -> HandoverPayload | None:
        return await _take(
            info, HandoverService.record_meeting, input, input.kind, input.held_at, input.notes
        )

    @strawberry.mutation(description="The customer has been told who will look after them.")
    async def notify_customer(self, info: Info, input: HandoverStepInput) -> HandoverPayload | None:
        return await _take(info, HandoverService.notify_customer, input)

    @strawberry.mutation(description="Switch ownership to the new owner, once its conditions hold.")
    async def complete_handover(
        self, info: Info, input: HandoverStepInput
    ) -> HandoverPayload | None:
        return await _take(info, HandoverService.complete, input)

    @strawberry.mutation(description="The new owner's feedback after taking over.")
    async def submit_handover_feedback(
        self, info: Info, input: SubmitHandoverFeedbackInput
    ) -> HandoverPayload | None:
        return await _take(info, HandoverService.submit_feedback, input, _sections(input))

    @strawberry.mutation(description="The customer's satisfaction with the handover (closes it).")
    async def record_satisfaction(
        self, info: Info, input: RecordSatisfactionInput
    ) -> HandoverPayload | None:
        return await _take(info, HandoverService.record_satisfaction, input, input.score)

    @strawberry.mutation(description="Stop a handover before it completes.")
    async def cancel_handover(
        self, info: Info, input: CancelHandoverInput
    ) -> HandoverPayload | None:
        return await _take(info, HandoverService.cancel, input, input.reason)
