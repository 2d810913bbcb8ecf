"""A handover is visible to its parties from the approval on, whatever their row scope, and
every step answers each person at each state as CONTRACT.md says: NOT_FOUND to someone who
cannot see the handover, FORBIDDEN to a viewer who is not the step's party, INVALID_STATE
(with the state) to the party at the wrong time. Over HTTP, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from core.clock import FixedClock
from core.domain import Handover
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes
from tests.test_handover import HANDBOOK
from tests.test_handover_workflow import ADMIN, ALLOWED_FROM, PATH, STATES, STEP_INPUTS

# Written out from CONTRACT.md and the default roles, not read from the code.
ACTORS = {
    "outgoing": "am.chen",  # account manager, reports to tm.li
    "incoming": "am.zhou",  # account manager in another team (tm.zhao's)
    "reviewer": "tm.li",  # the outgoing owner's manager, who approved the request
    "unrelated": "am.lin",  # account manager in tm.zhao's team, no part in it
    "director": "sd.wang",
}
AM_STEPS = {"submitHandbook", "recordHandoverMeeting", "notifyCustomer", "submitHandoverFeedback"}
CALLS = {
    "outgoing": AM_STEPS,
    "incoming": AM_STEPS,
    "unrelated": AM_STEPS,
    "reviewer": set(STEP_INPUTS),
    "director": set(STEP_INPUTS),
}
MANAGER = {"reviewer", "director"}
PARTY = {
    "submitHandbook": {"outgoing"},
    "reviewHandbook": MANAGER,
    "recordHandoverMeeting": {"outgoing"},
    "notifyCustomer": {"outgoing"},
    "completeHandover": MANAGER,
    "submitHandoverFeedback": {"incoming"},
    "recordSatisfaction": MANAGER,
    "cancelHandover": MANAGER,
}
AFTER = {
    "submitHandbook": "HANDBOOK_SUBMITTED",
    "reviewHandbook": "HANDBOOK_APPROVED",
    "notifyCustomer": "CUSTOMER_NOTIFIED",
    "completeHandover": "COMPLETED",
    "submitHandoverFeedback": "FEEDBACK_RECEIVED",
    "recordSatisfaction": "CLOSED",
    "cancelHandover": "CANCELLED",
}
OWNED_BY_INCOMING = {"COMPLETED", "FEEDBACK_RECEIVED", "CLOSED"}
WITH_HANDBOOK = {"HANDBOOK_SUBMITTED", "HANDBOOK_APPROVED", "CUSTOMER_NOTIFIED"} | OWNED_BY_INCOMING
WITH_MEETINGS = {"CUSTOMER_NOTIFIED"} | OWNED_BY_INCOMING


def expected(who: str, step: str, state: str) -> str:
    """The answer ``who`` gets for ``step`` at ``state``: an error code, or the new state."""
    if step not in CALLS[who]:
        return "FORBIDDEN"  # the role may not call the operation at all
    if who == "unrelated":
        return "NOT_FOUND"
    if who not in PARTY[step]:
        return "FORBIDDEN"
    if state not in ALLOWED_FROM[step]:
        return "INVALID_STATE"
    return AFTER.get(step, state)


def reads_customer(who: str, state: str) -> bool:
    """Whether ``who`` reads the handover's customer at ``state`` (the row scopes, plus the
    incoming owner from approval until completion or cancellation)."""
    if who == "director":
        return True
    if who == "incoming":
        return state != "CANCELLED"
    return state not in OWNED_BY_INCOMING  # the outgoing owner and their manager, until then


VIEW = """query($id: ID!) { node(id: $id) { ... on Handover { id status
  handbook { profileSummary } meetings { kind } deadlines { step } customer { name } } } }"""
LIST = "{ handovers(first: 100) { edges { node { id } } } }"
STEP = (
    "mutation($input: {type}!) {{ {name}(input: $input) {{ handover {{ id version status }} }} }}"
)


@pytest.fixture
async def people(services: Services, admin: str) -> None:
    """Two teams: tm.li with am.chen and am.wu, tm.zhao with am.zhou and am.lin."""
    system = Actor.system()
    await services.users.create(system, "sd.wang", "Wang", roles=["sales_director"])
    await services.users.create(system, "tm.zhao", "Zhao", roles=["team_manager"], team="north")
    for uid in ("am.zhou", "am.lin"):
        await services.users.create(
            system, uid, uid, roles=["account_manager"], manager_id="tm.zhao", team="north"
        )


async def opened(services: Services, name: str, to_owner: str = "am.zhou") -> Handover:
    """A MEDIUM customer of am.chen moving to ``to_owner``, approved by tm.li."""
    customer = await services.customers.create(
        ADMIN, {"name": name, "value_tier": "MEDIUM"}, owner_id="am.chen"
    )
    request = await services.reassignment.request(
        Actor("am.chen"), customer.id, to_owner, "NEEDS_CHANGE", "specialist"
    )
    _, handover = await services.reassignment.review(Actor("tm.li"), request.id, True, None)
    assert handover is not None
    return handover


async def handover_in(services: Services, state: str, clock: FixedClock, name: str) -> Handover:
    h = await opened(services, name)
    if state == "CANCELLED":
        return await services.handover.cancel(ADMIN, h.id, h.version, "no longer needed")
    for advance in PATH[: STATES.index(state)]:
        h = await advance(services, h, clock)
    return h


async def take(gql: GraphQLClient, user: str, step: str, h: Handover) -> dict[str, Any]:
    input_type, values = STEP_INPUTS[step]
    return await gql.execute(
        user,
        STEP.format(type=input_type, name=step),
        {"input": {"handoverId": h.id, "expectedVersion": h.version, **values}},
    )


@pytest.mark.parametrize("state", STATES)
async def test_each_party_at_each_state_for_each_step(
    gql: GraphQLClient, services: Services, people: None, clock: FixedClock, state: str
) -> None:
    h = await handover_in(services, state, clock, f"Parties {state}")
    customer_name = f"Parties {state}"

    for who, user in ACTORS.items():
        body = await gql.execute(user, VIEW, {"id": h.id})
        listed = await gql.data(user, LIST)
        ids = [e["node"]["id"] for e in listed["handovers"]["edges"]]
        if who == "unrelated":
            assert error_codes(body) == ["NOT_FOUND"] and h.id not in ids, (who, body)
            continue
        assert h.id in ids, who
        node = body["data"]["node"]
        assert node["status"] == state
        assert (node["handbook"] is not None) == (state in WITH_HANDBOOK), who
        assert len(node["meetings"]) == (2 if state in WITH_MEETINGS else 0), who
        assert node["deadlines"][0]["step"] == "submitHandbook"
        if reads_customer(who, state):
            assert node["customer"] == {"name": customer_name}, (who, body)
        else:
            assert node["customer"] is None and error_codes(body) == ["NOT_FOUND"], (who, body)

    successes = []
    for step in STEP_INPUTS:
        for who, user in ACTORS.items():
            want = expected(who, step, state)
            if want in STATES:
                successes.append((who, step, want))
                continue
            body = await take(gql, user, step, h)
            assert error_codes(body) == [want], (who, step, body)
            if want == "INVALID_STATE":
                assert body["errors"][0]["extensions"]["state"] == state, (who, step)
    after = await gql.data("admin", VIEW, {"id": h.id})
    assert after["node"]["status"] == state  # every refusal wrote nothing
    async with services.db.reader() as session:
        assert (await session.get(Handover, h.id)).version == h.version  # type: ignore[union-attr]

    # Each allowed (party, step) on a handover of its own, in this state.
    for n, (who, step, want) in enumerate(successes):
        fresh = h if n == 0 else await handover_in(services, state, clock, f"{state} {n}")
        body = await take(gql, ACTORS[who], step, fresh)
        assert "errors" not in body, (who, step, body)
        assert body["data"][step]["handover"]["status"] == want, (who, step)


CUSTOMER = "query($id: ID!) { customer(id: $id) { name annualRevenue owner { id } } }"
MINE = "{ customers(first: 100) { totalCount edges { node { id } } } }"


async def test_the_new_owner_studies_the_handbook_and_meetings_before_taking_over(
    gql: GraphQLClient, services: Services, people: None, clock: FixedClock
) -> None:
    """The seeds' story: am.zhou reads the handbook, joins the briefing and the three-party
    meeting, reads the customer under the account manager's rules, may not change it yet,
    and is told the state when giving feedback too early."""
    h = await handover_in(services, "HANDBOOK_APPROVED", clock, "Seeded")
    for kind in ("BRIEFING", "THREE_PARTY"):
        h = await services.handover.record_meeting(
            Actor("am.chen"), h.id, h.version, kind, clock.now(), f"{kind} with am.zhou"
        )
    view = await gql.data(
        "am.zhou",
        """query($id: ID!) { node(id: $id) { ... on Handover { status fromOwner { id }
        toOwner { id } handbook { openItems riskWarnings } meetings { kind notes } } } }""",
        {"id": h.id},
    )
    assert view["node"] == {
        "status": "HANDBOOK_APPROVED",
        "fromOwner": {"id": "am.chen"},
        "toOwner": {"id": "am.zhou"},
        "handbook": {"openItems": HANDBOOK["openItems"], "riskWarnings": HANDBOOK["riskWarnings"]},
        "meetings": [
            {"kind": "BRIEFING", "notes": "BRIEFING with am.zhou"},
            {"kind": "THREE_PARTY", "notes": "THREE_PARTY with am.zhou"},
        ],
    }
    customer = await gql.data("am.zhou", CUSTOMER, {"id": h.customer_id})
    assert customer["customer"]["owner"] == {"id": "am.chen"}  # still am.chen's
    listed = await gql.data("am.zhou", MINE)
    assert [e["node"]["id"] for e in listed["customers"]["edges"]] == [h.customer_id]
    update = await gql.execute(
        "am.zhou",
        """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
        customer { id } } }""",
        {"input": {"id": h.customer_id, "expectedVersion": 1, "invoiceRequirements": "x"}},
    )
    assert error_codes(update) == ["FORBIDDEN"]  # reads it; it is not theirs to change yet
    ask = await gql.execute(
        "am.zhou",
        """mutation($input: RequestReassignmentInput!) { requestReassignment(input: $input) {
        request { id } } }""",
        {"input": {"customerId": h.customer_id, "toOwnerId": "am.lin", "trigger": "NEEDS_CHANGE"}},
    )
    assert error_codes(ask) == ["FORBIDDEN"]
    early = await take(gql, "am.zhou", "submitHandoverFeedback", h)
    assert error_codes(early) == ["INVALID_STATE"]
    assert early["errors"][0]["extensions"]["state"] == "HANDBOOK_APPROVED"
    assert early["data"] == {"submitHandoverFeedback": None}

    h = await services.handover.cancel(ADMIN, h.id, h.version, "customer stays")
    gone = await gql.execute("am.zhou", CUSTOMER, {"id": h.customer_id})
    assert error_codes(gone) == ["NOT_FOUND"]
    assert (await gql.data("am.zhou", MINE))["customers"]["totalCount"] == 0
    kept = await gql.data("am.zhou", "query($id: ID!) { node(id: $id) { id } }", {"id": h.id})
    assert kept["node"] == {"id": h.id}  # the handover itself stays visible to its parties


async def test_field_rules_still_apply_to_a_party(
    gql: GraphQLClient, services: Services, people: None, clock: FixedClock
) -> None:
    """A party reads the customer under their own role: a narrow role with OWN scope reads
    the name and nothing else, and finance (a party too) still cannot read revenue."""
    system = Actor.system()
    for obj, action in (
        ("Customer", "scope:OWN"),
        ("Customer.name", "read"),
        ("Query.customer", "call"),
    ):
        await services.policies.grant(system, "trainee", obj, action)
    await services.users.create(system, "tr.ma", "Ma", roles=["trainee"])
    await services.users.create(system, "fin.he", "He", roles=["finance"])
    # Seeing the handover needs the role's own permissions too: the trainee may not call
    # ``node``, finance may but not reach handovers (``Query.handovers``).
    for user, handover_read in (("tr.ma", "FORBIDDEN"), ("fin.he", "NOT_FOUND")):
        h = await opened(services, f"For {user}", to_owner=user)
        body = await gql.execute(user, CUSTOMER, {"id": h.customer_id})
        assert body["data"]["customer"]["name"] == f"For {user}"
        assert body["data"]["customer"]["annualRevenue"] is None
        denied = {e["extensions"].get("object") for e in body["errors"]}
        assert "Customer.annualRevenue" in denied, body
        node = await gql.execute(user, "query($id: ID!) { node(id: $id) { id } }", {"id": h.id})
        assert error_codes(node) == [handover_read]


async def test_the_reviewer_includes_whoever_approved(
    gql: GraphQLClient, services: Services, people: None, clock: FixedClock
) -> None:
    """am.chen leaves with no backup: the customer waits unowned, tm.li approves am.zhou. The
    handover has no outgoing owner and so no outgoing owner's manager, yet tm.li, who
    approved it, still follows it after completion, when the customer is out of his scope."""
    await services.customers.create(
        ADMIN,
        {"name": "Left", "value_tier": "LOW", "first_contact_id": "am.chen"},
        owner_id="am.chen",
    )
    _, [request], _ = await services.users.deactivate(ADMIN, "am.chen", "left the company")
    approved = await gql.data(
        "tm.li",
        """mutation($id: ID!) { reviewReassignment(input: {requestId: $id, decision: APPROVE,
        toOwnerId: "am.zhou"}) { handover { id version fromOwner { id } } } }""",
        {"id": request.id},
    )
    handover = approved["reviewReassignment"]["handover"]
    assert handover["fromOwner"] is None
    h = await services.handover.submit_handbook(ADMIN, handover["id"], 1, HANDBOOK)
    h = await services.handover.review_handbook(ADMIN, h.id, h.version, True, None)
    for kind in ("BRIEFING", "SIMULATION"):
        h = await services.handover.record_meeting(ADMIN, h.id, h.version, kind, clock.now(), None)
    h = await services.handover.notify_customer(ADMIN, h.id, h.version)
    h = await services.handover.complete(ADMIN, h.id, h.version)
    view = await gql.execute("tm.li", VIEW, {"id": h.id})
    assert view["data"]["node"]["status"] == "COMPLETED"
    assert error_codes(view) == ["NOT_FOUND"]  # the customer: am.zhou's now, not tm.li's team
    feedback = await take(gql, "tm.li", "recordSatisfaction", h)
    assert error_codes(feedback) == ["FORBIDDEN"]  # sees it; satisfaction is the manager's
    events = await gql.data(
        "tm.li",
        "query($h: ID!) { workflowEvents(filter: {handoverId: $h}) { totalCount } }",
        {"h": h.id},
    )
    assert events["workflowEvents"]["totalCount"] == 7


async def test_workflow_events_reach_the_parties_and_no_one_else(
    gql: GraphQLClient, services: Services, people: None, clock: FixedClock
) -> None:
    h = await handover_in(services, "COMPLETED", clock, "Evented")
    query = "query($h: ID!) { workflowEvents(filter: {handoverId: $h}) { totalCount } }"
    # tm.li manages the outgoing owner: the customer left his team's scope at completion.
    assert (await gql.data("tm.li", query, {"h": h.id}))["workflowEvents"]["totalCount"] == 7
    # tm.zhao takes no part, and sees the events once the customer is in his team's scope.
    assert (await gql.data("tm.zhao", query, {"h": h.id}))["workflowEvents"]["totalCount"] == 7
    other = await opened(services, "Not yet")
    assert (await gql.data("tm.zhao", query, {"h": other.id}))["workflowEvents"]["totalCount"] == 0


async def counted(gql: GraphQLClient, services: Services, query: str) -> tuple[dict[str, Any], int]:
    """The data of ``query`` as tm.li, and the SQL statements it took (after a warm-up)."""
    await gql.data("tm.li", query)
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        data = await gql.data("tm.li", query)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return data, statements


REQUESTS = """{ reassignmentRequests(first: 100) { edges { node { id status
  handover { id status toOwner { id } } } } } }"""


async def test_a_request_leads_to_the_handover_its_approval_opened(
    gql: GraphQLClient, services: Services, people: None
) -> None:
    approved = [await opened(services, f"Approved {n}") for n in range(3)]
    customer = await services.customers.create(
        ADMIN, {"name": "Pending", "value_tier": "LOW"}, owner_id="am.chen"
    )
    pending = await services.reassignment.request(
        Actor("am.chen"), customer.id, "am.wu", "NEEDS_CHANGE", None
    )
    rejected_customer = await services.customers.create(
        ADMIN, {"name": "Rejected", "value_tier": "LOW"}, owner_id="am.chen"
    )
    rejected = await services.reassignment.request(
        Actor("am.chen"), rejected_customer.id, "am.wu", "NEEDS_CHANGE", None
    )
    await services.reassignment.review(Actor("tm.li"), rejected.id, False, "not now")

    data, first = await counted(gql, services, REQUESTS)
    by_status: dict[str, list[Any]] = {}
    for edge in data["reassignmentRequests"]["edges"]:
        node = edge["node"]
        by_status.setdefault(node["status"], []).append(node["handover"])
    assert by_status["PENDING"] == [None] and by_status["REJECTED"] == [None]
    assert sorted(h["id"] for h in by_status["APPROVED"]) == sorted(h.id for h in approved)
    assert all(h["toOwner"] == {"id": "am.zhou"} for h in by_status["APPROVED"])
    # Three more approved requests cost no more statements: one load for all handovers.
    for n in range(3):
        await opened(services, f"More {n}")
    again, second = await counted(gql, services, REQUESTS)
    assert len(again["reassignmentRequests"]["edges"]) == 8
    assert second == first
    assert pending.id in [e["node"]["id"] for e in data["reassignmentRequests"]["edges"]]


async def test_the_handover_of_a_request_is_authorised_like_other_handover_reads(
    gql: GraphQLClient, services: Services, people: None
) -> None:
    """am.zhou, receiving the customer, reads its requests: the one that opened his handover
    leads to it; an earlier one's cancelled handover to am.wu is not his to see."""
    earlier = await opened(services, "Twice", to_owner="am.wu")
    await services.handover.cancel(ADMIN, earlier.id, earlier.version, "am.wu moved on")
    request = await services.reassignment.request(
        Actor("am.chen"), earlier.customer_id, "am.zhou", "NEEDS_CHANGE", None
    )
    _, current = await services.reassignment.review(Actor("tm.li"), request.id, True, None)
    assert current is not None
    query = "query($id: ID!) { node(id: $id) { ... on ReassignmentRequest { handover { id } } } }"
    mine = await gql.data("am.zhou", query, {"id": request.id})
    assert mine["node"] == {"handover": {"id": current.id}}
    body = await gql.execute("am.zhou", query, {"id": earlier.request_id})
    assert body["data"]["node"] == {"handover": None}
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["errors"][0]["path"] == ["node", "handover"]
    theirs = await gql.data("am.wu", "query($id: ID!) { node(id: $id) { id } }", {"id": earlier.id})
    assert theirs["node"] == {"id": earlier.id}  # a party of the cancelled one
