"""A mutation is one transaction: a failure half-way leaves no row and no audit entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from core.domain import AuditEntry, Customer, Ownership
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes


async def _counts(services: Services) -> tuple[int, int, int]:
    async with services.db.reader() as session:
        return tuple(  # type: ignore[return-value]
            [
                await session.scalar(select(func.count()).select_from(model))
                for model in (Customer, Ownership, AuditEntry)
            ]
        )


async def test_failed_owner_step_rolls_back_the_created_customer(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    await services.users.create(
        Actor.system(), "am.full", "Full", roles=["account_manager"], capacity=0
    )
    before = await _counts(services)
    body = await gql.execute(
        "admin",
        """mutation { createCustomer(input:
        {name: "Half-way", ownerId: "am.full"}) { customer { id } } }""",
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == "input.ownerId"
    assert await _counts(services) == before


async def test_crash_after_the_insert_leaves_nothing(
    gql: GraphQLClient, services: Services, admin: str, monkeypatch: Any
) -> None:
    from core.services.audit import AuditWriter

    def crash(self: AuditWriter, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    before = await _counts(services)
    monkeypatch.setattr(AuditWriter, "record", crash)
    body = await gql.execute(
        "admin", 'mutation { createCustomer(input: {name: "Crash"}) { customer { id } } }'
    )
    assert error_codes(body) == ["INTERNAL"]
    assert await _counts(services) == before
