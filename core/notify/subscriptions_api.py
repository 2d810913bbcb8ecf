"""The GraphQL ``Subscription`` root: live workflow events, read like the polling query, and
live risk warnings (the health sweep's events, ``core.notify.risk``).

A subscription needs the rights of the ``workflowEvents`` query (``Query.workflowEvents``
call, read on the fields it filters by), sees only events of customers in the viewer's scope,
and its payload resolves through the same field machinery, so a field the viewer may not read
is null with ``FORBIDDEN_FIELD``. Roles, scope and data are read again for every event: a
policy change or a deactivation applies to open subscriptions too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Any, ClassVar, TypeVar

import strawberry
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from core.api.context import RequestContext, context_of
from core.api.handover import WorkflowEvent, WorkflowEventFilter, events_in_scope
from core.api.insight import RiskWarning
from core.api.types import Customer, customer_in_scope
from core.authz.view import PermissionView
from core.config import Settings
from core.domain import User, WorkflowEventRecord
from core.errors import BatonError, ErrorCode
from core.ids import PREFIXES
from core.insight.health import RaisedWarning
from core.notify.subscriptions import EventHub
from core.services import Services
from core.services.events import RISK_KINDS

T = TypeVar("T")


class ViewerGone(BatonError):
    """The subscriber was deactivated or removed while subscribed."""

    code = ErrorCode.UNAUTHENTICATED


class SubscriptionContext(RequestContext):
    """A request context that lives as long as a WebSocket connection: each read takes a
    short session of its own (never a transaction held for hours), and ``refresh`` reloads
    the viewer's roles, scope and cached rows before each event."""

    def __init__(
        self,
        services: Services,
        viewer: User,
        permissions: PermissionView,
        request_id: str,
        hub: EventHub,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(services, viewer, permissions, request_id, settings)
        self.hub = hub

    async def read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.services.db.reader() as session:
            return await query(session)

    async def refresh(self) -> None:
        """The viewer as now: still active, with today's roles and scope, nothing cached."""
        user = await self.read(lambda s: s.get(User, self.viewer.id))
        if user is None or not user.active:
            raise ViewerGone("your user was deactivated; the subscription ends")
        self.viewer = user
        self.permissions = await self.services.authz.view_for(user.id)
        self._scope = None
        for value in vars(self).values():
            if isinstance(value, DataLoader):
                value.clear_all()


async def _scalar(stmt: Select[Any], session: AsyncSession) -> Any:
    return await session.scalar(stmt)


def subscription_context(info: Info) -> SubscriptionContext:
    ctx = context_of(info)
    assert isinstance(ctx, SubscriptionContext)
    return ctx


@strawberry.enum(description="Whether the health sweep found the warning raised or cleared.")
class RiskWarningChange(Enum):
    RAISED = "RAISED"
    CLEARED = "CLEARED"


@strawberry.type(
    description="A risk warning the health sweep found raised on a customer, or cleared; "
    "its `id` is the workflow event's (`RISK_WARNING_RAISED`, `RISK_WARNING_CLEARED`)."
)
class RiskWarningEvent:
    # Its parts are authorised where they live: ``warning`` by ``RiskWarning.*`` (and the
    # event reaches only viewers who may read the warning), ``customer`` by ``Customer.*``.
    authz_exempt: ClassVar[bool] = True

    id: strawberry.ID
    change: RiskWarningChange
    at: datetime
    customer_id: strawberry.ID
    warning: RiskWarning

    @strawberry.field(description="The customer, read under your own field rules.")
    async def customer(self, info: Info) -> Customer | None:
        return await customer_in_scope(info, str(self.customer_id))

    @classmethod
    def from_model(cls, m: WorkflowEventRecord) -> RiskWarningEvent:
        p = m.payload
        since = p.get("since")
        warning = RaisedWarning(
            str(p.get("level")),
            str(p.get("code")),
            p.get("message"),  # type: ignore[arg-type]  # a cleared warning has none
            str(p.get("signal")),
            datetime.fromisoformat(since) if since else None,
        )
        return cls(
            id=strawberry.ID(f"{PREFIXES['WorkflowEvent']}_{m.id}"),
            change=RiskWarningChange(m.kind.removeprefix("RISK_WARNING_")),
            at=m.at,
            customer_id=strawberry.ID(m.customer_id),
            warning=RiskWarning.of(warning),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Workflow events of customers in your scope, as their transactions "
        "commit (the rights and fields of the `workflowEvents` query). For what happened "
        "while you were not connected, page `workflowEvents` from the last id you saw."
    )
    async def workflow_events(
        self, info: Info, filter: WorkflowEventFilter | None = None
    ) -> AsyncGenerator[WorkflowEvent | None, None]:
        ctx = subscription_context(info)
        f = filter or WorkflowEventFilter()
        # Checked before the stream starts, so a refusal is the operation's error.
        ctx.permissions.require_call("Query.workflowEvents")
        ctx.permissions.require_read("WorkflowEvent", f.authz_read_fields(), "filter or order")
        return _events(info, ctx, f, "Query.workflowEvents", WorkflowEvent.from_model)  # type: ignore[return-value]

    @strawberry.subscription(
        description="Risk warnings raised and cleared on customers in your scope, as the "
        "health sweep finds them (the rights of the `riskWarnings` query, and only warnings "
        "whose indicator you may read). For the warnings standing now, query `riskWarnings`."
    )
    async def risk_warnings(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> AsyncGenerator[RiskWarningEvent | None, None]:
        ctx = subscription_context(info)
        ctx.permissions.require_call("Query.riskWarnings")
        ctx.permissions.require_read("CustomerHealth", {"warnings"}, "risk warnings")
        f = WorkflowEventFilter(customer_id=customer_id)
        return _events(info, ctx, f, "Query.riskWarnings", RiskWarningEvent.from_model, RISK_KINDS)  # type: ignore[return-value]


async def _events(
    info: Info,
    ctx: SubscriptionContext,
    f: WorkflowEventFilter,
    operation: str,
    convert: Callable[[WorkflowEventRecord], T],
    kinds: Sequence[str] = (),
) -> AsyncIterator[T]:
    """Each committed event the viewer may see as it is now (``events_in_scope``), of
    ``kinds`` when given, converted; a right to ``operation`` revoked meanwhile ends it."""
    with ctx.hub.subscribe() as queue:
        while True:
            event_id = await queue.get()
            await ctx.refresh()
            ctx.permissions.require_call(operation)
            stmt = (await events_in_scope(info, f)).where(WorkflowEventRecord.id == event_id)
            if kinds:
                stmt = stmt.where(WorkflowEventRecord.kind.in_(kinds))
            record = await ctx.read(partial(_scalar, stmt))
            if record is not None:
                yield convert(record)
