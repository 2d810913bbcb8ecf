"""Who takes part in a handover, as SQL conditions (CONTRACT.md, "Row scope").

A handover's parties are its outgoing owner, its incoming owner and its reviewer. The reviewer
is the outgoing owner's manager (who reviews the handbook, completes, records satisfaction and
cancels) and the user who approved the reassignment that opened it: usually one person; two
after a change of manager, or when a sales director or an admin approved. Each condition is one
comparison or uncorrelated subquery (evaluated once per statement, not per row), so a list or a
load costs the same statements for any number of handovers. ``CustomerScope``
(``core.services.customers``) is the one place that applies them to customers and handovers.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select

from core.domain import Customer, Handover, HandoverStatus, ReassignmentRequest, User

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


def party(user_id: str) -> ColumnElement[bool]:
    """For ``Handover`` rows: handovers ``user_id`` takes part in."""
    reports = select(User.id).where(User.manager_id == user_id).correlate(None)
    approved = select(ReassignmentRequest.id).where(ReassignmentRequest.reviewed_by_id == user_id)
    approved = approved.correlate(None)
    return or_(
        Handover.from_owner_id == user_id,
        Handover.to_owner_id == user_id,
        Handover.from_owner_id.in_(reports),
        Handover.request_id.in_(approved),
    )
