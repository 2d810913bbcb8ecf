"""The admin console and GraphiQL in a real browser: Debian's chromium driven by Playwright,
against a real ``baton serve`` on 127.0.0.1 with the demo data (SQLite).

Every page is loaded under the Content-Security-Policy Baton's HTML pages are served with,
must log no console errors, and must not send a single request off 127.0.0.1. One
screenshot per page goes to ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from core.app import create_app
from core.config import Settings
from core.db import Database
from core.identity import issue_token
from core.services import Actor, Services
from tests.conftest import JWT_SECRET, answers, free_port

try:
    from playwright import sync_api
except ImportError:  # never silently in CI
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(
        "BROWSER TESTS NOT RUN: playwright is missing (pip install -e '.[test]')",
        allow_module_level=True,
    )

ARTIFACTS = Path(__file__).parent / "artifacts"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDENTITY_AND_PAYMENT = {
    "name",
    "kind",
    "industry",
    "territory",
    "paymentTermsDays",
    "paymentMethod",
    "invoiceRequirements",
}


def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when missing (CI runs as root)."""
    found = shutil.which("chromium")
    if found or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        subprocess.run(command, check=False, capture_output=True, timeout=600)
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _install_chromium()
    if path is None:
        reason = (
            "BROWSER TESTS NOT RUN: Debian's chromium is missing and could not be installed "
            "(apt-get install -y chromium, as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


async def _seed(url: str) -> None:
    """A small company: an admin, finance, a team, customers with payment terms and revenue;
    am.chen's customers are backed up by am.wu, but for one."""
    services = Services.create(Database(url))
    await services.prepare()
    system = Actor.system()
    await services.users.create(system, "admin", "Ada Admin", roles=["admin"])
    await services.users.create(system, "fin.he", "He Xin", roles=["finance"])
    await services.users.create(system, "tm.li", "Li Wei", roles=["team_manager"], team="east")
    for uid, name in (("am.chen", "Chen Jie"), ("am.wu", "Wu Hao")):
        await services.users.create(
            system, uid, name, roles=["account_manager"], manager_id="tm.li", team="east"
        )
    for n, name in enumerate(("Acme Motors", "Bright Bank", "Cobalt Chemicals", "Delta Retail")):
        await services.customers.create(
            Actor("admin"),
            {
                "name": name,
                "annual_revenue": Decimal(1_000_000 * (n + 1)),
                "payment_terms_days": 30 + 15 * n,
                "backup_owner_id": "am.wu" if n < 3 else None,
            },
            owner_id="am.chen",
        )
    await services.db.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app under uvicorn on a free local port, in a thread of this process (a
    subprocess would import everything again), over a freshly seeded SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('console') / 'baton.db'}"
    # Its own thread: Playwright's sync API may already run an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _seed(url)).result()
    app = create_app(Settings(database_url=url, jwt_secret=JWT_SECRET))
    port = free_port()
    served = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=served.run, name="console-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not answers(base):
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield base
    finally:
        served.should_exit = True
        thread.join(15)


def token(user: str, ttl: timedelta = timedelta(hours=1)) -> str:
    return issue_token(user, JWT_SECRET, now=datetime.now(UTC), ttl=ttl)


def api(base: str, user: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    """A GraphQL request as ``user``, straight to the server (what their app would send)."""
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token(user)}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


