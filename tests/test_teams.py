"""Account teams: who may change a team, what a member sees, the team in the handbook and
through a handover, and a deactivated member leaving every team with word to the owners.
Over HTTP and through the services, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.clock import FixedClock
from core.domain import MeetingKind, TeamRole, WorkflowEventRecord
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

ADMIN = Actor("admin")
ADD = """mutation($input: AddTeamMemberInput!) { addTeamMember(input: $input) {
  customer { team { role user { id } } } } }"""
REMOVE = """mutation($input: RemoveTeamMemberInput!) { removeTeamMember(input: $input) {
  customer { team { role user { id } } } } }"""
TEAM = """query($id: ID!) { customer(id: $id) { name annualRevenue team { role user { id } } } }"""


@pytest.fixture
async def account(services: Services, admin: str) -> str:
    """Acme, owned by am.chen (who reports to tm.li); tr.ma has a narrow role (names only, OWN
    scope); sd.wang is a sales director."""
    system = Actor.system()
    for obj, action in (
        ("Customer", "scope:OWN"),
        ("Customer.name", "read"),
        ("Query.customer", "call"),
        ("Query.customers", "call"),
    ):
        await services.policies.grant(system, "trainee", obj, action)
    await services.users.create(system, "tr.ma", "Ma", roles=["trainee"])
    await services.users.create(system, "sd.wang", "Wang", roles=["sales_director"])
    customer = await services.customers.create(ADMIN, {"name": "Acme"}, owner_id="am.chen")
    return customer.id


def _add(customer_id: str, user_id: str, role: str) -> dict[str, Any]:
    return {"input": {"customerId": customer_id, "userId": user_id, "role": role}}


async def test_the_owner_and_their_manager_change_the_team_and_others_may_not(
    gql: GraphQLClient, account: str
) -> None:
    body = await gql.data("am.chen", ADD, _add(account, "tr.ma", "SERVICE"))
    assert body["addTeamMember"]["customer"]["team"] == [
        {"role": "SERVICE", "user": {"id": "tr.ma"}}
    ]
    body = await gql.data("tm.li", ADD, _add(account, "am.wu", "TECHNICAL"))
    assert {m["user"]["id"] for m in body["addTeamMember"]["customer"]["team"]} == {
        "tr.ma",
        "am.wu",
    }
    # A sales director and an admin see the account but are neither owner nor manager.
    for user in ("sd.wang", "admin"):
        refused = await gql.execute(user, ADD, _add(account, "sd.wang", "EXECUTIVE_SPONSOR"))
        assert error_codes(refused) == ["FORBIDDEN"], user
    # am.wu is on the team (and so sees the account) but may not change it.
    refused = await gql.execute(
        "am.wu", REMOVE, {"input": {"customerId": account, "userId": "tr.ma"}}
    )
    assert error_codes(refused) == ["FORBIDDEN"]
    not_member = await gql.execute(
        "am.chen", REMOVE, {"input": {"customerId": account, "userId": "sd.wang"}}
    )
    assert error_codes(not_member) == ["BAD_USER_INPUT"]
    body = await gql.data("am.chen", REMOVE, {"input": {"customerId": account, "userId": "tr.ma"}})
    assert body["removeTeamMember"]["customer"]["team"] == [
        {"role": "TECHNICAL", "user": {"id": "am.wu"}}
    ]
    audit = await gql.data(
        "admin",
        """query($id: ID) { auditLog(filter: {entityId: $id}) {
          edges { node { action actor { id } changes { field before after } } } } }""",
        {"id": account},
    )
    team_entries = [
        (e["node"]["action"], e["node"]["actor"]["id"], e["node"]["changes"])
        for e in audit["auditLog"]["edges"]
        if e["node"]["action"] != "createCustomer"
    ]
    assert team_entries == [
        (
            "removeTeamMember",
            "am.chen",
            [{"field": "team", "before": {"user": "tr.ma", "role": "SERVICE"}, "after": None}],
        ),
        (
            "addTeamMember",
            "tm.li",
            [{"field": "team", "before": None, "after": {"user": "am.wu", "role": "TECHNICAL"}}],
        ),
        (
            "addTeamMember",
            "am.chen",
            [{"field": "team", "before": None, "after": {"user": "tr.ma", "role": "SERVICE"}}],
        ),
    ]


async def test_a_member_sees_the_account_within_their_own_field_rules(
    gql: GraphQLClient, services: Services, account: str
) -> None:
    before = await gql.execute("tr.ma", TEAM, {"id": account})
    assert error_codes(before) == ["NOT_FOUND"]
    await services.teams.add(Actor("am.chen"), account, "tr.ma", TeamRole.SERVICE)
    body = await gql.execute("tr.ma", TEAM, {"id": account})
    assert body["data"]["customer"]["name"] == "Acme"
    assert body["data"]["customer"]["annualRevenue"] is None
    assert {e["extensions"]["object"] for e in body["errors"]} == {
        "Customer.annualRevenue",
        "Customer.team",
    }
    listed = await gql.data("tr.ma", "{ customers { edges { node { name } } } }")
    assert listed["customers"]["edges"] == [{"node": {"name": "Acme"}}]
    # Reading is not writing: the member cannot update the account.
    await services.policies.grant(Actor.system(), "trainee", "Mutation.updateCustomer", "call")
    await services.policies.grant(Actor.system(), "trainee", "Customer.name", "write")
    update = await gql.execute(
        "tr.ma",
        """mutation($id: ID!) { updateCustomer(input: {id: $id, expectedVersion: 1,
          name: "Mine"}) { customer { name } } }""",
        {"id": account},
    )
    assert error_codes(update) == ["FORBIDDEN"]


async def test_the_team_is_in_the_handbook_and_survives_the_handover(
    gql: GraphQLClient, services: Services, account: str, clock: FixedClock
) -> None:
    await services.teams.add(Actor("am.chen"), account, "tr.ma", TeamRole.PRE_SALES)
    request = await services.reassignment.request(
        Actor("am.chen"), account, "am.wu", "NEEDS_CHANGE", "specialist needed"
    )
    _, h = await services.reassignment.review(Actor("tm.li"), request.id, True, None)
    assert h is not None
    sections = {
        "profileSummary": "Key buyer",
        "openItems": "None",
        "strategyAdvice": "Quarterly",
        "riskWarnings": "None",
    }
    h = await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, sections)
    handbook = await gql.data(
        "am.wu",
        """query($id: ID!) { node(id: $id) { ... on Handover {
          handbook { profileSummary team { role user { id } } } } } }""",
        {"id": h.id},
    )
    assert handbook["node"]["handbook"]["team"] == [{"role": "PRE_SALES", "user": {"id": "tr.ma"}}]
    h = await services.handover.review_handbook(Actor("tm.li"), h.id, h.version, True, None)
    for kind in (MeetingKind.BRIEFING, MeetingKind.SIMULATION):
        h = await services.handover.record_meeting(
            Actor("am.chen"), h.id, h.version, kind, clock.now(), None
        )
    h = await services.handover.notify_customer(Actor("am.chen"), h.id, h.version)
    h = await services.handover.complete(Actor("tm.li"), h.id, h.version)
    after = await gql.data("am.wu", TEAM, {"id": account})
    assert after["customer"]["team"] == [{"role": "PRE_SALES", "user": {"id": "tr.ma"}}]
    # The team still answers to the new owner, not the old one.
    refused = await gql.execute("am.chen", ADD, _add(account, "sd.wang", "EXECUTIVE_SPONSOR"))
    assert error_codes(refused) == ["NOT_FOUND"]
    assert "errors" not in await gql.execute(
        "am.wu", ADD, _add(account, "sd.wang", "EXECUTIVE_SPONSOR")
    )


async def test_a_deactivated_member_leaves_every_team_and_the_owners_are_told(
    gql: GraphQLClient, services: Services, account: str
) -> None:
    await services.users.create(Actor.system(), "am.zhou", "Zhou", roles=["account_manager"])
    other = await services.customers.create(ADMIN, {"name": "Beta"}, owner_id="am.zhou")
    await services.teams.add(Actor("am.chen"), account, "tr.ma", TeamRole.SERVICE)
    await services.teams.add(Actor("am.zhou"), other.id, "tr.ma", TeamRole.TECHNICAL)
    await services.users.deactivate(ADMIN, "tr.ma", "left the company")
    for customer_id in (account, other.id):
        assert (await gql.data("admin", TEAM, {"id": customer_id}))["customer"]["team"] == []
    async with services.db.reader() as session:
        events = list(
            await session.scalars(
                select(WorkflowEventRecord).where(WorkflowEventRecord.kind == "TEAM_MEMBER_REMOVED")
            )
        )
    assert {(e.customer_id, e.handover_id, e.payload["ownerId"]) for e in events} == {
        (account, None, "am.chen"),
        (other.id, None, "am.zhou"),
    }
    # am.chen's manager reads the event about am.chen's customer in the outbox, not the other.
    seen = await gql.data(
        "tm.li",
        """{ workflowEvents { edges { node { kind customerId handoverId payload } } } }""",
    )
    assert [e["node"]["customerId"] for e in seen["workflowEvents"]["edges"]] == [account]
