"""assignOwner: only an unowned customer, only an eligible owner, never two owners."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from core.domain import Ownership
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

ASSIGN = """mutation($input: AssignOwnerInput!) {
  assignOwner(input: $input) {
    customer {
      version owner { id accountCount } backupOwner { id } ownership { assignedBy reason }
    }
  }
}"""


async def _customer(services: Services) -> str:
    return (await services.customers.create(Actor("admin"), {"name": "Target"})).id


async def test_assigns_an_unowned_customer(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    cid = await _customer(services)
    data = await gql.data(
        "admin",
        ASSIGN,
        {
            "input": {
                "customerId": cid,
                "ownerId": "am.chen",
                "backupOwnerId": "am.wu",
                "reason": "territory",
            }
        },
    )
    customer = data["assignOwner"]["customer"]
    assert customer["owner"] == {"id": "am.chen", "accountCount": 1}
    assert customer["backupOwner"] == {"id": "am.wu"}
    assert customer["ownership"] == {"assignedBy": "MANUAL", "reason": "territory"}
    assert customer["version"] == 2
    audit = await gql.data(
        "admin",
        """query($id: ID!) { auditLog(filter: {entityId: $id,
        action: "assignOwner"}) {
          edges { node { actor { id } reason changes { field before after } } } } }""",
        {"id": cid},
    )
    [entry] = [e["node"] for e in audit["auditLog"]["edges"]]
    assert entry["actor"] == {"id": "admin"}
    assert entry["reason"] == "territory"
    assert {c["field"]: (c["before"], c["after"]) for c in entry["changes"]} == {
        "owner": (None, "am.chen"),
        "backupOwner": (None, "am.wu"),
    }


async def test_owned_customer_is_invalid_state(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    cid = await _customer(services)
    await gql.data("admin", ASSIGN, {"input": {"customerId": cid, "ownerId": "am.chen"}})
    body = await gql.execute("admin", ASSIGN, {"input": {"customerId": cid, "ownerId": "am.wu"}})
    assert error_codes(body) == ["INVALID_STATE"]
    assert body["errors"][0]["extensions"]["state"] == "OWNED"


async def test_inactive_or_full_users_are_not_eligible(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    cid = await _customer(services)
    await services.users.deactivate(Actor("admin"), "am.wu")
    await services.users.create(Actor.system(), "am.full", "Full", capacity=0)
    for owner in ("am.wu", "am.full", "ghost"):
        body = await gql.execute("admin", ASSIGN, {"input": {"customerId": cid, "ownerId": owner}})
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert body["errors"][0]["extensions"]["fields"][0]["path"] == "input.ownerId"


async def test_ten_concurrent_assignments_leave_exactly_one_owner(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    owners = [f"am.c{i}" for i in range(10)]
    for uid in owners:
        await services.users.create(Actor.system(), uid, uid, roles=["account_manager"])
    cid = await _customer(services)
    bodies = await asyncio.gather(
        *[
            gql.execute("admin", ASSIGN, {"input": {"customerId": cid, "ownerId": owner}})
            for owner in owners
        ]
    )
    winners = [b for b in bodies if "errors" not in b]
    assert len(winners) == 1
    assert all(error_codes(b)[0] in {"CONFLICT", "INVALID_STATE"} for b in bodies if "errors" in b)
    async with services.db.reader() as session:
        active = await session.scalar(
            select(func.count())
            .select_from(Ownership)
            .where(Ownership.customer_id == cid, Ownership.valid_to.is_(None))
        )
    assert active == 1
    data = await gql.data(
        "admin", "query($id: ID!) { customer(id: $id) { owner { id } } }", {"id": cid}
    )
    winner = winners[0]["data"]["assignOwner"]["customer"]["owner"]["id"]
    assert data["customer"]["owner"] == {"id": winner}
