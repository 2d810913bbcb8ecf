"""Who takes part in a handover, as SQL conditions (CONTRACT.md, "Row scope").

A handover's parties are its outgoing owner, its incoming owner and its reviewer. The reviewer
is the outgoing owner's manager (who reviews the handbook, completes, records satisfaction and
cancels) and the user who approved the reassignment that opened it: usually one person; two
after a change of manager, or when a sales director or an admin approved. Each condition is one
correlated ``EXISTS`` or comparison, so a list or a load costs the same statements for any
number of handovers. ``CustomerScope`` (``core.services.customers``) is the one place that
applies them to customers and handovers.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, or_
from sqlalchemy.orm import aliased

from core.domain import Customer, Handover, HandoverStatus, ReassignmentRequest, User

S = HandoverStatus
# From the approval until completion or cancellation the incoming owner reads the customer.
RECEIVING = (S.HANDBOOK_PENDING, S.HANDBOOK_SUBMITTED, S.HANDBOOK_APPROVED, S.CUSTOMER_NOTIFIED)


def receiving(user_id: str) -> ColumnElement[bool]:
    """For ``Customer`` rows: customers with an open handover to ``user_id``."""
    open_ = aliased(Handover)
    return (
        exists()
        .where(
            open_.customer_id == Customer.id,
            open_.to_owner_id == user_id,
            open_.status.in_(RECEIVING),
        )
        .correlate(Customer)
    )


def party(user_id: str) -> ColumnElement[bool]:
    """For ``Handover`` rows: handovers ``user_id`` takes part in."""
    outgoing = aliased(User)
    request = aliased(ReassignmentRequest)
    manages = (
        exists()
        .where(outgoing.id == Handover.from_owner_id, outgoing.manager_id == user_id)
        .correlate(Handover)
    )
    approved = (
        exists()
        .where(request.id == Handover.request_id, request.reviewed_by_id == user_id)
        .correlate(Handover)
    )
    owners = or_(Handover.from_owner_id == user_id, Handover.to_owner_id == user_id)
    return or_(owners, manages, approved)
