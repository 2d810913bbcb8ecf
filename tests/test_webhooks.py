"""Webhooks against a real HTTP receiver on 127.0.0.1: signed deliveries verified with the
documented snippet, retries with backoff, dead letters and replay, a hanging receiver, a
restart in the middle of delivery, and payloads shaped by the endpoint's role."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.clock import FixedClock
from core.config import Settings
from core.db import Database
from core.domain import Customer
from core.notify import addresses
from core.notify.webhooks import EndpointInput, WebhookService
from core.notify.webhooks_delivery import MAX_BACKOFF, Deliverer, backoff
from core.services import Actor, Services
from tests.conftest import (
    JWT_SECRET,
    GraphQLClient,
    client_of,
    create_team,
    error_codes,
    running,
)
from tests.test_handover_workflow import open_handover
from tests.webhook_receiver import Receiver, receiver

DOC = Path(__file__).parents[1] / "docs" / "integrations" / "webhooks.md"
CREATE = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id url eventTypes role active } secret }
}"""
DELIVERIES = """
query {
  webhookEndpoints { edges { node { id deliveries {
    totalCount
    edges { node { id eventId state attempts lastStatus lastError history { status error } } }
  } } } }
}"""


def documented_verify() -> Callable[..., bool]:
    """The ``verify`` function exactly as docs/integrations/webhooks.md shows it."""
    (snippet,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The receiver listens on 127.0.0.1: these tests allow private addresses (the default
    refuses them, see test_private_and_metadata_addresses_are_refused_unless_allowed)."""
    return Settings(database_url=database_url, jwt_secret=JWT_SECRET, webhook_allow_private=True)


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return replace(settings, webhook_timeout=0.5, webhook_max_attempts=3, webhook_backoff=1.0)


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


async def register(
    gql: GraphQLClient, url: str, role: str = "admin", types: tuple[str, ...] = ()
) -> tuple[str, str]:
    data = await gql.data(
        "admin",
        CREATE,
        {
            "input": {
                "url": url,
                "eventTypes": list(types or ("HANDOVER_OPENED", "STEP_DONE")),
                "role": role,
            }
        },
    )
    created = data["createWebhookEndpoint"]
    return created["endpoint"]["id"], created["secret"]


async def test_a_signed_event_reaches_the_receiver_once(
    gql: GraphQLClient,
    services: Services,
    hook_settings: Settings,
    admin: str,
    hooks: Receiver,
) -> None:
    endpoint_id, secret = await register(gql, hooks.url)
    assert secret.startswith("whsec_")
    handover = await open_handover(services, "Acme")
    deliver = Deliverer(services, hook_settings)
    assert await deliver.run(services.clock.now()) == 1
    assert await deliver.run(services.clock.now()) == 0  # delivered: never again
    [got] = hooks.received
    verify = documented_verify()
    assert verify(secret, got.headers["Baton-Signature"], got.body)
    assert not verify(secret, got.headers["Baton-Signature"], got.body + b" ")
    assert not verify("whsec_wrong", got.headers["Baton-Signature"], got.body)
    stale = f"t={int(time.time()) - 3600}," + got.headers["Baton-Signature"].split(",", 1)[1]
    assert not verify(secret, stale, got.body)
    assert got.json["id"] == got.event_id == "evt_1"
    assert got.json["type"] == "HANDOVER_OPENED" and got.json["endpointId"] == endpoint_id
    assert got.json["data"]["handoverId"] == handover.id
    assert got.headers["Content-Type"] == "application/json"
    body = await gql.data("admin", DELIVERIES)
    [endpoint] = body["webhookEndpoints"]["edges"]
    [delivery] = endpoint["node"]["deliveries"]["edges"]
    assert delivery["node"]["state"] == "DELIVERED" and delivery["node"]["eventId"] == "evt_1"
    assert delivery["node"]["history"] == [{"status": 200, "error": None}]


async def test_failures_back_off_then_die_and_an_admin_replays_them(
    gql: GraphQLClient,
    services: Services,
    hook_settings: Settings,
    admin: str,
    clock: FixedClock,
    hooks: Receiver,
) -> None:
    endpoint_id, _ = await register(gql, hooks.url)
    await open_handover(services, "Acme")
    deliver = Deliverer(services, hook_settings)
    hooks.mode = "fail"
    assert await deliver.run(clock.now()) == 0
    assert await deliver.run(clock.now()) == 0  # backing off: not sent again yet
    assert len(hooks.received) == 1
    for _ in range(2):
        clock.advance(timedelta(seconds=4))  # past the longest jittered wait for 3 attempts
        await deliver.run(clock.now())
    assert len(hooks.received) == 3
    clock.advance(timedelta(hours=7))
    await deliver.run(clock.now())
    assert len(hooks.received) == 3  # dead: no fourth attempt
    body = await gql.data("admin", DELIVERIES)
    [node] = [
        e["node"] for e in body["webhookEndpoints"]["edges"][0]["node"]["deliveries"]["edges"]
    ]
    assert (node["state"], node["attempts"], node["lastStatus"]) == ("DEAD", 3, 500)
    assert [h["error"] for h in node["history"]] == ["HTTP 500"] * 3
    hooks.mode = "ok"
    replay = """mutation($input: ReplayWebhookDeliveriesInput!) {
      replayWebhookDeliveries(input: $input) { deliveries { id state attempts } } }"""
    body = await gql.execute("tm.li", replay, {"input": {"endpointId": endpoint_id}})
    assert error_codes(body) == ["FORBIDDEN"]
    data = await gql.data("admin", replay, {"input": {"endpointId": endpoint_id, "state": "DEAD"}})
    assert data["replayWebhookDeliveries"]["deliveries"] == [
        {"id": node["id"], "state": "PENDING", "attempts": 0}
    ]
    assert await deliver.run(clock.now()) == 1
    assert hooks.event_ids() == ["evt_1"] * 4  # one event id, however often it is sent
    log = await gql.data(
        "admin",
        '{ auditLog(filter: {entityType: "WebhookDelivery"}) '
        "{ edges { node { action entityId changes { field before after } } } } }",
    )
    [entry] = [e["node"] for e in log["auditLog"]["edges"]]
    assert entry["action"] == "replayWebhookDelivery" and entry["entityId"] == node["id"]
    assert entry["changes"] == [{"field": "state", "before": "DEAD", "after": "PENDING"}]


def test_backoff_doubles_with_jitter_up_to_a_cap() -> None:
    for attempt, full in ((1, 30), (2, 60), (5, 480)):
        waits = {backoff(attempt, 30).total_seconds() for _ in range(50)}
        assert all(full / 2 <= w <= full for w in waits) and len(waits) > 1
    assert backoff(40, 30) <= MAX_BACKOFF


async def test_a_hanging_receiver_does_not_hold_up_the_others(
    gql: GraphQLClient, services: Services, hook_settings: Settings, admin: str
) -> None:
    with receiver() as hanging, receiver() as healthy:
        hanging.mode = "hang"
        await register(gql, hanging.url)
        await register(gql, healthy.url)
        for name in ("A", "B", "C"):
            await open_handover(services, name)
        # A timeout long enough that load on the machine cannot blur concurrent and serial
        # sending: one after another, the second hanging request would leave only after the
        # first had waited the whole timeout.
        patient = replace(hook_settings, webhook_timeout=3.0)
        started = time.monotonic()
        run = asyncio.create_task(Deliverer(services, patient).run(services.clock.now()))
        while len(hanging.received) < 3 or len(healthy.received) < 3:
            assert time.monotonic() - started < patient.webhook_timeout, "sent one by one"
            await asyncio.sleep(0.02)
        assert await run == 3
        assert sorted(healthy.event_ids()) == ["evt_1", "evt_2", "evt_3"]
        assert len(hanging.received) == 3
    body = await gql.data("admin", DELIVERIES)
    errors = {
        d["node"]["lastError"]
        for e in body["webhookEndpoints"]["edges"]
        for d in e["node"]["deliveries"]["edges"]
    }
    assert errors == {None, "no answer within 3 s"}


async def test_a_restart_mid_delivery_loses_nothing_and_resends_only_what_was_in_flight(
    gql: GraphQLClient,
    services: Services,
    hook_settings: Settings,
    admin: str,
    clock: FixedClock,
    database_url: str,
) -> None:
    slow = replace(hook_settings, webhook_timeout=30.0)
    with receiver() as hanging, receiver() as healthy:
        hanging.mode = "hang"
        await register(gql, hanging.url)
        await register(gql, healthy.url)
        for name in ("A", "B"):
            await open_handover(services, name)
        run = asyncio.create_task(Deliverer(services, slow).run(clock.now()))
        while len(hanging.received) < 2 or len(healthy.received) < 2:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the healthy endpoint's outcomes are recorded
        run.cancel()  # the worker stops while two requests hang
        with pytest.raises(asyncio.CancelledError):
            await run
        hanging.released.set()
        hanging.mode = "ok"
        # Another worker (its own pool) takes over.
        db = Database(database_url)
        try:
            other = Deliverer(Services.create(db, clock), hook_settings)
            assert await other.run(clock.now()) == 0  # the claims have not expired yet
            clock.advance(timedelta(seconds=31))
            assert await other.run(clock.now()) == 2
            clock.advance(timedelta(hours=7))
            assert await other.run(clock.now()) == 0
        finally:
            await db.dispose()
        assert sorted(healthy.event_ids()) == ["evt_1", "evt_2"]  # never twice
        # The documented at-least-once retry: the two in flight came again, same ids.
        assert sorted(hanging.event_ids()) == ["evt_1", "evt_1", "evt_2", "evt_2"]


async def test_a_payload_carries_only_what_the_endpoint_role_may_read(
    gql: GraphQLClient, services: Services, hook_settings: Settings, admin: str, hooks: Receiver
) -> None:
    await register(gql, hooks.url, role="finance", types=("HANDOVER_OPENED",))
    handover = await open_handover(services, "Acme")
    async with services.db.reader() as session:
        customer = await session.get(Customer, handover.customer_id)
    assert customer is not None
    await services.customers.update(
        Actor("admin"),
        customer.id,
        customer.version,
        {"annual_revenue": Decimal("98765432.10"), "payment_terms_days": 45},
    )
    assert await Deliverer(services, hook_settings).run(services.clock.now()) == 1
    [got] = hooks.received
    customer = got.json["data"]["customer"]
    assert customer["paymentTermsDays"] == 45 and customer["name"] == "Acme"
    assert "annualRevenue" not in customer and "owner" not in customer
    assert b"98765432" not in got.body
    assert "details" not in got.json["data"]  # finance may not read WorkflowEvent.payload


async def test_endpoint_input_is_checked_and_changes_are_audited(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    bad = {"url": "http://example.com/x", "eventTypes": ["NOPE"], "role": "ghost"}
    body = await gql.execute("admin", CREATE, {"input": bad})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert {f["path"] for f in body["errors"][0]["extensions"]["fields"]} == {
        "input.url",
        "input.eventTypes",
        "input.role",
    }
    ok = {"url": "https://erp.example.com/hooks", "eventTypes": ["OVERDUE"], "role": "finance"}
    assert error_codes(await gql.execute("am.chen", CREATE, {"input": ok})) == ["FORBIDDEN"]
    endpoint_id, secret = await register(gql, ok["url"], "finance", ("OVERDUE",))
    rotate = "mutation($id: ID!) { rotateWebhookSecret(input: {id: $id}) { secret } }"
    rotated = (await gql.data("admin", rotate, {"id": endpoint_id}))["rotateWebhookSecret"]
    assert rotated["secret"] != secret
    pause = (
        "mutation($id: ID!) { updateWebhookEndpoint(input: {id: $id, active: false}) "
        "{ endpoint { active } } }"
    )
    assert (await gql.data("admin", pause, {"id": endpoint_id}))["updateWebhookEndpoint"] == {
        "endpoint": {"active": False}
    }
    log = await gql.data(
        "admin",
        '{ auditLog(filter: {entityType: "WebhookEndpoint"}) { edges { node { action changes '
        "{ field after } } } } }",
    )
    entries = [e["node"] for e in log["auditLog"]["edges"]]
    assert sorted(e["action"] for e in entries) == [
        "createWebhookEndpoint",
        "rotateWebhookSecret",
        "updateWebhookEndpoint",
    ]
    assert secret not in str(entries) and rotated["secret"] not in str(entries)


async def test_a_handover_with_the_clock_advanced_calls_the_webhook_at_each_deadline(
    settings: Settings, clock: FixedClock, hooks: Receiver
) -> None:
    """The scheduler inside the app: the opening goes out at once (woken by the commit), the
    deadline warnings when the clock reaches them, each exactly once."""
    scheduled = replace(settings, scheduler=True, scheduler_tick=0.05)
    async with running(scheduled, clock) as app, client_of(app, clock) as gql:
        services: Services = app.state.services
        await create_team(services)
        types = ("HANDOVER_OPENED", "DUE_SOON", "OVERDUE")
        await register(gql, hooks.url, role="auditor", types=types)

        async def received(n: int) -> list[tuple[str, Any]]:
            """What came, once ``n`` requests did and several ticks passed without more."""
            for _ in range(200):
                if len(hooks.received) >= n:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.4)
            return [(r.json["type"], r.json["data"].get("details")) for r in hooks.received]

        await open_handover(services, "Acme")  # Monday 09:00; the handbook is due Thursday 09:00
        [(kind, _)] = await received(1)
        assert kind == "HANDOVER_OPENED"
        clock.advance(timedelta(days=1))  # Tuesday: nothing due within a working day
        assert len(await received(1)) == 1
        clock.advance(timedelta(days=1))  # Wednesday 09:00
        due = {
            "status": "HANDBOOK_PENDING",
            "step": "submitHandbook",
            "dueAt": "2026-03-05T09:00:00+00:00",
        }
        assert (await received(2))[1] == ("DUE_SOON", due)
        clock.advance(timedelta(days=1, minutes=15))  # Thursday 09:15
        assert (await received(3))[2] == ("OVERDUE", due)
        clock.advance(timedelta(hours=2))
        assert len(await received(3)) == 3  # each deadline once
        customer = hooks.received[2].json["data"]["customer"]
        assert customer["name"] == "Acme" and "annualRevenue" not in customer


async def test_private_and_metadata_addresses_are_refused_unless_allowed(
    settings: Settings, clock: FixedClock, hooks: Receiver
) -> None:
    strict = replace(settings, webhook_allow_private=False)
    async with running(strict, clock) as app, client_of(app, clock) as gql:
        services: Services = app.state.services
        await create_team(services)
        for url in (
            hooks.url,  # http://127.0.0.1:<port>/hook
            "https://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/hook",
            "https://[::1]/hook",
            "https://[::ffff:192.168.0.1]/hook",
            "https://metadata.google.internal/computeMetadata",
            "https://localhost/hook",
        ):
            body = await gql.execute("admin", CREATE, {"input": _endpoint(url)})
            assert error_codes(body) == ["BAD_USER_INPUT"], url
            [field] = body["errors"][0]["extensions"]["fields"]
            assert field["path"] == "input.url", url
            assert "BATON_WEBHOOK_ALLOW_PRIVATE=1" in field["reason"], field
        assert "link-local" in str(
            await gql.execute("admin", CREATE, {"input": _endpoint("https://169.254.169.254/")})
        )
        # A name that does not resolve (yet) is accepted; each delivery checks it again.
        await register(gql, "https://hooks.invalid/x", role="admin")
        log = await gql.data(
            "admin", '{ auditLog(filter: {entityType: "WebhookEndpoint"}) { totalCount } }'
        )
        assert log["auditLog"]["totalCount"] == 1  # the refusals wrote nothing

        # Registered while allowed, delivered while not: refused at delivery, nothing sent.
        allowed = WebhookService(services.db, services.clock, allow_private=True)
        await allowed.create(
            Actor.system(), EndpointInput(hooks.url, ("HANDOVER_OPENED",), "admin")
        )
        await open_handover(services, "Acme")
        deliver = Deliverer(services, replace(strict, webhook_max_attempts=3))
        assert await deliver.run(clock.now()) == 0
        assert hooks.received == []
        body = await gql.data("admin", DELIVERIES)
        errors = [
            d["node"]["lastError"]
            for e in body["webhookEndpoints"]["edges"]
            for d in e["node"]["deliveries"]["edges"]
        ]
        assert any("refused: 127.0.0.1 is a loopback address" in str(x) for x in errors), errors
        assert any("refused: hooks.invalid does not resolve" in str(x) for x in errors), errors


def _endpoint(url: str) -> dict[str, Any]:
    return {"url": url, "eventTypes": ["HANDOVER_OPENED"], "role": "admin"}


async def test_a_delivery_is_pinned_to_the_public_address_it_checked() -> None:
    target = await addresses.pin("https://93.184.216.34:8443/hook?x=1", allow_private=False)
    assert target == addresses.Target(
        "https://93.184.216.34:8443/hook?x=1", "93.184.216.34:8443", None
    )
    v6 = await addresses.pin("https://[2606:4700::1111]/hook", allow_private=False)
    assert v6.url == "https://[2606:4700::1111]/hook" and v6.host_header == "[2606:4700::1111]"
    for url, reason in (
        ("https://10.0.0.7/hook", "10.0.0.7 is a private address"),
        ("https://100.64.1.1/hook", "is a private address"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://0.0.0.0/hook", "0.0.0.0 is a private address"),
        ("https://224.0.0.1/hook", "is not a public address"),
        ("https://db.internal/hook", "names an internal host"),
    ):
        with pytest.raises(ValueError, match=reason):
            await addresses.pin(url, allow_private=False)
    # Allowed: used as given (the test receiver on 127.0.0.1).
    local = await addresses.pin("http://127.0.0.1:8080/hook", allow_private=True)
    assert (local.url, local.host_header) == ("http://127.0.0.1:8080/hook", "127.0.0.1:8080")
