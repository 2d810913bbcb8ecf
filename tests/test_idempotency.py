"""Idempotency-Key: a retried POST gets the first response back and applies nothing twice."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from core.api.idempotency import fingerprint
from core.clock import FixedClock
from core.config import Settings
from core.domain import IdempotencyKey, IdempotencyState
from core.services import Services
from tests.conftest import GraphQLClient, client_of, running, write_lock

CREATE = 'mutation { createCustomer(input: {name: "Harbor"}) { customer { id name } } }'
OTHER = 'mutation { createCustomer(input: {name: "Other"}) { customer { id name } } }'
SQLITE_LOCK = "SQLite's write lock would hold up the reservation itself, not the mutation"
COUNTS = '{ customers { totalCount } auditLog(filter: {action: "createCustomer"}) { totalCount } }'


async def created(gql: GraphQLClient) -> tuple[int, int]:
    """Customers, and createCustomer audit entries."""
    data = await gql.data("admin", COUNTS)
    return data["customers"]["totalCount"], data["auditLog"]["totalCount"]


async def post(gql: GraphQLClient, user: str, query: str, key: str) -> httpx.Response:
    return await gql.post(user, query, headers={"Idempotency-Key": key})


async def test_a_retry_returns_the_first_response_and_creates_one_customer(
    gql: GraphQLClient, admin: str
) -> None:
    first = await post(gql, "admin", CREATE, "order-1")
    retry = await post(gql, "admin", CREATE, "order-1")
    assert first.status_code == retry.status_code == 200
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await created(gql) == (1, 1)


async def test_without_the_header_every_request_runs(gql: GraphQLClient, admin: str) -> None:
    await gql.data("admin", CREATE)
    await gql.data("admin", CREATE)
    assert await created(gql) == (2, 2)


async def test_the_same_key_with_another_body_is_422(gql: GraphQLClient, admin: str) -> None:
    await post(gql, "admin", CREATE, "order-1")
    reused = await post(gql, "admin", OTHER, "order-1")
    assert reused.status_code == 422
    (error,) = reused.json()["errors"]
    assert error["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "Idempotency-Key" in error["message"]
    assert await created(gql) == (1, 1)


async def test_an_expired_key_can_be_reused(
    gql: GraphQLClient, clock: FixedClock, admin: str
) -> None:
    await post(gql, "admin", CREATE, "order-1")
    clock.advance(timedelta(seconds=Settings().idempotency_ttl - 1))
    assert (await post(gql, "admin", OTHER, "order-1")).status_code == 422
    clock.advance(timedelta(seconds=1))
    again = await post(gql, "admin", OTHER, "order-1")
    assert again.status_code == 200
    assert again.json()["data"]["createCustomer"]["customer"]["name"] == "Other"
    assert await created(gql) == (2, 2)


async def test_keys_are_per_user(gql: GraphQLClient, admin: str) -> None:
    chen = await post(gql, "am.chen", CREATE, "order-1")
    wu = await post(gql, "am.wu", CREATE, "order-1")
    assert "idempotent-replayed" not in wu.headers
    assert chen.json() != wu.json()
    assert await created(gql) == (2, 2)


async def test_a_malformed_key_is_400(gql: GraphQLClient, admin: str) -> None:
    for key in ("", "x" * 129, "with space", "naïve"):
        response = await gql.http.post(
            "/graphql",
            json={"query": CREATE},
            headers={
                "Authorization": f"Bearer {gql.token('admin')}",
                "Idempotency-Key": key.encode(),
            },
        )
        assert response.status_code == 400, key
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await created(gql) == (0, 0)


async def test_concurrent_requests_with_one_key_create_one_customer(
    gql: GraphQLClient, admin: str
) -> None:
    responses = await asyncio.gather(*(post(gql, "admin", CREATE, "order-1") for _ in range(2)))
    assert await created(gql) == (1, 1)
    applied = [
        r for r in responses if r.status_code == 200 and "idempotent-replayed" not in r.headers
    ]
    others = [r for r in responses if r not in applied]
    assert len(applied) == 1
    (other,) = others
    assert other.status_code == 409 or other.content == applied[0].content
    if other.status_code == 409:
        assert other.json()["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_a_retry_while_the_first_request_runs_is_409(
    gql: GraphQLClient, settings: Settings, database_url: str, admin: str
) -> None:
    if settings.is_sqlite:
        pytest.skip(SQLITE_LOCK)
    async with write_lock(database_url):
        first = asyncio.create_task(post(gql, "admin", CREATE, "order-1"))
        await asyncio.sleep(0.5)  # reserved, now waiting on the lock
        retry = await post(gql, "admin", CREATE, "order-1")
    assert retry.status_code == 409
    assert retry.json()["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert (await first).status_code == 200
    assert (await post(gql, "admin", CREATE, "order-1")).content == (await first).content
    assert await created(gql) == (1, 1)


async def test_a_reservation_of_a_dead_process_is_forgotten_after_the_timeout(
    gql: GraphQLClient, services: Services, clock: FixedClock, admin: str
) -> None:
    async with services.db.transaction() as session:  # reserved, then the process died
        session.add(
            IdempotencyKey(
                user_id="admin",
                key="order-1",
                fingerprint=fingerprint({"query": CREATE, "variables": None}),
                state=IdempotencyState.IN_PROGRESS,
                created_at=clock.now(),
            )
        )
    assert (await post(gql, "admin", CREATE, "order-1")).status_code == 409
    clock.advance(timedelta(seconds=Settings().execution_timeout + 60))
    assert (await post(gql, "admin", CREATE, "order-1")).status_code == 200
    assert await created(gql) == (1, 1)


async def test_a_timed_out_request_releases_its_key(
    gql: GraphQLClient, settings: Settings, clock: FixedClock, database_url: str, admin: str
) -> None:
    if settings.is_sqlite:
        pytest.skip(SQLITE_LOCK)
    async with (
        running(replace(settings, execution_timeout=0.5), clock) as app,
        client_of(app, clock) as impatient,
    ):
        async with write_lock(database_url):
            request = asyncio.create_task(post(impatient, "admin", CREATE, "order-1"))
            await asyncio.sleep(1.5)
        assert (await request).json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
    retry = await post(gql, "admin", CREATE, "order-1")
    assert "idempotent-replayed" not in retry.headers
    assert retry.json()["data"]["createCustomer"]["customer"]["name"] == "Harbor"
    assert await created(gql) == (1, 1)