# Module scope: Playwright's sync API runs an event loop in this thread while it is open,
# which would break the other modules' asyncio.run; it closes after this module's tests.
@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Tab:
    """A page at 1280 x 800 under Baton's CSP that records console errors and every URL asked
    for; requests leaving 127.0.0.1 are refused."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.errors: list[str] = []
        self.allowed_errors: list[str] = []  # patterns a test expects (a 401 it provoked)
        self.offsite: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def _route(self, route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            self.offsite.append(route.request.url)
            route.abort()
            return
        response = route.fetch()
        headers = dict(response.headers)
        if headers.get("content-type", "").startswith("text/html"):
            headers["content-security-policy"] = CSP
        route.fulfill(response=response, headers=headers)

    def sign_in(
        self, user: str = "admin", ttl: timedelta = timedelta(hours=1), at: str = ""
    ) -> None:
        """Paste a token for ``user`` into the sign-in form, on page ``at`` (the first one
        allowed when empty)."""
        self.page.goto(f"{self.base}/admin/#{at}")
        self.page.get_by_label("Access token").fill(token(user, ttl))
        self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"))

    def close(self) -> None:
        self.context.unroute_all(behavior="ignoreErrors")  # requests still in flight
        self.context.close()
        unexpected = [
            e for e in self.errors if not any(re.search(p, e) for p in self.allowed_errors)
        ]
        assert unexpected == [], unexpected
        assert self.offsite == [], f"requests left 127.0.0.1: {self.offsite}"


@pytest.fixture
def tab(browser: Any, server: str) -> Iterator[Tab]:
    opened = Tab(browser, server)
    yield opened
    opened.close()


def cell(tab: Tab, role: str, obj: str, action: str) -> Any:
    return tab.page.locator(
        f'button.perm[data-role="{role}"][data-object="{obj}"][data-action="{action}"]'
    )


def confirm(tab: Tab, reason: str) -> str:
    """Fill the confirmation's reason, apply, and return the change it listed."""
    dialog = tab.page.get_by_role("dialog")
    changes = dialog.locator("ul.changes").inner_text()
    dialog.get_by_label("Reason (recorded in the audit log)").fill(reason)
    dialog.get_by_role("button", name="Apply").click()
    tab.page.get_by_role("status").filter(has_text="Applied").wait_for()
    return str(changes)


def test_sign_in_shows_who_and_roles(tab: Tab) -> None:
    tab.page.goto(f"{tab.base}/admin/")
    tab.shot("sign-in")
    tab.sign_in()
    who = tab.page.locator("#whoami-text")
    who.filter(has_text="Ada Admin").wait_for()
    assert "roles: admin" in who.inner_text()
    tab.page.locator("#matrix-table").wait_for()
    tab.shot("matrix")


def test_matrix_shows_who_may_read_annual_revenue(tab: Tab) -> None:
    tab.sign_in()
    tab.page.get_by_label("Search").fill("annualRevenue")
    rows = tab.page.locator("#matrix-table tbody tr:not(.group)")
    assert rows.count() == 1
    reads = {
        role: cell(tab, role, "Customer.annualRevenue", "read").get_attribute("class")
        for role in ("account_manager", "team_manager", "finance", "auditor", "admin")
    }
    assert reads == {
        "account_manager": "perm own",  # through its own Customer.*
        "team_manager": "perm inherited",  # from account_manager
        "finance": "perm none",
        "auditor": "perm none",
        "admin": "perm own",
    }
    tab.shot("matrix-filtered")


REVENUE = "{ customers(first: 1) { edges { node { name annualRevenue } } } }"


def revenue_errors(base: str, user: str) -> list[str]:
    body = api(base, user, REVENUE)
    assert body["data"]["customers"]["edges"], body
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def test_grant_and_revoke_take_effect_on_the_roles_next_request(tab: Tab) -> None:
    assert revenue_errors(tab.base, "fin.he") == ["FORBIDDEN_FIELD"]
    tab.sign_in()
    tab.page.get_by_label("Search").fill("annualRevenue")
    cell(tab, "finance", "Customer.annualRevenue", "read").focus()  # by keyboard
    tab.page.keyboard.press("Enter")
    assert confirm(tab, "quarter close") == "grant finance: read on Customer.annualRevenue"
    assert cell(tab, "finance", "Customer.annualRevenue", "read").get_attribute("class") == (
        "perm own"
    )
    assert revenue_errors(tab.base, "fin.he") == []
    cell(tab, "finance", "Customer.annualRevenue", "read").click()
    tab.shot("confirm")
    assert confirm(tab, "quarter closed") == "revoke finance: read on Customer.annualRevenue"
    assert revenue_errors(tab.base, "fin.he") == ["FORBIDDEN_FIELD"]
    history = api(
        tab.base,
        "admin",
        '{ auditLog(first: 2, filter: {entityType: "Role", entityId: "finance"}) '
        "{ edges { node { action reason actor { id } } } } }",
    )
    assert [e["node"] for e in history["data"]["auditLog"]["edges"]] == [
        {"action": "revokePermission", "reason": "quarter closed", "actor": {"id": "admin"}},
        {"action": "grantPermission", "reason": "quarter close", "actor": {"id": "admin"}},
    ]


