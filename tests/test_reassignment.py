"""Reassignment requests: who may ask, who must approve, and the handover an approval opens."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from core.calendar import WorkingCalendar
from core.clock import FixedClock
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

REQUEST = """mutation($input: RequestReassignmentInput!) {
  requestReassignment(input: $input) {
    request { id status trigger reason customer { id } fromOwner { id } toOwner { id }
              requestedBy { id } } } }"""
REVIEW = """mutation($input: ReviewReassignmentInput!) {
  reviewReassignment(input: $input) {
    request { id status reviewedBy { id } reviewComment }
    handover { id status dueAt overdue customer { id } fromOwner { id } toOwner { id } } } }"""


@pytest.fixture
async def customers(services: Services, admin: str) -> dict[str, str]:
    """A MEDIUM and a STRATEGIC customer owned by am.chen (who reports to tm.li)."""
    system = Actor.system()
    await services.users.create(system, "sd.wang", "Wang", roles=["sales_director"])
    await services.users.create(system, "tm.zhao", "Zhao", roles=["team_manager"])
    await services.users.create(system, "head.east", "Head", roles=["team_manager"])
    await services.users.create(
        system, "tm.deep", "Deep", roles=["team_manager"], manager_id="head.east"
    )
    await services.users.create(
        system, "am.deep", "Deep AM", roles=["account_manager"], manager_id="tm.deep"
    )
    ids = {
        "DEEP": (
            await services.customers.create(
                Actor("admin"), {"name": "Deep", "value_tier": "LOW"}, owner_id="am.deep"
            )
        ).id
    }
    for tier in ("MEDIUM", "STRATEGIC"):
        c = await services.customers.create(
            Actor("admin"), {"name": tier, "value_tier": tier}, owner_id="am.chen"
        )
        ids[tier] = c.id
    return ids


async def request(gql: GraphQLClient, customer_id: str, user: str = "am.chen") -> dict[str, Any]:
    data = await gql.data(
        user,
        REQUEST,
        {
            "input": {
                "customerId": customer_id,
                "toOwnerId": "am.wu",
                "trigger": "NEEDS_CHANGE",
                "reason": "needs an automotive specialist",
            }
        },
    )
    return data["requestReassignment"]["request"]  # type: ignore[no-any-return]


async def review(
    gql: GraphQLClient,
    user: str,
    request_id: str,
    decision: str = "APPROVE",
    comment: str | None = None,
) -> dict[str, Any]:
    return await gql.execute(
        user, REVIEW, {"input": {"requestId": request_id, "decision": decision, "comment": comment}}
    )


async def test_owner_requests_a_reassignment(gql: GraphQLClient, customers: dict) -> None:
    req = await request(gql, customers["MEDIUM"])
    assert req["status"] == "PENDING" and req["trigger"] == "NEEDS_CHANGE"
    assert (req["fromOwner"], req["toOwner"], req["requestedBy"]) == (
        {"id": "am.chen"},
        {"id": "am.wu"},
        {"id": "am.chen"},
    )
    body = await gql.execute(
        "am.chen",
        REQUEST,
        {
            "input": {
                "customerId": customers["MEDIUM"],
                "toOwnerId": "tm.li",
                "trigger": "PERFORMANCE",
            }
        },
    )
    assert error_codes(body) == ["INVALID_STATE"]
    assert body["errors"][0]["extensions"]["state"] == "REQUEST_PENDING"


async def test_managers_approve_ordinary_customers_and_a_handover_opens(
    gql: GraphQLClient, customers: dict
) -> None:
    req = await request(gql, customers["MEDIUM"])
    assert error_codes(await review(gql, "tm.zhao", req["id"])) == ["NOT_FOUND"]  # out of scope
    assert error_codes(await review(gql, "am.chen", req["id"])) == ["FORBIDDEN"]  # may not review
    body = await review(gql, "tm.li", req["id"], comment="agreed")
    result = body["data"]["reviewReassignment"]
    assert result["request"] == {
        "id": req["id"],
        "status": "APPROVED",
        "reviewedBy": {"id": "tm.li"},
        "reviewComment": "agreed",
    }
    handover = result["handover"]
    assert handover["status"] == "HANDBOOK_PENDING" and handover["overdue"] is False
    assert (handover["fromOwner"], handover["toOwner"]) == ({"id": "am.chen"}, {"id": "am.wu"})
    # Opened Monday 2026-03-02 09:00: the handbook is due three working days later.
    assert handover["dueAt"] == "2026-03-05T09:00:00+00:00"
    again = await review(gql, "tm.li", req["id"])
    assert error_codes(again) == ["INVALID_STATE"]
    assert again["errors"][0]["extensions"]["state"] == "APPROVED"


async def test_strategic_customers_need_a_sales_director(
    gql: GraphQLClient, customers: dict
) -> None:
    req = await request(gql, customers["STRATEGIC"])
    body = await review(gql, "tm.li", req["id"])
    assert error_codes(body) == ["FORBIDDEN"]
    assert "sales director" in body["errors"][0]["message"]
    assert "errors" not in await review(gql, "sd.wang", req["id"])


async def test_rejection_needs_a_reason_and_opens_nothing(
    gql: GraphQLClient, customers: dict
) -> None:
    req = await request(gql, customers["MEDIUM"])
    body = await review(gql, "tm.li", req["id"], "REJECT")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == "input.comment"
    result = (await review(gql, "tm.li", req["id"], "REJECT", "keep the relationship"))["data"]
    assert result["reviewReassignment"]["request"]["status"] == "REJECTED"
    assert result["reviewReassignment"]["handover"] is None


async def test_concurrent_approvals_open_one_handover(gql: GraphQLClient, customers: dict) -> None:
    req = await request(gql, customers["MEDIUM"])
    bodies = await asyncio.gather(*[review(gql, "tm.li", req["id"]) for _ in range(6)])
    assert sum("errors" not in b for b in bodies) == 1
    assert {c for b in bodies for c in error_codes(b)} <= {"INVALID_STATE", "CONFLICT"}
    data = await gql.data("tm.li", "{ handovers { totalCount } }")
    assert data["handovers"]["totalCount"] == 1


async def test_lists_show_requests_and_overdue_handovers(
    gql: GraphQLClient, customers: dict, clock: FixedClock
) -> None:
    req = await request(gql, customers["MEDIUM"])
    await request(gql, customers["STRATEGIC"])
    pending = await gql.data(
        "tm.li",
        """{ reassignmentRequests(filter: {status: PENDING}) {
        totalCount edges { node { id } } } }""",
    )
    assert pending["reassignmentRequests"]["totalCount"] == 2
    await review(gql, "tm.li", req["id"])
    overdue = "{ handovers(filter: {overdue: true}) { edges { node { id overdue } } } }"
    assert (await gql.data("tm.li", overdue))["handovers"]["edges"] == []
    clock.advance(timedelta(days=4))  # Friday 2026-03-06: past Thursday's deadline
    [edge] = (await gql.data("tm.li", overdue))["handovers"]["edges"]
    assert edge["node"]["overdue"] is True


async def test_other_account_managers_cannot_see_or_review(
    gql: GraphQLClient, customers: dict
) -> None:
    req = await request(gql, customers["MEDIUM"])
    body = await gql.execute("am.wu", "query($id: ID!) { node(id: $id) { id } }", {"id": req["id"]})
    assert error_codes(body) == ["NOT_FOUND"]
    data = await gql.data("am.wu", "{ reassignmentRequests { totalCount } }")
    assert data["reassignmentRequests"]["totalCount"] == 0


def test_working_days_skip_weekends_and_holidays() -> None:
    friday = datetime(2026, 3, 6, 17, 30, tzinfo=UTC)
    assert WorkingCalendar().add_working_days(friday, 3) == datetime(
        2026, 3, 11, 17, 30, tzinfo=UTC
    )
    calendar = WorkingCalendar([date(2026, 3, 9), date(2026, 3, 10)])
    assert calendar.add_working_days(friday, 1) == datetime(2026, 3, 11, 17, 30, tzinfo=UTC)


async def test_only_the_direct_manager_approves(gql: GraphQLClient, customers: dict) -> None:
    """A skip-level manager reaches the customer (TEAM scope is transitive) but may not decide."""
    req = await request(gql, customers["DEEP"], user="am.deep")
    body = await review(gql, "head.east", req["id"])
    assert error_codes(body) == ["FORBIDDEN"]
    assert "manager" in body["errors"][0]["message"]
    assert "errors" not in await review(gql, "tm.deep", req["id"])


DEACTIVATE = """mutation { deactivateUser(input: {userId: "am.chen", reason: "left the company"}) {
  user { id active } requests { id trigger status customer { id } fromOwner { id } toOwner { id } }
} }"""


async def test_leaving_owner_passes_customers_to_backups_at_once(
    gql: GraphQLClient, services: Services, customers: dict
) -> None:
    backed = await services.customers.create(
        Actor("admin"), {"name": "Backed", "backup_owner_id": "am.wu"}, owner_id="am.chen"
    )
    data = (await gql.data("admin", DEACTIVATE))["deactivateUser"]
    assert data["user"] == {"id": "am.chen", "active": False}
    requests = {r["customer"]["id"]: r for r in data["requests"]}
    assert set(requests) == {customers["MEDIUM"], customers["STRATEGIC"], backed.id}
    assert {
        (r["trigger"], r["status"], r["fromOwner"]["id"], r["toOwner"]) for r in requests.values()
    } == {("OWNER_LEFT", "PENDING", "am.chen", None)}
    owners = await gql.data(
        "admin",
        """query($a: ID!, $b: ID!) {
        a: customer(id: $a) { owner { id } ownership { assignedBy } }
        b: customer(id: $b) { owner { id } } }""",
        {"a": backed.id, "b": customers["MEDIUM"]},
    )
    assert owners["a"] == {"owner": {"id": "am.wu"}, "ownership": {"assignedBy": "INTERIM"}}
    assert owners["b"] == {"owner": None}  # no backup: flagged unowned
    # The manager approves with the new owner; the interim owner hands over.
    body = await gql.execute(
        "tm.li", REVIEW, {"input": {"requestId": requests[backed.id]["id"], "decision": "APPROVE"}}
    )
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == "input.toOwnerId"
    body = await gql.execute(
        "tm.li",
        REVIEW,
        {
            "input": {
                "requestId": requests[backed.id]["id"],
                "decision": "APPROVE",
                "toOwnerId": "tm.li",
            }
        },
    )
    handover = body["data"]["reviewReassignment"]["handover"]
    assert (handover["fromOwner"], handover["toOwner"]) == ({"id": "am.wu"}, {"id": "tm.li"})


async def test_deactivation_is_one_transaction(
    gql: GraphQLClient, services: Services, customers: dict, monkeypatch: Any
) -> None:
    from core.services import users

    async def broken(*args: Any, **kwargs: Any) -> list[Any]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(users, "release_book", broken)
    assert error_codes(await gql.execute("admin", DEACTIVATE)) == ["INTERNAL"]
    data = await gql.data("admin", """{ user(id: "am.chen") { active accountCount } }""")
    assert data["user"] == {"active": True, "accountCount": 2}
