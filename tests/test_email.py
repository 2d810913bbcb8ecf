"""E-mail notices against a real SMTP server (aiosmtpd on 127.0.0.1): who gets what and when,
in their language, with only the fields their roles may read, once, retried when the server
refuses, over STARTTLS with authentication, and in a plugin's wording."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from typer.testing import CliRunner

from core.cli import app as cli
from core.clock import FixedClock
from core.config import Settings
from core.db import Database
from core.domain import ActivityKind, EmailNotice, Handover, MeetingKind, NoticeStatus, User
from core.notify.email import LEASE, EmailNotifier, backoff
from core.notify.email_plan import Planner
from core.notify.email_templates import EmailTemplates
from core.notify.risk import sweep_health
from core.plugins import PluginError, register
from core.services import Actor, Services
from sdk import EmailTemplate, hookimpl
from tests.conftest import GraphQLClient, error_codes, free_port
from tests.test_handover import HANDBOOK
from tests.test_handover_workflow import FEEDBACK

ADMIN = Actor.system()
REVENUE = Decimal("12345678")


@dataclass
class Inbox:
    """What the SMTP server accepted; it answers ``refuse`` (e.g. 451) ``failures`` times first."""

    failures: int = 0
    refuse: str = "451 4.3.0 try again later"
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.failures > 0:
            self.failures -= 1
            return self.refuse
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@contextmanager
def smtp_server(inbox: Inbox, **kwargs: Any) -> Iterator[int]:
    """A real SMTP server on 127.0.0.1 (its own thread), stopped after the block."""
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def body(message: EmailMessage) -> str:
    part = message.get_body()
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def mail_settings(settings: Settings, port: int, **more: Any) -> Settings:
    plain = {"smtp_starttls": False, "smtp_from": "baton@example.com", "smtp_timeout": 5.0}
    return replace(settings, smtp_host="127.0.0.1", smtp_port=port, **{**plain, **more})


async def people(services: Services, reviewer_role: str = "team_manager") -> None:
    """A director above a manager above two account managers, with addresses and locales."""
    add = services.users.create
    await add(ADMIN, "sd.zhao", "Zhao Min", roles=["sales_director"], email="zhao@example.com")
    await add(
        ADMIN,
        "tm.li",
        "Li Wei",
        roles=[reviewer_role],
        manager_id="sd.zhao",
        email="li@example.com",
        locale="en",
    )
    for uid, name, locale in (("am.chen", "陈杰", "zh"), ("am.wu", "Wu Hao", "en")):
        await add(
            ADMIN,
            uid,
            name,
            roles=["account_manager"],
            manager_id="tm.li",
            email=f"{uid.split('.')[1]}@example.com",
            locale=locale,
        )


async def open_handover(services: Services, value_tier: str = "MEDIUM") -> Handover:
    customer = await services.customers.create(
        ADMIN,
        {
            "name": "宁波港物流",
            "value_tier": value_tier,
            "annual_revenue": REVENUE,
            "payment_terms_days": 45,
            "contacts": [{"name": "王总", "title": "COO"}],
        },
        owner_id="am.chen",
    )
    request = await services.reassignment.request(
        Actor("am.chen"), customer.id, "am.wu", "ROLE_CHANGE", "Chen moves desk"
    )
    reviewer = Actor("sd.zhao" if value_tier in ("STRATEGIC", "HIGH") else "tm.li")
    _, handover = await services.reassignment.review(reviewer, request.id, True, None)
    assert handover is not None
    return handover


async def submitted(services: Services) -> Handover:
    """The people, and a handover whose handbook was just submitted (one notice due)."""
    await people(services)
    h = await open_handover(services)
    return await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, HANDBOOK)


async def notices(services: Services) -> list[EmailNotice]:
    async with services.db.reader() as session:
        return list(await session.scalars(select(EmailNotice).order_by(EmailNotice.id)))


async def test_a_handover_tells_each_person_in_their_language_once(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    await people(services)
    inbox = Inbox()
    with smtp_server(inbox) as port:
        job = EmailNotifier(mail_settings(settings, port))
        h = await open_handover(services)
        assert await job.run(services, clock.now()) == 0  # opening the handover mails nobody

        h = await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, HANDBOOK)
        assert await job.run(services, clock.now()) == 2  # planned one, sent one
        [review] = inbox.messages
        assert review["To"] == "li@example.com"  # the outgoing owner's manager
        assert review["Subject"] == (
            "[Handover review] The handbook for 宁波港物流 awaits your review"
        )
        assert "Please review it by 2026-03-03 09:00 UTC" in body(review)
        assert await job.run(services, clock.now()) == 0  # sent once, however often it runs

        clock.advance(dt.timedelta(hours=2))
        await services.handover.sweep_deadlines()  # the review is due within a working day
        await job.run(services, clock.now())
        due = {m["To"]: m for m in inbox.messages[1:]}
        assert sorted(due) == ["chen@example.com", "li@example.com", "wu@example.com"]
        assert due["chen@example.com"]["Subject"] == "【即将到期】宁波港物流 交接：审核交接手册"
        assert due["wu@example.com"]["Subject"] == (
            "[Due soon] 宁波港物流 handover: review the handover handbook"
        )

        clock.advance(dt.timedelta(days=1))
        await services.handover.sweep_deadlines()
        await job.run(services, clock.now())
        assert sorted(m["Subject"] for m in inbox.messages[4:]) == [
            "[Overdue] 宁波港物流 handover: review the handover handbook",
            "[Overdue] 宁波港物流 handover: review the handover handbook",
            "【已逾期】宁波港物流 交接：审核交接手册",
        ]

        await services.handover.review_handbook(Actor("tm.li"), h.id, h.version, True, None)
        await job.run(services, clock.now())
        [draft] = inbox.messages[7:]
        assert draft["To"] == "chen@example.com"
        assert draft["Subject"] == "【客户通知草稿】宁波港物流 的客户经理变更"
        text = body(draft)
        assert "尊敬的 王总" in text and "今后将由 Wu Hao（wu@example.com）" in text
    assert {n.status for n in await notices(services)} == {NoticeStatus.SENT}


async def test_after_completion_the_new_owner_and_the_manager_hear_of_their_deadlines(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    h = await submitted(services)
    manager, chen = Actor("tm.li"), Actor("am.chen")
    h = await services.handover.review_handbook(manager, h.id, h.version, True, None)
    for kind in (MeetingKind.BRIEFING, MeetingKind.SIMULATION):
        h = await services.handover.record_meeting(chen, h.id, h.version, kind, clock.now(), None)
    h = await services.handover.notify_customer(chen, h.id, h.version)
    h = await services.handover.complete(manager, h.id, h.version)  # Monday 2 March
    inbox = Inbox()
    with smtp_server(inbox) as port:
        job = EmailNotifier(mail_settings(settings, port))
        await job.run(services, clock.now())
        inbox.messages.clear()  # the review request and the customer-notice draft

        clock.advance(dt.timedelta(days=4))  # Friday: feedback due Monday 9 March
        await services.handover.sweep_deadlines()
        await job.run(services, clock.now())
        assert sorted((m["To"], m["Subject"]) for m in inbox.messages) == [
            ("chen@example.com", "【即将到期】宁波港物流 交接：提交接手反馈"),
            ("wu@example.com", "[Due soon] 宁波港物流 handover: submit the new owner's feedback"),
        ]
        assert "is due 2026-03-09 09:00 UTC" in body(inbox.to("wu@example.com")[0])

        inbox.messages.clear()
        h = await services.handover.submit_feedback(Actor("am.wu"), h.id, h.version, FEEDBACK)
        clock.advance(dt.timedelta(days=25))  # Tuesday 31 March: the survey is due 1 April
        await services.handover.sweep_deadlines()
        await job.run(services, clock.now())
        assert sorted(m["To"] for m in inbox.messages) == [
            "chen@example.com",
            "li@example.com",  # the manager records the satisfaction
            "wu@example.com",
        ]
        assert inbox.to("li@example.com")[0]["Subject"] == (
            "[Due soon] 宁波港物流 handover: record the customer's satisfaction"
        )


async def test_a_finance_reviewer_never_reads_the_annual_revenue(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    await people(services, reviewer_role="finance")
    inbox = Inbox()
    with smtp_server(inbox) as port:
        job = EmailNotifier(mail_settings(settings, port))
        h = await open_handover(services)
        await services.handover.submit_handbook(Actor("am.chen"), h.id, h.version, HANDBOOK)
        clock.advance(dt.timedelta(days=2))
        await services.handover.sweep_deadlines()
        await job.run(services, clock.now())
    finance = inbox.to("li@example.com")
    assert len(finance) == 2  # the review request and the overdue review
    for message in finance:
        assert "Payment terms (days): 45" in body(message)
        assert "12,345,678" not in message.as_string() and "revenue" not in body(message)
    [owner] = inbox.to("chen@example.com")  # the account manager may read it
    assert "年收入: 12,345,678.00" in body(owner)


async def test_managers_up_the_chain_hear_of_a_red_customer_once(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    await people(services)
    customer = await services.customers.create(
        ADMIN, {"name": "Harbour", "annual_revenue": REVENUE}, owner_id="am.wu"
    )
    for days in (40, 10, 5):  # complaints up and an intent to leave: health RED
        kind = ActivityKind.LEAVE_INTENT if days == 5 else ActivityKind.COMPLAINT
        at = clock.now() - dt.timedelta(days=days)
        await services.tiering.record_activity(ADMIN, customer.id, kind, at=at)
    inbox = Inbox()
    with smtp_server(inbox) as port:
        job = EmailNotifier(mail_settings(settings, port))
        assert await job.run(services, clock.now()) == 0  # e-mail does not compute health
        assert await sweep_health(services, clock.now()) == 3  # the health sweep's events
        await job.run(services, clock.now())
        assert await sweep_health(services, clock.now()) == 0  # still raised: no new event
        await job.run(services, clock.now() + dt.timedelta(hours=1))
    assert sorted(m["To"] for m in inbox.messages) == ["li@example.com", "zhao@example.com"]
    zhao = inbox.to("zhao@example.com")[0]
    assert zhao["Subject"].startswith("【红色预警】客户 Harbour 健康度")
    assert "[RETENTION] Said they may leave" in body(zhao)


async def test_a_refusing_server_is_retried_with_backoff_until_it_recovers(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    await submitted(services)
    down = mail_settings(settings, free_port(), email_max_attempts=4)
    now = clock.now()
    assert await EmailNotifier(down).run(services, now) == 1  # planned; nobody listens
    [notice] = await notices(services)
    assert (notice.status, notice.attempts) == (NoticeStatus.PENDING, 1)
    assert notice.next_attempt_at == now + backoff(1) and "Connect" in str(notice.last_error)

    inbox = Inbox(failures=1)
    with smtp_server(inbox) as port:
        job = EmailNotifier(replace(down, smtp_port=port))
        assert await job.run(services, now) == 0  # not due yet
        now += backoff(1)
        assert await job.run(services, now) == 0  # 451: refused this time
        [notice] = await notices(services)
        assert notice.attempts == 2 and notice.last_error is not None
        assert "451" in notice.last_error and notice.next_attempt_at == now + backoff(2)
        now += backoff(2)
        assert await job.run(services, now) == 1
        assert await job.run(services, now + dt.timedelta(days=1)) == 0
    assert len(inbox.messages) == 1
    [notice] = await notices(services)
    assert (notice.status, notice.attempts, notice.sent_at) == (NoticeStatus.SENT, 3, now)


async def test_a_crash_between_sending_and_recording_sends_again_after_the_lease(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    await submitted(services)
    inbox = Inbox()
    with smtp_server(inbox) as port:
        job = EmailNotifier(mail_settings(settings, port))
        now = clock.now()
        async with services.db.transaction() as session:  # planned by a run …
            assert await Planner(services, EmailTemplates(), "zh").from_outbox(session, now) == 1
        claimed = await job._claim(services, now)  # … that claims it, sends it, and dies
        await job._deliver(claimed)
        assert len(inbox.messages) == 1
        assert await job.run(services, now + LEASE - dt.timedelta(seconds=1)) == 0
        assert await job.run(services, now + LEASE) == 1  # the next run sends it once more
        assert await job.run(services, now + dt.timedelta(days=1)) == 0
    assert len(inbox.messages) == 2  # at least once: the documented duplicate
    assert len({m["Message-ID"] for m in inbox.messages}) == 1


def test_an_unknown_default_locale_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="BATON_DEFAULT_LOCALE='fr'"):
        EmailNotifier(replace(settings, default_locale="fr"))


async def test_a_notice_fails_for_good_after_the_last_attempt(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    await submitted(services)
    inbox = Inbox(failures=5, refuse="550 5.1.1 no such mailbox")
    with smtp_server(inbox) as port:
        job = EmailNotifier(mail_settings(settings, port, email_max_attempts=2))
        now = clock.now()
        await job.run(services, now)
        await job.run(services, now + backoff(1))
        await job.run(services, now + dt.timedelta(days=1))
    [notice] = await notices(services)
    assert (notice.status, notice.attempts) == (NoticeStatus.FAILED, 2)
    assert inbox.messages == [] and inbox.failures == 3


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, generated for this test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_starttls_and_authentication(
    services: Services, settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bool]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)  # the server takes AUTH only after STARTTLS
        ok = (data.login, data.password) == (b"baton", b"s3cret-relay-pass")
        logins.append((data.login, ok))
        return AuthResult(success=ok, handled=False)  # the server answers 535 itself

    await submitted(services)
    inbox = Inbox()
    with smtp_server(
        inbox,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    ) as port:
        secure = mail_settings(
            settings,
            port,
            smtp_starttls=True,
            smtp_ca_file=str(cert),
            smtp_username="baton",
            smtp_password="wrong-password",
        )
        await EmailNotifier(secure).run(services, clock.now())
        [notice] = await notices(services)
        assert notice.status == NoticeStatus.PENDING and "535" in str(notice.last_error)
        assert "wrong-password" not in repr(secure) and "wrong-password" not in str(
            notice.last_error
        )
        right = replace(secure, smtp_password="s3cret-relay-pass")
        assert await EmailNotifier(right).run(services, clock.now() + backoff(1)) == 1
    # The client tries each mechanism the server offers with the wrong password, then succeeds.
    assert logins[-1] == (b"baton", True) and not any(ok for _, ok in logins[:-1])
    assert [m["To"] for m in inbox.messages] == ["li@example.com"]


def template_plugin(*templates: EmailTemplate) -> types.ModuleType:
    module = types.ModuleType("acme_mail")

    @hookimpl
    def baton_email_templates() -> list[EmailTemplate]:
        return list(templates)

    module.baton_email_templates = baton_email_templates  # type: ignore[attr-defined]
    return module


async def test_a_plugin_rewords_a_notice_through_its_hook(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    wording = EmailTemplate(
        "handbook_submitted",
        "en",
        subject="ACME: review $customer_name",
        body="Dear $recipient_name, handover $handover_id awaits you.\n$customer_facts\n",
    )
    registry = register([("acme_mail", template_plugin(wording), "1.0")])
    assert registry.plugins[0].hooks == ("baton_email_templates",)
    h = await submitted(services)
    inbox = Inbox()
    with smtp_server(inbox) as port:
        job = EmailNotifier(mail_settings(settings, port), EmailTemplates(registry.plugins))
        await job.run(services, clock.now())
    [message] = inbox.messages
    assert message["Subject"] == "ACME: review 宁波港物流"
    assert body(message).startswith(f"Dear Li Wei, handover {h.id} awaits you.\nValue tier:")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (EmailTemplate("nope", "en", "s", "b"), "no such notice"),
        (EmailTemplate("health_red", "fr", "s", "b"), "locale must be one of zh, en"),
        (EmailTemplate("health_red", "en", "$annual_revenue", "b"), "unknown placeholder"),
        (EmailTemplate("health_red", "en", "s", "100$"), "a `$` not followed"),
    ],
)
def test_a_plugin_template_that_cannot_render_fails_at_start(
    template: EmailTemplate, reason: str
) -> None:
    registry = register([("acme_mail", template_plugin(template), "1.0")])
    with pytest.raises(PluginError, match="acme_mail") as raised:
        EmailTemplates(registry.plugins)
    assert reason in str(raised.value)


async def test_no_smtp_host_plans_and_sends_nothing(
    services: Services, settings: Settings, clock: FixedClock
) -> None:
    await submitted(services)
    assert await EmailNotifier(settings).run(services, clock.now()) == 0
    assert await notices(services) == []


def test_the_smtp_password_is_never_printed() -> None:
    settings = Settings(smtp_password="hunter2-relay")
    assert "hunter2-relay" not in repr(settings)
    # Nor by `baton doctor`, which prints the effective settings.
    shown = settings.effective()
    assert shown["BATON_SMTP_PASSWORD"] == "set (13 bytes)"
    assert not any("hunter2-relay" in value for value in shown.values())


async def test_a_user_chooses_the_language_of_their_e_mails(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    create = (
        """mutation($input: CreateUserInput!) { createUser(input: $input) { user { locale } } }"""
    )
    refused = await gql.execute(
        admin, create, {"input": {"id": "u.x", "name": "X", "locale": "fr"}}
    )
    assert error_codes(refused) == ["BAD_USER_INPUT"]
    assert refused["errors"][0]["extensions"]["fields"] == [
        {"path": "input.locale", "reason": "must be one of zh, en"}
    ]
    made = await gql.data(admin, create, {"input": {"id": "u.x", "name": "X", "locale": "en"}})
    assert made["createUser"]["user"] == {"locale": "en"}
    update = """mutation($input: UpdateUserInput!) {
      updateUser(input: $input) { user { id locale } } }"""
    changed = await gql.data(admin, update, {"input": {"userId": "u.x", "locale": "zh"}})
    assert changed["updateUser"]["user"] == {"id": "u.x", "locale": "zh"}
    denied = await gql.execute("am.chen", update, {"input": {"userId": "u.x", "locale": "en"}})
    assert error_codes(denied) == ["FORBIDDEN"]
    log = await gql.data(
        admin, '{ auditLog(filter: { entityId: "u.x" }) { edges { node { action } } } }'
    )
    assert [e["node"]["action"] for e in log["auditLog"]["edges"]] == ["updateUser", "createUser"]


def test_the_cli_sets_a_users_locale(database_url: str) -> None:
    def baton(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, [*args, "--database", database_url])
        return result.exit_code, result.output

    assert baton("user", "add", "am.cli", "--name", "Cli", "--locale", "en")[0] == 0
    assert baton("user", "locale", "am.cli", "zh") == (0, "user am.cli: e-mail locale zh\n")
    code, out = baton("user", "locale", "am.cli", "de")
    assert code == 1 and "locale: must be one of zh, en" in out

    async def locale() -> str | None:
        db = Database(database_url)
        try:
            async with db.reader() as session:
                user = await session.get(User, "am.cli")
                assert user is not None
                return user.locale
        finally:
            await db.dispose()

    assert asyncio.run(locale()) == "zh"