def test_see_as_finance_shows_only_identity_and_payment_fields(tab: Tab) -> None:
    tab.sign_in(at="see-as")
    tab.page.get_by_label("See as").select_option("role:finance")
    tab.page.locator("#see-as-customer option").first.wait_for(state="attached")
    tab.page.get_by_role("button", name="Show").click()
    table = tab.page.locator("#see-as-table")
    table.wait_for()
    visible = set(table.locator("tr:has(td.visible) th").all_inner_texts())
    redacted = set(table.locator("tr:has(td.redacted) th").all_inner_texts())
    core = {f for f in visible if not f.startswith("specialNeeds.")}
    assert "paymentTermsDays" in core and core <= IDENTITY_AND_PAYMENT
    assert {"annualRevenue", "contacts", "specialNeeds.banking.riskTolerance"} <= redacted
    # plugin fields finance may read (its plugin policies) show as such
    assert "specialNeeds.banking.aumBand" in visible
    tab.shot("see-as")
    log = api(
        tab.base,
        "admin",
        '{ auditLog(first: 1, filter: {action: "seeAs"}) '
        "{ edges { node { actor { id } entityId } } } }",
    )
    assert log["data"]["auditLog"]["edges"][0]["node"] == {
        "actor": {"id": "admin"},
        "entityId": "finance",
    }


def test_copy_a_role(tab: Tab) -> None:
    tab.sign_in()
    tab.page.get_by_label("Copy role").select_option("finance")
    tab.page.get_by_label("to new role").fill("finance_eu")
    tab.page.get_by_role("button", name="Copy…").click()
    changes = confirm(tab, "EU finance team").splitlines()
    assert changes[-1] == "grant finance_eu: scope:ALL on Customer"
    cell(tab, "finance_eu", "Customer.paymentTermsDays", "read").wait_for()
    roles = api(
        tab.base,
        "admin",
        '{ a: policies(role: "finance") { scope effectivePermissions { object action } } '
        'b: policies(role: "finance_eu") { scope effectivePermissions { object action } } }',
    )["data"]
    assert roles["a"] == roles["b"]


def test_policy_history_and_chain(tab: Tab) -> None:
    tab.sign_in()
    tab.page.get_by_role("link", name="Policy history").click()
    tab.page.locator("#history-table").wait_for()
    tab.page.get_by_role("button", name="Verify the audit chain").click()
    status = tab.page.locator("#chain-status")
    status.wait_for()
    assert status.inner_text().startswith("Audit chain verified")
    assert "installDefaultPolicies" in tab.page.locator("#history-table").inner_text()
    tab.shot("history")


def test_deactivation_preview_shows_interim_owners_and_writes_nothing(tab: Tab) -> None:
    releases = api(
        tab.base,
        "admin",
        'mutation { deactivateUser(input: {userId: "am.chen", dryRun: true}) '
        "{ releases { customer { name } interimOwner { id } } } }",
    )["data"]["deactivateUser"]["releases"]
    assert len(releases) == 4 and sum(r["interimOwner"] is None for r in releases) == 1
    tab.sign_in(at="users")
    tab.page.locator('tr[data-user="am.chen"]').get_by_role("button", name="Deactivate…").click()
    dialog = tab.page.get_by_role("dialog")
    dialog.locator("ul.changes li").first.wait_for()
    listed = dialog.locator("ul.changes li").all_inner_texts()
    assert len(listed) == len(releases)
    for release, line in zip(
        sorted(releases, key=lambda r: r["customer"]["name"]), sorted(listed), strict=True
    ):
        assert line.startswith(release["customer"]["name"])
        owner = release["interimOwner"]
        assert (f"interim owner {owner['id']}" if owner else "no interim owner") in line
    tab.shot("users-deactivate")
    tab.page.keyboard.press("Escape")  # cancels, as the Cancel button does
    dialog.wait_for(state="hidden")
    assert "Cancelled" in tab.page.get_by_role("status").inner_text()
    user = api(tab.base, "admin", '{ user(id: "am.chen") { active } }')
    assert user["data"]["user"] == {"active": True}
    tab.page.locator("#users-table").wait_for()
    tab.shot("users")


