"""Who takes part in a handover, as SQL conditions (CONTRACT.md, "Row scope").

A handover's parties are its outgoing owner, its incoming owner and its reviewer. The reviewer
is the outgoing owner's manager (who reviews the handbook, completes, records satisfaction and
cancels) and the user who approved the reassignment that opened it: usually one person; two
after a change of manager, or when a sales director or an admin approved. For lists each
condition is one comparison or uncorrelated subquery (evaluated once per statement, not per
row), so a list costs the same statements for any number of handovers; for handovers read by
id they are correlated to each row read instead, so the check costs the same for any number.
``CustomerScope`` (``core.services.customers``) is the one place that applies them to customers
and handovers.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.roles import roles_of
from core.domain import Customer, Handover, HandoverStatus, ReassignmentRequest, User
from core.services.audit import Actor

S = HandoverStatus
# From the approval until completion or cancellation the incoming owner reads the customer.
RECEIVING = (S.HANDBOOK_PENDING, S.HANDBOOK_SUBMITTED, S.HANDBOOK_APPROVED, S.CUSTOMER_NOTIFIED)


def receiving(user_id: str) -> ColumnElement[bool]:
    """For ``Customer`` rows: customers with an open handover to ``user_id`` (an uncorrelated
    subquery, evaluated once per statement rather than once per row)."""
    # Equalities, not an IN list: a list is rendered anew at every execution.
    open_ = or_(*(Handover.status == status for status in RECEIVING))
    return Customer.id.in_(
        select(Handover.customer_id).where(Handover.to_owner_id == user_id, open_)
    )


def party(user_id: str, *, by_id: bool = False) -> ColumnElement[bool]:
    """For ``Handover`` rows: handovers ``user_id`` takes part in.

    ``by_id``: for a statement that reads handovers by id (one, or a page's), the manager and
    approver conditions are correlated to each row read (a primary-key lookup each) rather
    than sets of all the user's reports and approvals, which grow with the user's history.
    """
    manages: ColumnElement[bool]
    approved: ColumnElement[bool]
    if by_id:
        manages = (
            select(User.id)
            .where(User.id == Handover.from_owner_id, User.manager_id == user_id)
            .exists()
        )
        approved = (
            select(ReassignmentRequest.id)
            .where(
                ReassignmentRequest.id == Handover.request_id,
                ReassignmentRequest.reviewed_by_id == user_id,
            )
            .exists()
        )
    else:
        reports = select(User.id).where(User.manager_id == user_id).correlate(None)
        approvals = select(ReassignmentRequest.id).where(
            ReassignmentRequest.reviewed_by_id == user_id
        )
        manages = Handover.from_owner_id.in_(reports)
        approved = Handover.request_id.in_(approvals.correlate(None))
    return or_(
        Handover.from_owner_id == user_id,
        Handover.to_owner_id == user_id,
        manages,
        approved,
    )


async def actor_roles(session: AsyncSession, actor: Actor) -> frozenset[str]:
    """The roles assigned to ``actor``, who decide which steps they may take as a reviewer: the
    ones the actor carries (a request's, as fresh as its permission view, so a revocation still
    applies from the next request), else read from the policy lines (CLI, tests)."""
    if actor.roles is not None:
        return actor.roles
    if actor.user_id is None:
        return frozenset()
    return frozenset((await roles_of(session, [actor.user_id]))[actor.user_id])
