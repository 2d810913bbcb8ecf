"""The handover workflow over HTTP: every step, its actor, its deadline, and completion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.clock import FixedClock
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

FIELDS = """handover { id version status dueAt overdue satisfaction
  handbook { profileSummary openItems strategyAdvice riskWarnings }
  feedback { clearItems pendingItems helpNeeded } meetings { kind }
  deadlines { step dueAt doneAt } customer { id owner { id } } }"""
HANDBOOK = {
    "profileSummary": "Family-owned, 3 plants",
    "openItems": "Renewal due in May",
    "strategyAdvice": "Meet the CFO quarterly",
    "riskWarnings": "Competitor pricing",
}


@pytest.fixture
async def opened(services: Services, admin: str) -> dict[str, str]:
    """Handovers from am.chen to am.wu (approved by tm.li) for a MEDIUM and a STRATEGIC customer."""
    await services.users.create(Actor.system(), "sd.wang", "Wang", roles=["sales_director"])
    ids = {}
    for tier in ("MEDIUM", "STRATEGIC"):
        customer = await services.customers.create(
            Actor("admin"), {"name": tier, "value_tier": tier}, owner_id="am.chen"
        )
        request = await services.reassignment.request(
            Actor("am.chen"), customer.id, "am.wu", "NEEDS_CHANGE", "specialist needed"
        )
        _, handover = await services.reassignment.review(Actor("sd.wang"), request.id, True, None)
        assert handover is not None
        ids[tier] = handover.id
    return ids


async def step(
    gql: GraphQLClient, user: str, name: str, input_type: str, **input_: Any
) -> dict[str, Any]:
    return await gql.execute(
        user,
        f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {FIELDS} }} }}",
        {"input": input_},
    )


async def run(
    gql: GraphQLClient,
    user: str,
    name: str,
    input_type: str,
    handover: dict[str, Any],
    **input_: Any,
) -> dict[str, Any]:
    """Take a step that must succeed; return the handover after it."""
    body = await step(
        gql,
        user,
        name,
        input_type,
        handoverId=handover["id"],
        expectedVersion=handover["version"],
        **input_,
    )
    assert "errors" not in body, body["errors"]
    return body["data"][name]["handover"]  # type: ignore[no-any-return]


async def test_the_whole_lifecycle(gql: GraphQLClient, opened: dict, clock: FixedClock) -> None:
    h = {"id": opened["MEDIUM"], "version": 1}
    h = await run(gql, "am.chen", "submitHandbook", "SubmitHandbookInput", h, **HANDBOOK)
    assert (
        h["status"] == "HANDBOOK_SUBMITTED" and h["handbook"]["openItems"] == "Renewal due in May"
    )
    assert h["dueAt"] == "2026-03-03T09:00:00+00:00"  # review: one working day
    h = await run(gql, "tm.li", "reviewHandbook", "ReviewHandbookInput", h, decision="APPROVE")
    assert h["status"] == "HANDBOOK_APPROVED" and h["dueAt"] is None
    for kind in ("BRIEFING", "SIMULATION"):
        h = await run(
            gql,
            "am.chen",
            "recordHandoverMeeting",
            "RecordHandoverMeetingInput",
            h,
            kind=kind,
            heldAt=clock.now().isoformat(),
        )
    h = await run(gql, "am.chen", "notifyCustomer", "HandoverStepInput", h)
    assert h["status"] == "CUSTOMER_NOTIFIED"
    h = await run(gql, "tm.li", "completeHandover", "HandoverStepInput", h)
    assert h["status"] == "COMPLETED"
    assert h["customer"]["owner"] == {"id": "am.wu"}  # ownership switched
    assert h["dueAt"] == "2026-03-09T09:00:00+00:00"  # feedback: five working days
    h = await run(
        gql,
        "am.wu",
        "submitHandoverFeedback",
        "SubmitHandoverFeedbackInput",
        h,
        clearItems="Contacts",
        pendingItems="Pricing",
        helpNeeded="Plant visit",
    )
    h = await run(gql, "tm.li", "recordSatisfaction", "RecordSatisfactionInput", h, score=5)
    assert (h["status"], h["satisfaction"], h["dueAt"]) == ("CLOSED", 5, None)
    assert all(d["doneAt"] for d in h["deadlines"])
    history = await gql.data(
        "admin",
        """query($id: ID!) { customer(id: $id) {
        ownershipHistory { owner { id } assignedBy until } } }""",
        {"id": h["customer"]["id"]},
    )
    periods = history["customer"]["ownershipHistory"]
    assert [(p["owner"]["id"], p["assignedBy"]) for p in periods] == [
        ("am.chen", "MANUAL"),
        ("am.wu", "HANDOVER"),
    ]
    assert periods[0]["until"] is not None and periods[1]["until"] is None


async def test_invalid_transitions_write_nothing(gql: GraphQLClient, opened: dict) -> None:
    h = {"id": opened["MEDIUM"], "version": 1}
    for name, input_type, extra in (
        ("notifyCustomer", "HandoverStepInput", {}),
        ("completeHandover", "HandoverStepInput", {}),
        ("recordSatisfaction", "RecordSatisfactionInput", {"score": 4}),
    ):
        user = "am.chen" if name == "notifyCustomer" else "tm.li"
        body = await step(
            gql, user, name, input_type, handoverId=h["id"], expectedVersion=1, **extra
        )
        assert error_codes(body) == ["INVALID_STATE"], name
        assert body["errors"][0]["extensions"]["state"] == "HANDBOOK_PENDING"
    stale = await step(
        gql,
        "am.chen",
        "submitHandbook",
        "SubmitHandbookInput",
        handoverId=h["id"],
        expectedVersion=7,
        **HANDBOOK,
    )
    assert error_codes(stale) == ["CONFLICT"]


async def test_handbook_needs_every_section_and_the_right_people(
    gql: GraphQLClient, opened: dict
) -> None:
    h = {"id": opened["MEDIUM"], "version": 1}
    body = await step(
        gql,
        "am.chen",
        "submitHandbook",
        "SubmitHandbookInput",
        handoverId=h["id"],
        expectedVersion=1,
        **{**HANDBOOK, "riskWarnings": " "},
    )
    assert body["errors"][0]["extensions"]["fields"] == [
        {"path": "input.riskWarnings", "reason": "must not be empty"}
    ]
    body = await step(
        gql,
        "tm.li",
        "submitHandbook",
        "SubmitHandbookInput",
        handoverId=h["id"],
        expectedVersion=1,
        **HANDBOOK,
    )
    assert error_codes(body) == ["FORBIDDEN"]  # only the outgoing owner
    h = await run(gql, "am.chen", "submitHandbook", "SubmitHandbookInput", h, **HANDBOOK)
    back = await run(
        gql,
        "tm.li",
        "reviewHandbook",
        "ReviewHandbookInput",
        h,
        decision="REJECT",
        comment="add the open complaints",
    )
    assert back["status"] == "HANDBOOK_PENDING"


async def test_strategic_completion_needs_three_party_meeting_and_early_notice(
    gql: GraphQLClient, opened: dict, clock: FixedClock
) -> None:
    h = {"id": opened["STRATEGIC"], "version": 1}
    h = await run(gql, "am.chen", "submitHandbook", "SubmitHandbookInput", h, **HANDBOOK)
    h = await run(gql, "sd.wang", "reviewHandbook", "ReviewHandbookInput", h, decision="APPROVE")
    for kind in ("BRIEFING", "BRIEFING"):
        h = await run(
            gql,
            "am.chen",
            "recordHandoverMeeting",
            "RecordHandoverMeetingInput",
            h,
            kind=kind,
            heldAt=clock.now().isoformat(),
        )
    h = await run(gql, "am.chen", "notifyCustomer", "HandoverStepInput", h)
    body = await step(
        gql,
        "sd.wang",
        "completeHandover",
        "HandoverStepInput",
        handoverId=h["id"],
        expectedVersion=h["version"],
    )
    message = body["errors"][0]["message"]
    assert "three-party meeting" in message and "7 days" in message
    h = await run(
        gql,
        "am.chen",
        "recordHandoverMeeting",
        "RecordHandoverMeetingInput",
        h,
        kind="THREE_PARTY",
        heldAt=clock.now().isoformat(),
    )
    clock.advance(timedelta(days=7))
    h = await run(gql, "sd.wang", "completeHandover", "HandoverStepInput", h)
    assert h["customer"]["owner"] == {"id": "am.wu"}


async def test_cancel_stops_the_handover(gql: GraphQLClient, opened: dict) -> None:
    h = await run(
        gql,
        "tm.li",
        "cancelHandover",
        "CancelHandoverInput",
        {"id": opened["MEDIUM"], "version": 1},
        reason="customer asked to stay",
    )
    assert h["status"] == "CANCELLED" and h["customer"]["owner"] == {"id": "am.chen"}


async def test_a_meeting_is_audited_and_a_new_version_even_at_the_same_instant(
    gql: GraphQLClient, opened: dict, clock: FixedClock
) -> None:
    """Recording a meeting changes no column of the handover: it still gets an audit entry
    and a new version, so a second writer holding the old version gets a CONFLICT (the clock
    stands still here, as two requests in the same instant would see it)."""
    h = {"id": opened["MEDIUM"], "version": 1}
    h = await run(gql, "am.chen", "submitHandbook", "SubmitHandbookInput", h, **HANDBOOK)
    h = await run(gql, "tm.li", "reviewHandbook", "ReviewHandbookInput", h, decision="APPROVE")
    held = clock.now().isoformat()
    after = await run(
        gql,
        "am.chen",
        "recordHandoverMeeting",
        "RecordHandoverMeetingInput",
        h,
        kind="BRIEFING",
        heldAt=held,
        notes="met the buyer",
    )
    assert after["version"] == h["version"] + 1
    stale = await step(
        gql,
        "am.chen",
        "recordHandoverMeeting",
        "RecordHandoverMeetingInput",
        handoverId=h["id"],
        expectedVersion=h["version"],
        kind="SIMULATION",
        heldAt=held,
    )
    assert error_codes(stale) == ["CONFLICT"]
    entries = await gql.data(
        "admin",
        """query($id: ID!) { auditLog(filter: {entityId: $id, action: "recordHandoverMeeting"})
        { edges { node { entityType changes { field before after redacted } } } } }""",
        {"id": h["id"]},
    )
    (entry,) = [e["node"] for e in entries["auditLog"]["edges"]]
    assert entry["entityType"] == "Handover"
    assert entry["changes"] == [
        {
            "field": "meetings",
            "before": None,
            "after": {"kind": "BRIEFING", "heldAt": held, "notes": "met the buyer"},
            "redacted": False,
        }
    ]