def test_add_a_user_and_change_their_roles(tab: Tab) -> None:
    tab.sign_in(at="users")
    form = tab.page.locator("#add-user")
    form.get_by_label("User id").fill("am.new")
    form.get_by_label("Name").fill("New Hire")
    form.get_by_label("Manager id").fill("tm.li")
    form.get_by_label("Role").select_option("account_manager")
    form.get_by_role("button", name="Add user").click()
    row = tab.page.locator('tr[data-user="am.new"]')
    row.wait_for()
    row.get_by_role("checkbox", name="auditor").check()
    row.get_by_role("checkbox", name="account_manager").uncheck()
    row.get_by_role("button", name="Save roles…").click()
    dialog = tab.page.get_by_role("dialog")
    assert dialog.locator("ul.changes li").all_inner_texts() == [
        "assign auditor",
        "unassign account_manager",
    ]
    dialog.get_by_label("Reason (recorded in the audit log)").fill("moved to audit")
    dialog.get_by_role("button", name="Apply").click()
    tab.page.get_by_role("status").filter(has_text="Roles of am.new changed").wait_for()
    user = api(tab.base, "admin", '{ user(id: "am.new") { name roles manager { id } } }')
    assert user["data"]["user"] == {
        "name": "New Hire",
        "roles": ["auditor"],
        "manager": {"id": "tm.li"},
    }


def test_graphiql_runs_a_query_offline(tab: Tab) -> None:
    tab.sign_in(at="users")  # GraphiQL picks up the console's token from this tab
    tab.page.locator("#whoami-text").filter(has_text="Ada Admin").wait_for()
    tab.page.goto(f"{tab.base}/graphql")
    headers = tab.page.locator(".graphiql-editor-tool .CodeMirror").last
    headers.wait_for()
    assert '"Authorization": "Bearer ey' in headers.inner_text()
    tab.page.locator(".graphiql-execute-button").click()
    result = tab.page.locator(".result-window")
    result.filter(has_text="Ada Admin").wait_for()
    tab.shot("graphiql")


def test_clear_errors_for_expired_token_non_admin_and_network(tab: Tab) -> None:
    tab.allowed_errors = [r"status of 401", r"net::ERR_FAILED"]
    tab.sign_in(ttl=timedelta(seconds=-60))
    alert = tab.page.get_by_role("alert")
    alert.filter(has_text="refused").wait_for()
    assert "expired" in alert.inner_text()
    assert tab.page.get_by_role("button", name="Sign out").is_hidden()
    assert tab.page.get_by_label("Access token").is_visible()
    tab.shot("expired")
    # finance: no policy pages, only what its policies allow (the user list)
    tab.sign_in("fin.he")
    tab.page.locator("#users-table").wait_for()
    assert tab.page.get_by_role("link", name="Roles & fields").is_hidden()
    # finance may list users, not change them: no role editing, deactivation or adding
    assert tab.page.get_by_role("button", name="Deactivate…").count() == 0
    assert tab.page.get_by_role("button", name="Add user").count() == 0
    # ... and reads users only as far as its policies go: User.roles is not among them
    row = tab.page.locator('tr[data-user="fin.he"]').inner_text()
    assert "He Xin" in row and "finance" not in row
    tab.page.goto(f"{tab.base}/admin/#matrix")
    tab.page.get_by_text("do not allow this page").wait_for()
    # the server goes away: requests fail with a clear message
    tab.page.route("**/graphql", lambda route: route.abort())
    tab.page.get_by_role("link", name="Users").click()
    alert.filter(has_text="Cannot reach the Baton server").wait_for()


def test_narrow_window(tab: Tab) -> None:
    tab.page.set_viewport_size({"width": 390, "height": 800})
    tab.sign_in()
    tab.page.locator("#matrix-table").wait_for()
    assert tab.page.get_by_role("link", name="Users").is_visible()
    tab.shot("narrow")


def test_revoke_one_field_from_a_role_holding_a_wildcard(tab: Tab) -> None:
    """The done criterion: find who may read annualRevenue, take it from one role."""
    tab.sign_in()
    tab.page.get_by_label("Search").fill("annualRevenue")
    cell(tab, "account_manager", "Customer.annualRevenue", "read").click()
    dialog = tab.page.get_by_role("dialog")
    assert "inheriting it (sales_director, team_manager)" in dialog.inner_text()
    changes = dialog.locator("ul.changes").inner_text().splitlines()
    assert changes[-1] == "revoke account_manager: read on Customer.*"
    assert "grant account_manager: read on Customer.name" in changes
    assert "grant account_manager: read on Customer.annualRevenue" not in changes
    confirm(tab, "revenue is finance's business")
    assert revenue_errors(tab.base, "am.chen") == ["FORBIDDEN_FIELD"]
    # the rest of the customer stays readable, and team_manager (its heir) lost it too
    body = api(
        tab.base, "am.chen", "{ customers(first: 1) { edges { node { name owner { id } } } } }"
    )
    assert "errors" not in body
    assert cell(tab, "team_manager", "Customer.annualRevenue", "read").get_attribute("class") == (
        "perm none"
    )
