"""GraphQL subscriptions over a real WebSocket (uvicorn on 127.0.0.1, the `websockets` client,
`graphql-transport-ws`): events in the viewer's scope as they commit, the same field rules as
HTTP, authentication, token expiry, the per-user limit, and on PostgreSQL two workers that
both deliver an event written by either."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection

from core.clock import FixedClock
from core.config import Settings
from core.domain import Handover
from core.identity import issue_token
from core.services import Actor, Services
from tests.conftest import JWT_SECRET, free_port, running
from tests.test_handover import HANDBOOK

ADMIN = Actor.system()
EVENTS = """subscription($filter: WorkflowEventFilter) {
  workflowEvents(filter: $filter) { id kind payload customer { name annualRevenue } } }"""


def token(user_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
    return issue_token(user_id, JWT_SECRET, now=datetime.now(UTC), ttl=ttl)


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[str]:
    """The (already started) app behind a real uvicorn on 127.0.0.1; its WebSocket URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def connected(url: str, user: str | None, ttl: timedelta = timedelta(hours=1)) -> Any:
    """A graphql-transport-ws connection, initialised with the user's bearer token."""
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token(user, ttl)}"} if user else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        yield ws


async def message(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def subscribe(ws: ClientConnection, query: str = EVENTS, **variables: Any) -> None:
    ack = await message(ws)
    assert ack["type"] == "connection_ack", ack
    payload = {"query": query, "variables": variables}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(websockets.ConnectionClosed) as raised:
        await message(ws)
    return raised.value.rcvd.code if raised.value.rcvd else None, (
        raised.value.rcvd.reason if raised.value.rcvd else None
    )


async def until(condition: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def people(services: Services) -> None:
    add = services.users.create
    await add(ADMIN, "tm.li", "Li Wei", roles=["team_manager"])
    await add(ADMIN, "tm.ma", "Ma Lin", roles=["team_manager"])  # nobody reports to Ma
    await add(ADMIN, "fin.gao", "Gao Fei", roles=["finance"])
    for uid in ("am.chen", "am.wu"):
        await add(ADMIN, uid, uid, roles=["account_manager"], manager_id="tm.li")


async def open_handover(services: Services) -> Handover:
    customer = await services.customers.create(
        ADMIN, {"name": "Harbour", "annual_revenue": Decimal("12345678")}, owner_id="am.chen"
    )
    request = await services.reassignment.request(
        Actor("am.chen"), customer.id, "am.wu", "ROLE_CHANGE", "moves desk"
    )
    _, handover = await services.reassignment.review(Actor("tm.li"), request.id, True, None)
    assert handover is not None
    return handover


def listeners(app: Starlette) -> int:
    return len(app.state.events.queues)


async def test_a_step_reaches_the_subscribers_whose_scope_holds_it(
    app: Starlette, services: Services
) -> None:
    await people(services)
    h = await open_handover(services)
    async with (
        served(app) as url,
        connected(url, "tm.li") as li,
        connected(url, "tm.ma") as ma,
    ):
        await subscribe(li)
        await subscribe(ma)
        await until(lambda: listeners(app) == 2)
        await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, HANDBOOK)
        got = await message(li)
        assert got["type"] == "next" and "errors" not in got["payload"]
        event = got["payload"]["data"]["workflowEvents"]
        assert event["kind"] == "STEP_DONE" and event["payload"]["step"] == "submitHandbook"
        assert event["customer"] == {"name": "Harbour", "annualRevenue": "12345678.00"}
        with pytest.raises(TimeoutError):  # Ma's team does not hold the customer
            await message(ma, timeout=0.5)


async def test_a_finance_subscriber_never_reads_the_annual_revenue(
    app: Starlette, services: Services
) -> None:
    await people(services)
    for obj, action in (("Query.workflowEvents", "call"), ("WorkflowEvent.*", "read")):
        await services.policies.grant(ADMIN, "finance", obj, action)
    h = await open_handover(services)
    async with served(app) as url, connected(url, "fin.gao") as gao:
        await subscribe(gao)
        await until(lambda: listeners(app) == 1)
        await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, HANDBOOK)
        got = (await message(gao))["payload"]
        assert got["data"]["workflowEvents"]["customer"] == {
            "name": "Harbour",
            "annualRevenue": None,
        }
        [error] = got["errors"]
        assert error["extensions"] == {
            "code": "FORBIDDEN_FIELD",
            "object": "Customer.annualRevenue",
        }
        assert "12345678" not in json.dumps(got)


