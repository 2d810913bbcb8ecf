"""NPS, CES and satisfaction surveys: scheduling, answers, and NPS by owner, team, tier or
period (one aggregate statement).

NPS, the Net Promoter Score: of the answers (0-10), promoters answered 9 or 10, passives 7 or 8,
detractors 0 to 6; NPS = (promoters - detractors) / answers * 100, from -100 to 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, extract, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import (
    Activity,
    ActivityKind,
    Customer,
    Handover,
    Ownership,
    Survey,
    SurveyKind,
    SurveyOccasion,
    SurveyStatus,
    User,
)
from core.errors import BadUserInput, FieldError, InvalidState
from core.ids import new_id
from core.services import validation as v

SCALES = {SurveyKind.NPS: (0, 10), SurveyKind.CES: (1, 7), SurveyKind.SATISFACTION: (1, 5)}
POST_HANDOVER_AFTER = timedelta(days=30)  # the seed: a satisfaction survey within a month
DELIVERY_WINDOW = timedelta(days=7)  # orders this recent get a post-delivery survey
DELIVERY_EVERY = timedelta(days=30)  # at most one post-delivery survey per customer a month


def validate_answer(kind: SurveyKind, score: int, reason: str | None) -> None:
    low, high = SCALES[kind]
    errors = []
    if problem := v.int_range(score, low, high):
        errors.append(FieldError("score", f"{kind.value} {problem}"))
    if problem := v.text(reason, max_length=2000):
        errors.append(FieldError("reason", problem))
    if errors:
        raise BadUserInput(errors)


async def answer(
    session: AsyncSession,
    customer: Customer,
    *,
    kind: SurveyKind,
    score: int,
    reason: str | None,
    answered_at: datetime,
    now: datetime,
    recorded_by: str | None,
    survey_id: str | None = None,
    occasion: SurveyOccasion = SurveyOccasion.AD_HOC,
) -> Survey:
    """Record an answer: to the scheduled survey ``survey_id``, or a new ad-hoc one."""
    validate_answer(kind, score, reason)
    if answered_at > now:
        raise BadUserInput([FieldError("answeredAt", "must not be in the future")])
    if survey_id is not None:
        survey = await session.get(Survey, survey_id, with_for_update=True)
        if survey is None or survey.customer_id != customer.id:
            raise BadUserInput([FieldError("surveyId", "names no survey of this customer")])
        if survey.status is not SurveyStatus.SCHEDULED:
            raise InvalidState(f"Survey {survey_id!r} is already answered", survey.status.value)
        if survey.kind is not kind:
            raise BadUserInput([FieldError("kind", f"the survey is {survey.kind.value}")])
    else:
        survey = Survey(
            id=new_id("Survey"),
            customer_id=customer.id,
            kind=kind,
            occasion=occasion,
            due_at=answered_at,
            created_at=now,
        )
        session.add(survey)
    survey.status = SurveyStatus.ANSWERED
    survey.score = score
    survey.reason = reason
    survey.answered_at = answered_at
    survey.recorded_by_id = recorded_by
    await session.flush()
    return survey


def audit_change(survey: Survey) -> dict[str, Any]:
    """The answer as an audit change of ``Customer.surveys``."""
    return {
        "field": "surveys",
        "before": None,
        "after": {
            "id": survey.id,
            "kind": survey.kind.value,
            "occasion": survey.occasion.value,
            "score": survey.score,
            "reason": survey.reason,
        },
    }


def quarter_of(moment: datetime) -> str:
    return f"{moment.year}Q{(moment.month - 1) // 3 + 1}"


async def schedule(session: AsyncSession, now: datetime) -> int:
    """Create the surveys now due, idempotently (``dedupe_key``): a quarterly NPS for each
    owned customer, a satisfaction survey a month after each completed handover, and one after
    delivery for customers with an order in the last week (at most one a month). Three
    selects and one insert, whatever the number of customers; returns how many were created."""
    rows: list[dict[str, Any]] = []
    quarter = quarter_of(now)

    def due(
        customer_id: str,
        kind: SurveyKind,
        occasion: SurveyOccasion,
        key: str,
        due_at: datetime,
        handover_id: str | None = None,
    ) -> None:
        rows.append(
            {
                "id": new_id("Survey"),
                "customer_id": customer_id,
                "kind": kind,
                "occasion": occasion,
                "status": SurveyStatus.SCHEDULED,
                "due_at": due_at,
                "handover_id": handover_id,
                "dedupe_key": key,
                "created_at": now,
            }
        )

    def missing(key: Any) -> Any:
        return ~select(Survey.id).where(Survey.dedupe_key == key).exists()

    nps_key = literal(f"NPS:{quarter}:") + Ownership.customer_id
    owned = select(Ownership.customer_id).where(Ownership.valid_to.is_(None), missing(nps_key))
    for customer_id in await session.scalars(owned.order_by(Ownership.customer_id)):
        due(
            customer_id,
            SurveyKind.NPS,
            SurveyOccasion.QUARTERLY,
            f"NPS:{quarter}:{customer_id}",
            now,
        )
    handover_key = literal("POST_HANDOVER:") + Handover.id
    completed = select(Handover.id, Handover.customer_id, Handover.completed_at).where(
        Handover.completed_at.is_not(None),
        Handover.completed_at <= now - POST_HANDOVER_AFTER,
        missing(handover_key),
    )
    for handover_id, customer_id, completed_at in await session.execute(
        completed.order_by(Handover.id)
    ):
        assert completed_at is not None  # the query asks for completed handovers
        due(
            customer_id,
            SurveyKind.SATISFACTION,
            SurveyOccasion.POST_HANDOVER,
            f"POST_HANDOVER:{handover_id}",
            completed_at + POST_HANDOVER_AFTER,
            handover_id,
        )
    recent_survey = (
        select(Survey.id)
        .where(
            Survey.customer_id == Activity.customer_id,
            Survey.occasion == SurveyOccasion.POST_DELIVERY,
            Survey.created_at > now - DELIVERY_EVERY,
        )
        .exists()
    )
    delivered = (
        select(Activity.customer_id)
        .where(
            Activity.kind == ActivityKind.ORDER,
            Activity.at > now - DELIVERY_WINDOW,
            Activity.at <= now,
            ~recent_survey,
        )
        .group_by(Activity.customer_id)
    )
    for customer_id in await session.scalars(delivered.order_by(Activity.customer_id)):
        due(
            customer_id,
            SurveyKind.SATISFACTION,
            SurveyOccasion.POST_DELIVERY,
            f"POST_DELIVERY:{now.date().isoformat()}:{customer_id}",
            now,
        )
    if rows:
        await session.execute(insert(Survey), rows)
    return len(rows)


# --- NPS by dimension ---------------------------------------------------------------------

DIMENSIONS = ("OWNER", "TEAM", "TIER", "QUARTER")


@dataclass(frozen=True)
class NpsGroup:
    """One group's NPS: ``key`` is the owner id, team, value tier or quarter (``2026Q1``);
    None for customers without one."""

    key: str | None
    answers: int
    promoters: int
    passives: int
    detractors: int

    @property
    def score(self) -> float | None:
        if not self.answers:
            return None
        return round((self.promoters - self.detractors) / self.answers * 100, 1)


def _key(by: str) -> Any:
    if by == "OWNER":
        return Ownership.owner_id
    if by == "TEAM":
        return User.team
    if by == "TIER":
        return Customer.value_tier
    month = extract("month", Survey.answered_at)
    quarter = case((month <= 3, 1), (month <= 6, 2), (month <= 9, 3), else_=4)
    return extract("year", Survey.answered_at) * 10 + quarter


async def nps(
    session: AsyncSession,
    by: str,
    since: datetime,
    until: datetime,
    among: Select[Any] | None = None,
) -> list[NpsGroup]:
    """NPS of the answers in ``[since, until)`` grouped ``by`` (one of ``DIMENSIONS``); owner
    and team are the customer's current ones; ``among`` narrows to a query of customer ids."""
    key = _key(by).label("key")
    score = Survey.score
    stmt = (
        select(
            key,
            func.count().label("answers"),
            func.sum(case((score >= 9, 1), else_=0)).label("promoters"),
            func.sum(case((and_(score >= 7, score <= 8), 1), else_=0)).label("passives"),
            func.sum(case((score <= 6, 1), else_=0)).label("detractors"),
        )
        .select_from(Survey)
        .outerjoin(
            Ownership,
            and_(Ownership.customer_id == Survey.customer_id, Ownership.valid_to.is_(None)),
        )
        .outerjoin(User, User.id == Ownership.owner_id)
        .where(
            Survey.kind == SurveyKind.NPS,
            Survey.status == SurveyStatus.ANSWERED,
            Survey.answered_at >= since,
            Survey.answered_at < until,
        )
        .group_by(key)
    )
    if by == "TIER":  # only the tier needs the customer row (half the time at 1M otherwise)
        stmt = stmt.join(Customer, Customer.id == Survey.customer_id)
    if among is not None:
        stmt = stmt.where(Survey.customer_id.in_(among))
    groups = []
    for row in await session.execute(stmt):
        label = row.key
        if by == "QUARTER" and label is not None:
            label = f"{int(label) // 10}Q{int(label) % 10}"
        elif label is not None:
            label = getattr(label, "value", str(label))
        groups.append(NpsGroup(label, row.answers, row.promoters, row.passives, row.detractors))
    groups.sort(key=lambda g: (g.key is None, g.key or ""))
    return groups
