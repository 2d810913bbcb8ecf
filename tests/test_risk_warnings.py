"""Risk warnings live: the health sweep records each warning raised and cleared once, as an
outbox event, in a fixed number of statements per batch; subscribers, webhooks and the RED
e-mail read those events, each through the field rules of whoever receives them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select
from starlette.applications import Starlette

from core.clock import FixedClock
from core.config import Settings
from core.domain import ActivityKind, Customer, WorkflowEventRecord
from core.notify import risk
from core.notify.risk import sweep_health
from core.notify.webhooks import EndpointInput, WebhookService
from core.notify.webhooks_delivery import Deliverer
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes
from tests.test_subscriptions import connected, message, served, subscribe, until
from tests.webhook_receiver import Receiver, receiver

ADMIN = Actor.system()
RAISED = ["COMPLAINTS_UP", "LEAVE_INTENT", "SLOW_RESPONSE"]
WARNINGS = """subscription { riskWarnings { id change warning { code level message }
  customer { name annualRevenue } } }"""


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


async def people(services: Services) -> None:
    add = services.users.create
    await add(ADMIN, "tm.li", "Li Wei", roles=["team_manager"])
    await add(ADMIN, "am.wu", "Wu Hao", roles=["account_manager"], manager_id="tm.li")
    await add(ADMIN, "am.chen", "Chen Jie", roles=["account_manager"], manager_id="tm.li")
    await add(ADMIN, "cs.he", "He Yun", roles=["customer_service"])
    await add(ADMIN, "aud.qin", "Qin Lu", roles=["auditor"])


async def troubled(services: Services, clock: FixedClock, name: str = "Harbour") -> Customer:
    """A customer of Wu's with two complaints and an intent to leave: three warnings, RED."""
    customer = await services.customers.create(
        ADMIN, {"name": name, "annual_revenue": Decimal("12345678")}, owner_id="am.wu"
    )
    for days in (40, 10, 5):
        kind = ActivityKind.LEAVE_INTENT if days == 5 else ActivityKind.COMPLAINT
        at = clock.now() - dt.timedelta(days=days)
        await services.tiering.record_activity(ADMIN, customer.id, kind, at=at)
    return customer


async def risk_events(services: Services) -> list[WorkflowEventRecord]:
    async with services.db.reader() as session:
        stmt = select(WorkflowEventRecord).where(WorkflowEventRecord.kind.like("RISK_%"))
        return list(await session.scalars(stmt.order_by(WorkflowEventRecord.id)))


async def test_each_warning_is_recorded_once_when_raised_and_once_when_cleared(
    services: Services, clock: FixedClock, settings: Settings
) -> None:
    await people(services)
    customer = await troubled(services, clock)
    await services.customers.create(ADMIN, {"name": "Calm"}, owner_id="am.wu")
    assert await sweep_health(services, clock.now()) == 3
    raised = await risk_events(services)
    assert sorted(e.payload["code"] for e in raised) == RAISED
    assert {(e.kind, e.customer_id, e.handover_id) for e in raised} == {
        ("RISK_WARNING_RAISED", customer.id, None)
    }
    leave = next(e for e in raised if e.payload["code"] == "LEAVE_INTENT")
    assert leave.payload["healthLevel"] == "RED" and leave.payload["indicator"] == "leaveIntent"
    assert leave.payload["since"] == "2026-02-25T09:00:00+00:00"

    assert await sweep_health(services, clock.now()) == 0  # still raised: nothing new
    clock.advance(dt.timedelta(days=1))
    again = Services.create(services.db, clock)  # another process after a restart
    assert await sweep_health(again, clock.now()) == 0

    clock.advance(dt.timedelta(days=59))  # the complaints age out of their window
    assert await sweep_health(services, clock.now()) == 1
    [cleared] = (await risk_events(services))[3:]
    assert (cleared.kind, cleared.payload["code"]) == ("RISK_WARNING_CLEARED", "COMPLAINTS_UP")
    assert await sweep_health(services, clock.now()) == 0


