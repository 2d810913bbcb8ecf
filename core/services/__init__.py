"""Use cases, free of GraphQL; each write is one transaction with its audit entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from core.authz.store import PolicyStore
from core.calendar import WorkingCalendar
from core.clock import Clock, SystemClock
from core.db import Database
from core.domain import ReassignmentTrigger
from core.insight.segments import EngagementRule
from core.insight.service import InsightService
from core.plugins import PluginRegistry
from core.services.assignment import AssignmentService
from core.services.audit import Actor
from core.services.customers import CustomerService
from core.services.events import Outbox, Subscriber
from core.services.groups import GroupService
from core.services.handover import HandoverService
from core.services.policies import PolicyService
from core.services.reassignment import ReassignmentService
from core.services.scope_sizes import SCOPE_FIRST_COST, ScopeSizes
from core.services.see_as import SeeAsService
from core.services.teams import TeamService
from core.services.tiering import TieringService
from core.services.users import UserService


@dataclass
class Services:
    """Every use case of the process, sharing one database and one clock."""

    db: Database
    clock: Clock
    authz: PolicyStore
    assignment: AssignmentService
    customers: CustomerService
    groups: GroupService
    teams: TeamService
    users: UserService
    policies: PolicyService
    reassignment: ReassignmentService
    see_as: SeeAsService
    handover: HandoverService
    tiering: TieringService
    insight: InsightService
    plugins: PluginRegistry
    # Which form a customer list page gives the viewer's scope (walked or scope first).
    scope_sizes: ScopeSizes

    @classmethod
    def create(
        cls,
        db: Database,
        clock: Clock | None = None,
        calendar: WorkingCalendar | None = None,
        *,
        plugins: PluginRegistry | None = None,
        event_subscribers: Sequence[Subscriber] = (),
        engagement: EngagementRule | None = None,
    ) -> Services:
        """Wire the use cases with the loaded ``plugins``; they and ``event_subscribers`` get
        each workflow event after commit, and plugin holidays join the ``calendar``."""
        clock = clock or SystemClock()
        plugins = plugins or PluginRegistry()
        outbox = Outbox([plugins.notify, *event_subscribers])
        calendar = (calendar or WorkingCalendar()).with_holidays(plugins.holidays)
        authz = PolicyStore(db)
        assignment = AssignmentService(db, clock, plugins.dimensions)
        return cls(
            db=db,
            clock=clock,
            authz=authz,
            assignment=assignment,
            customers=CustomerService(db, clock, assignment.reevaluate, plugins.plugins),
            groups=GroupService(
                db,
                clock,
                partial(
                    assignment.apply,
                    reason="reorganization",
                    trigger=ReassignmentTrigger.REORGANIZATION,
                ),
            ),
            teams=TeamService(db, clock),
            users=UserService(db, clock, authz, outbox),
            policies=PolicyService(db, clock, authz),
            reassignment=ReassignmentService(db, clock, calendar, outbox),
            see_as=SeeAsService(db, clock, authz),
            handover=HandoverService(db, clock, calendar, outbox),
            tiering=TieringService(db, clock, plugins, assignment),
            insight=InsightService(db, clock, plugins, assignment, engagement),
            plugins=plugins,
            scope_sizes=ScopeSizes(SCOPE_FIRST_COST[db.engine.dialect.name]),
        )

    async def prepare(self) -> None:
        """Make the database usable (see ``Database.prepare``) and install default policies."""
        await self.db.prepare()
        await self.policies.ensure_defaults(self.plugins.plugins)


__all__ = ["Actor", "Services"]