async def test_a_subscription_needs_the_rights_of_the_query(
    app: Starlette, services: Services
) -> None:
    await people(services)
    async with served(app) as url, connected(url, "am.chen") as chen:
        await subscribe(chen)
        got = await message(chen)
        assert got["type"] == "error"
        assert [e["extensions"]["code"] for e in got["payload"]] == ["FORBIDDEN"]


async def test_limits_apply_and_only_subscriptions_run(
    app: Starlette, services: Services, settings: Settings
) -> None:
    await people(services)
    deep = "subscription { workflowEvents { customer { " + "owner { manager { " * 6 + "id"
    deep += " }" * 12 + " } } }"
    async with served(app) as url, connected(url, "tm.li") as li:
        await subscribe(li, deep)
        got = await message(li)
        assert [e["extensions"]["code"] for e in got["payload"]] == ["QUERY_TOO_COMPLEX"]
        mutation = (
            '{"id": "2", "type": "subscribe", "payload": {"query": "mutation { __typename }"}}'
        )
        await li.send(mutation)
        got = await message(li)
        assert got["type"] == "error" and got["id"] == "2"


async def test_a_bad_or_expiring_token_closes_the_connection_with_4401(
    app: Starlette, services: Services
) -> None:
    await people(services)
    async with served(app) as url:
        async with connected(url, None) as anonymous:
            assert await closed(anonymous) == (4401, "Unauthorized: missing Authorization header")
        async with connected(url, "nobody") as nobody:
            assert await closed(nobody) == (4401, "Unauthorized: unknown user 'nobody'")
        # Long enough for the subscription to start on a loaded CI machine before it expires.
        async with connected(url, "tm.li", ttl=timedelta(seconds=3)) as li:
            await subscribe(li)
            await until(lambda: listeners(app) == 1)
            assert await closed(li) == (4401, "Unauthorized: token expired")
        await until(lambda: listeners(app) == 0)


@pytest.fixture
async def limited_app(settings: Settings, clock: FixedClock) -> AsyncIterator[Starlette]:
    async with running(replace(settings, max_subscriptions_per_user=2), clock) as application:
        yield application


async def test_a_user_may_hold_only_so_many_connections(
    limited_app: Starlette,
) -> None:
    services: Services = limited_app.state.services
    await people(services)
    async with served(limited_app) as url, connected(url, "tm.li") as first:
        async with connected(url, "tm.li") as second:
            assert (await message(second))["type"] == "connection_ack"
            async with connected(url, "tm.li") as third:
                assert await closed(third) == (4429, "At most 2 connections per user")
            async with connected(url, "tm.ma") as other:  # another user is not affected
                assert (await message(other))["type"] == "connection_ack"
        async with connected(url, "tm.li") as again:  # the second one closed: room again
            assert (await message(again))["type"] == "connection_ack"
        assert (await message(first))["type"] == "connection_ack"


async def test_two_workers_on_postgresql_both_deliver_an_event(
    settings: Settings, clock: FixedClock, services: Services
) -> None:
    if settings.is_sqlite:
        pytest.skip("several workers need PostgreSQL")
    await people(services)
    h = await open_handover(services)
    # Two workers: apps with their own pools, LISTEN connections and subscribers.
    async with (
        running(settings, clock) as first,
        running(settings, clock) as second,
        served(first) as url_one,
        served(second) as url_two,
        connected(url_one, "tm.li") as one,
        connected(url_two, "tm.li") as two,
    ):
        await subscribe(one)
        await subscribe(two)
        await until(lambda: listeners(first) == listeners(second) == 1)
        await until(lambda: first.state.events.listening and second.state.events.listening)
        # Written by a third party (the test's own services): both workers hear the NOTIFY.
        await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, HANDBOOK)
        for ws in (one, two):
            got = (await message(ws))["payload"]["data"]["workflowEvents"]
            assert (got["kind"], got["payload"]["step"]) == ("STEP_DONE", "submitHandbook")
