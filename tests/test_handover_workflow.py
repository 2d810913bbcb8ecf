"""The handover state machine as a whole: every step refused from every state the contract
does not allow it in, deadlines over weekends and holidays, and the workflow-event outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from core.app import create_app
from core.clock import FixedClock
from core.config import Settings
from core.domain import Handover, MeetingKind
from core.services import Actor, Services
from sdk import WorkflowEvent
from tests.conftest import GraphQLClient, error_codes
from tests.test_handover import HANDBOOK, step

ADMIN = Actor("admin")
FEEDBACK = {"clearItems": "Contacts", "pendingItems": "Pricing", "helpNeeded": "Plant visit"}

# From CONTRACT.md, "Reassignment and handover" — written out here, not read from the code,
# so that a wrong table in the code fails this test.
ALLOWED_FROM = {
    "submitHandbook": {"HANDBOOK_PENDING"},
    "reviewHandbook": {"HANDBOOK_SUBMITTED"},
    "recordHandoverMeeting": {"HANDBOOK_APPROVED", "CUSTOMER_NOTIFIED"},
    "notifyCustomer": {"HANDBOOK_APPROVED"},
    "completeHandover": {"CUSTOMER_NOTIFIED"},
    "submitHandoverFeedback": {"COMPLETED"},
    "recordSatisfaction": {"FEEDBACK_RECEIVED"},
    "cancelHandover": {
        "HANDBOOK_PENDING",
        "HANDBOOK_SUBMITTED",
        "HANDBOOK_APPROVED",
        "CUSTOMER_NOTIFIED",
    },
}
STEP_INPUTS: dict[str, tuple[str, dict[str, Any]]] = {
    "submitHandbook": ("SubmitHandbookInput", HANDBOOK),
    "reviewHandbook": ("ReviewHandbookInput", {"decision": "APPROVE"}),
    "recordHandoverMeeting": (
        "RecordHandoverMeetingInput",
        {"kind": "BRIEFING", "heldAt": "2026-03-02T09:00:00+00:00"},
    ),
    "notifyCustomer": ("HandoverStepInput", {}),
    "completeHandover": ("HandoverStepInput", {}),
    "submitHandoverFeedback": ("SubmitHandoverFeedbackInput", FEEDBACK),
    "recordSatisfaction": ("RecordSatisfactionInput", {"score": 4}),
    "cancelHandover": ("CancelHandoverInput", {"reason": "test"}),
}
STATES = (
    "HANDBOOK_PENDING",
    "HANDBOOK_SUBMITTED",
    "HANDBOOK_APPROVED",
    "CUSTOMER_NOTIFIED",
    "COMPLETED",
    "FEEDBACK_RECEIVED",
    "CLOSED",
    "CANCELLED",
)

Advance = Callable[[Services, Handover, FixedClock], Awaitable[Handover]]


async def _meetings_then_notify(s: Services, h: Handover, clock: FixedClock) -> Handover:
    for kind in (MeetingKind.BRIEFING, MeetingKind.SIMULATION):
        h = await s.handover.record_meeting(ADMIN, h.id, h.version, kind, clock.now(), None)
    return await s.handover.notify_customer(ADMIN, h.id, h.version)


# The happy path, one state at a time (each takes the handover from the previous state).
PATH: list[Advance] = [
    lambda s, h, c: s.handover.submit_handbook(ADMIN, h.id, h.version, HANDBOOK),
    lambda s, h, c: s.handover.review_handbook(ADMIN, h.id, h.version, True, None),
    _meetings_then_notify,
    lambda s, h, c: s.handover.complete(ADMIN, h.id, h.version),
    lambda s, h, c: s.handover.submit_feedback(ADMIN, h.id, h.version, FEEDBACK),
    lambda s, h, c: s.handover.record_satisfaction(ADMIN, h.id, h.version, 5),
]


async def open_handover(services: Services, name: str) -> Handover:
    customer = await services.customers.create(
        ADMIN, {"name": name, "value_tier": "MEDIUM"}, owner_id="am.chen"
    )
    request = await services.reassignment.request(
        Actor("am.chen"), customer.id, "am.wu", "NEEDS_CHANGE", "specialist needed"
    )
    _, handover = await services.reassignment.review(Actor("tm.li"), request.id, True, None)
    assert handover is not None
    return handover


async def handover_in(services: Services, state: str, clock: FixedClock) -> Handover:
    """A fresh handover of a MEDIUM customer, taken along the happy path to ``state``."""
    h = await open_handover(services, f"in {state}")
    if state == "CANCELLED":
        return await services.handover.cancel(ADMIN, h.id, h.version, "no longer needed")
    for advance in PATH[: STATES.index(state)]:
        h = await advance(services, h, clock)
    assert h.status.value == state
    return h


@pytest.mark.parametrize("state", STATES)
async def test_every_step_not_allowed_from_a_state_is_refused(
    gql: GraphQLClient, services: Services, admin: str, clock: FixedClock, state: str
) -> None:
    h = await handover_in(services, state, clock)
    entries_before = await audit_count(gql)
    refused = [name for name, states in ALLOWED_FROM.items() if state not in states]
    for name in refused:
        input_type, values = STEP_INPUTS[name]
        body = await step(
            gql, "admin", name, input_type, handoverId=h.id, expectedVersion=h.version, **values
        )
        assert error_codes(body) == ["INVALID_STATE"], (state, name, body)
        assert body["errors"][0]["extensions"]["state"] == state
        assert body["data"] == {name: None}
    after = await gql.data(
        "admin",
        "query($id: ID!) { node(id: $id) { ... on Handover { version status } } }",
        {"id": h.id},
    )
    assert after["node"] == {"version": h.version, "status": state}  # nothing written
    assert await audit_count(gql) == entries_before


async def audit_count(gql: GraphQLClient) -> int:
    data = await gql.data("admin", "{ auditLog { totalCount } }")
    return int(data["auditLog"]["totalCount"])


@pytest.fixture
async def holiday_app(settings: Settings, clock: FixedClock) -> Any:
    """The app with two public holidays on the Wednesday and Thursday of the test week."""
    holidays = replace(settings, holidays=(clock.now().date() + timedelta(days=2),))
    holidays = replace(holidays, holidays=(*holidays.holidays, clock.now().date() + timedelta(3)))
    application = create_app(holidays, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


async def test_deadlines_skip_weekends_and_configured_holidays(
    holiday_app: Starlette, clock: FixedClock
) -> None:
    import httpx

    services: Services = holiday_app.state.services
    system = Actor.system()
    await services.users.create(system, "admin", "Ada", roles=["admin"])
    await services.users.create(system, "tm.li", "Li", roles=["team_manager"])
    for uid in ("am.chen", "am.wu"):
        await services.users.create(system, uid, uid, roles=["account_manager"], manager_id="tm.li")
    h = await open_handover(services, "Holiday week")
    transport = httpx.ASGITransport(app=holiday_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
        gql = GraphQLClient(http, clock)
        # Opened Monday 2026-03-02 09:00; Wed 4th and Thu 5th are holidays: three working
        # days are Tue 3rd, Fri 6th and Mon 9th.
        state = await gql.data(
            "admin",
            "query($id: ID!) { node(id: $id) { ... on Handover { dueAt overdue } } }",
            {"id": h.id},
        )
        assert state["node"] == {"dueAt": "2026-03-09T09:00:00+00:00", "overdue": False}
        clock.advance(timedelta(days=4, hours=8))  # Friday 17:00, after the handbook is in
        h = await services.handover.submit_handbook(ADMIN, h.id, h.version, HANDBOOK)
        state = await gql.data(
            "admin",
            "query($id: ID!) { node(id: $id) { ... on Handover { dueAt } } }",
            {"id": h.id},
        )
        assert state["node"]["dueAt"] == "2026-03-09T17:00:00+00:00"  # review: next working day
        clock.advance(timedelta(days=3, hours=1))  # Monday 18:00
        late = await gql.data(
            "tm.li", "{ handovers(filter: {overdue: true}) { edges { node { id overdue } } } }"
        )
        assert late["handovers"]["edges"] == [{"node": {"id": h.id, "overdue": True}}]


async def test_steps_write_events_in_their_transaction_and_subscribers_hear_after_commit(
    gql: GraphQLClient, services: Services, admin: str, clock: FixedClock
) -> None:
    heard: list[WorkflowEvent] = []
    listening = Services.create(
        services.db, clock, services.handover.calendar, event_subscribers=[heard.append]
    )
    h = await open_handover(listening, "Evented")
    assert [(e.kind, e.handover_id) for e in heard] == [("HANDOVER_OPENED", h.id)]
    with pytest.raises(Exception, match="not allowed"):
        await listening.handover.complete(ADMIN, h.id, h.version)
    assert len(heard) == 1  # a failed step writes and delivers nothing
    for advance in PATH[:4]:
        h = await advance(listening, h, clock)
    assert [e.kind for e in heard] == [
        "HANDOVER_OPENED",
        "STEP_DONE",
        "STEP_DONE",
        "STEP_DONE",
        "STEP_DONE",
        "STEP_DONE",
        "COMPLETED",
    ]
    assert [e.payload.get("step") for e in heard[1:]] == [
        "submitHandbook",
        "reviewHandbook",
        "recordHandoverMeeting",
        "recordHandoverMeeting",
        "notifyCustomer",
        "completeHandover",
    ]
    assert [e.id for e in heard] == sorted(e.id for e in heard)
    page = await gql.data(
        "tm.li",
        """query($h: ID!) { workflowEvents(filter: {handoverId: $h}) {
        totalCount edges { node { kind customerId payload } } } }""",
        {"h": h.id},
    )
    nodes = [e["node"] for e in page["workflowEvents"]["edges"]]
    assert [n["kind"] for n in nodes] == [e.kind for e in heard]
    assert nodes[-1]["payload"] == {"status": "COMPLETED", "step": "completeHandover"}


async def test_a_failing_subscriber_does_not_fail_the_step(
    services: Services, admin: str, clock: FixedClock
) -> None:
    def broken(event: WorkflowEvent) -> None:
        raise RuntimeError("integration down")

    listening = Services.create(services.db, clock, event_subscribers=[broken])
    h = await open_handover(listening, "Robust")
    h = await listening.handover.submit_handbook(ADMIN, h.id, h.version, HANDBOOK)
    assert h.status.value == "HANDBOOK_SUBMITTED"


async def test_the_sweep_records_due_soon_and_overdue_once_per_deadline(
    gql: GraphQLClient, services: Services, admin: str, clock: FixedClock
) -> None:
    heard: list[WorkflowEvent] = []
    listening = Services.create(services.db, clock, event_subscribers=[heard.append])
    first = await open_handover(listening, "First")
    await open_handover(listening, "Second")
    heard.clear()
    assert await listening.handover.sweep_deadlines() == {"DUE_SOON": 0, "OVERDUE": 0}
    clock.advance(timedelta(days=2))  # Wednesday: the handbooks are due Thursday
    assert await listening.handover.sweep_deadlines() == {"DUE_SOON": 2, "OVERDUE": 0}
    assert await listening.handover.sweep_deadlines() == {"DUE_SOON": 0, "OVERDUE": 0}
    clock.advance(timedelta(days=2))  # Friday: both late
    await listening.handover.submit_handbook(ADMIN, first.id, first.version, HANDBOOK)
    heard.clear()
    # The first one's pending step is now the review (due Monday): due soon; the second late.
    assert await listening.handover.sweep_deadlines() == {"DUE_SOON": 1, "OVERDUE": 1}
    assert sorted((e.kind, e.payload["step"]) for e in heard) == [
        ("DUE_SOON", "reviewHandbook"),
        ("OVERDUE", "submitHandbook"),
    ]
    assert await listening.handover.sweep_deadlines() == {"DUE_SOON": 0, "OVERDUE": 0}


async def test_workflow_events_follow_the_customer_scope(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    await services.users.create(Actor.system(), "tm.zhao", "Zhao", roles=["team_manager"])
    await open_handover(services, "East")
    query = "{ workflowEvents { totalCount } }"
    assert (await gql.data("tm.li", query))["workflowEvents"]["totalCount"] == 1
    assert (await gql.data("tm.zhao", query))["workflowEvents"]["totalCount"] == 0
    body = await gql.execute("am.chen", query)
    assert error_codes(body) == ["FORBIDDEN"]


async def test_a_plugin_hears_every_event_and_adds_its_holidays(
    services: Services, admin: str, clock: FixedClock
) -> None:
    import types

    from core.plugins import register
    from sdk import hookimpl

    heard: list[WorkflowEvent] = []
    partner = types.ModuleType("partner_plugin")
    partner.baton_workflow_event = hookimpl(lambda event: heard.append(event))  # type: ignore[attr-defined]
    # Opened Monday 2 March: without holidays the handbook is due Thursday 5 March.
    partner.baton_holidays = hookimpl(  # type: ignore[attr-defined]
        lambda: [clock.now().date() + timedelta(days=1)]
    )
    plugins = register([("partner", partner, None)])
    with_plugin = Services.create(services.db, clock, plugins=plugins)
    h = await open_handover(with_plugin, "Heard")
    assert [(e.kind, e.handover_id) for e in heard] == [("HANDOVER_OPENED", h.id)]
    assert h.due_at is not None
    assert h.due_at.date().isoformat() == "2026-03-06"  # Tuesday was a holiday
