"""Use cases, free of GraphQL; each write is one transaction with its audit entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.authz.store import PolicyStore
from core.calendar import WorkingCalendar
from core.clock import Clock, SystemClock
from core.db import Database
from core.services.assignment import AssignmentService
from core.services.audit import Actor
from core.services.customers import CustomerService
from core.services.events import Outbox, Subscriber
from core.services.handover import HandoverService
from core.services.policies import PolicyService
from core.services.reassignment import ReassignmentService
from core.services.users import UserService


@dataclass
class Services:
    """Every use case of the process, sharing one database and one clock."""

    db: Database
    clock: Clock
    authz: PolicyStore
    assignment: AssignmentService
    customers: CustomerService
    users: UserService
    policies: PolicyService
    reassignment: ReassignmentService
    handover: HandoverService

    @classmethod
    def create(
        cls,
        db: Database,
        clock: Clock | None = None,
        calendar: WorkingCalendar | None = None,
        *,
        event_subscribers: Sequence[Subscriber] = (),
    ) -> Services:
        """Wire the use cases; ``event_subscribers`` get each workflow event after commit."""
        clock = clock or SystemClock()
        outbox = Outbox(event_subscribers)
        calendar = calendar or WorkingCalendar()
        authz = PolicyStore(db)
        assignment = AssignmentService(db, clock)
        return cls(
            db=db,
            clock=clock,
            authz=authz,
            assignment=assignment,
            customers=CustomerService(db, clock, assignment.reevaluate),
            users=UserService(db, clock, authz),
            policies=PolicyService(db, clock, authz),
            reassignment=ReassignmentService(db, clock, calendar, outbox),
            handover=HandoverService(db, clock, calendar, outbox),
        )

    async def prepare(self) -> None:
        """Make the database usable (see ``Database.prepare``) and install default policies."""
        await self.db.prepare()
        await self.policies.ensure_defaults()


__all__ = ["Actor", "Services"]