async def test_the_sweep_takes_the_same_statements_for_every_batch(
    services: Services, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await people(services)
    monkeypatch.setattr(risk, "BATCH", 3)

    async def statements() -> int:
        count = 0

        def counted(*_: object) -> None:
            nonlocal count
            count += 1

        engine = services.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", counted)
        try:
            await sweep_health(services, clock.now())
        finally:
            event.remove(engine, "before_cursor_execute", counted)
        return count

    empty = await statements()  # no customer: one look for a batch that is empty
    for n in range(3):
        await troubled(services, clock, f"First {n}")
    batch = await statements() - empty  # one batch of three, with 9 new warnings
    for n in range(6):
        await troubled(services, clock, f"More {n}")
    # Three batches now: two with new warnings cost what the first did, the one without
    # them two statements fewer (no state rows, no events to insert).
    assert await statements() - empty == 3 * batch - 2


async def test_a_subscriber_hears_of_the_warnings_it_may_read_in_its_scope(
    app: Starlette, services: Services, clock: FixedClock
) -> None:
    await people(services)
    # Customer service may read the health and the warnings, not the annual revenue; nor,
    # here, the complaint indicators.
    await services.policies.revoke(ADMIN, "customer_service", "HealthIndicator.*", "read")
    await services.policies.grant(ADMIN, "customer_service", "HealthIndicator.leaveIntent", "read")
    customer = await troubled(services, clock)
    async with (
        served(app) as url,
        connected(url, "tm.li") as li,
        connected(url, "cs.he") as he,
        connected(url, "am.chen") as chen,
        connected(url, "aud.qin") as qin,
    ):
        for ws in (li, he, chen):
            await subscribe(ws, WARNINGS)
        await subscribe(qin, WARNINGS)
        refused = await message(qin)  # an auditor may not read warnings at all
        assert refused["type"] == "error"
        assert [e["extensions"]["code"] for e in refused["payload"]] == ["FORBIDDEN"]
        await until(lambda: len(app.state.events.queues) == 3)
        await until(lambda: app.state.events.listening or services.db.is_sqlite)
        await sweep_health(services, clock.now())

        got = [(await message(li))["payload"] for _ in RAISED]
        assert sorted(g["data"]["riskWarnings"]["warning"]["code"] for g in got) == RAISED
        first = got[0]["data"]["riskWarnings"]
        assert first["change"] == "RAISED"
        assert first["customer"] == {"name": "Harbour", "annualRevenue": "12345678.00"}

        [only] = [(await message(he))["payload"]]  # the leave intent alone
        assert only["data"]["riskWarnings"]["warning"] == {
            "code": "LEAVE_INTENT",
            "level": "RETENTION",
            "message": "Said they may leave: hand to the retention team",
        }
        assert only["data"]["riskWarnings"]["customer"]["annualRevenue"] is None
        assert [e["extensions"] for e in only["errors"]] == [
            {"code": "FORBIDDEN_FIELD", "object": "Customer.annualRevenue"}
        ]
        assert "12345678" not in json.dumps(only)
        with pytest.raises(TimeoutError):  # Chen owns nothing of it; nor more for He
            await message(chen, timeout=0.3)
        with pytest.raises(TimeoutError):
            await message(he, timeout=0.1)

        clock.advance(dt.timedelta(days=60))
        await sweep_health(services, clock.now())
        cleared = (await message(li))["payload"]["data"]["riskWarnings"]
        assert (cleared["change"], cleared["warning"]["code"]) == ("CLEARED", "COMPLAINTS_UP")
    assert customer.id


async def test_webhooks_and_the_polling_query_carry_warnings_by_the_same_rules(
    app: Starlette, gql: GraphQLClient, services: Services, clock: FixedClock, hooks: Receiver
) -> None:
    await people(services)
    hooks_service = WebhookService(services.db, clock, allow_private=True)
    kinds = ("RISK_WARNING_RAISED", "RISK_WARNING_CLEARED")
    for role in ("admin", "finance"):
        await hooks_service.create(ADMIN, EndpointInput(hooks.url, kinds, role))
    await troubled(services, clock)
    await sweep_health(services, clock.now())
    settings = replace(app.state.settings, webhook_allow_private=True)
    assert await Deliverer(services, settings).run(clock.now()) == 6
    by_role: dict[str, list[Any]] = {}
    for r in hooks.received:
        role = "finance" if "details" not in r.json["data"] else "admin"
        by_role.setdefault(role, []).append(r.json)
    assert sorted(b["data"]["details"]["code"] for b in by_role["admin"]) == RAISED
    assert all(b["type"] == "RISK_WARNING_RAISED" for b in by_role["admin"])
    assert len(by_role["finance"]) == 3  # ids and the type only: no warning, no revenue
    assert "12345678" not in json.dumps(by_role["finance"])

    query = '{ workflowEvents(filter: {kind: "RISK_WARNING_RAISED"}) { totalCount } }'
    assert (await gql.data("tm.li", query))["workflowEvents"]["totalCount"] == 3
    # The auditor reads the outbox, but not customers' health: no warnings for them.
    assert (await gql.data("aud.qin", query))["workflowEvents"]["totalCount"] == 0
    denied = await gql.execute("am.chen", query)
    assert error_codes(denied) == ["FORBIDDEN"]


async def test_an_event_carries_a_warnings_score_band_and_message_only_to_their_readers(
    app: Starlette,
    gql: GraphQLClient,
    services: Services,
    clock: FixedClock,
    hooks: Receiver,
) -> None:
    """A role that reads risk warnings and the outbox, but not the health score and band nor
    the warning's message: the polling query and the webhook both give the code and level,
    and no score, band or message."""
    await people(services)
    grants = [
        ("Query.workflowEvents", "call"),
        ("WorkflowEvent.*", "read"),
        ("CustomerHealth.warnings", "read"),
        ("HealthIndicator.*", "read"),
        ("RiskWarning.code", "read"),
        ("RiskWarning.level", "read"),
        ("Customer", "scope:ALL"),
    ]
    for obj, action in grants:
        await services.policies.grant(ADMIN, "risk_desk", obj, action)
    await services.users.create(ADMIN, "rd.ma", "Ma", roles=["risk_desk"])
    await services.users.create(ADMIN, "admin", "Admin", roles=["admin"])
    hooks_service = WebhookService(services.db, clock, allow_private=True)
    await hooks_service.create(
        ADMIN, EndpointInput(hooks.url, ("RISK_WARNING_RAISED",), "risk_desk")
    )
    await troubled(services, clock)
    await sweep_health(services, clock.now())
    query = (
        '{ workflowEvents(filter: {kind: "RISK_WARNING_RAISED"}) { edges { node { payload } } } }'
    )
    polled = [
        e["node"]["payload"] for e in (await gql.data("rd.ma", query))["workflowEvents"]["edges"]
    ]
    settings = replace(app.state.settings, webhook_allow_private=True)
    assert await Deliverer(services, settings).run(clock.now()) == 3
    delivered = [r.json["data"]["details"] for r in hooks.received]
    for payloads in (polled, delivered):
        assert sorted(p["code"] for p in payloads) == RAISED
        assert all("level" in p for p in payloads)
        assert not any({"healthScore", "healthLevel", "message"} & p.keys() for p in payloads)
    admin = [
        e["node"]["payload"] for e in (await gql.data("admin", query))["workflowEvents"]["edges"]
    ]
    assert all({"healthScore", "healthLevel", "message"} <= p.keys() for p in admin)
