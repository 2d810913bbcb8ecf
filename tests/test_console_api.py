"""The public API the admin console uses: "see as", roles with their effective rules, the
objects a policy can name, the audit chain's status, reasons on policy changes and the
deactivation preview. Over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.authz.view import PermissionView
from core.domain import AuditEntry, ReassignmentRequest
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

CUSTOMER = """query ($id: ID!) {
  customer(id: $id) { name paymentTermsDays annualRevenue }
}"""


@pytest.fixture
async def acme(services: Services, admin: str) -> str:
    """A customer owned by am.chen, backed up by am.wu, with revenue and payment terms."""
    await services.users.create(Actor.system(), "fin.he", "He Xin", roles=["finance"])
    customer = await services.customers.create(
        Actor("admin"),
        {
            "name": "Acme",
            "annual_revenue": Decimal("2500000"),
            "payment_terms_days": 45,
            "backup_owner_id": "am.wu",
        },
        owner_id="am.chen",
    )
    return customer.id


async def seen_as(gql: GraphQLClient, query: str, target: str) -> dict[str, Any]:
    """The data of ``query`` run by the admin as ``target``, which must have no errors."""
    body = await gql.execute("admin", query, headers={"X-Baton-See-As": target})
    assert "errors" not in body, body["errors"]
    return body["data"]  # type: ignore[no-any-return]


async def audit_count(services: Services) -> int:
    async with services.db.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


async def test_see_as_finance_shows_payment_terms_not_revenue(
    gql: GraphQLClient, services: Services, acme: str
) -> None:
    body = await gql.execute(
        "admin", CUSTOMER, {"id": acme}, headers={"X-Baton-See-As": "role:finance"}
    )
    assert body["data"]["customer"] == {
        "name": "Acme",
        "paymentTermsDays": 45,
        "annualRevenue": None,
    }
    assert [(e["extensions"]["code"], e["extensions"]["object"]) for e in body["errors"]] == [
        ("FORBIDDEN_FIELD", "Customer.annualRevenue")
    ]
    # The admin's own request still reads it.
    data = await gql.data("admin", CUSTOMER, {"id": acme})
    assert data["customer"]["annualRevenue"] is not None


async def test_see_as_is_audited_with_who_whom_and_what(
    gql: GraphQLClient, services: Services, acme: str
) -> None:
    await gql.execute("admin", CUSTOMER, {"id": acme}, headers={"X-Baton-See-As": "role:finance"})
    log = await gql.data(
        "admin",
        """{ auditLog(filter: {action: "seeAs"}) { edges { node {
             actor { id } entityType entityId changes { field after } } } } }""",
    )
    [entry] = [e["node"] for e in log["auditLog"]["edges"]]
    assert (entry["actor"], entry["entityType"], entry["entityId"]) == (
        {"id": "admin"},
        "Role",
        "finance",
    )
    [change] = entry["changes"]
    assert change["field"] == "request"
    assert acme in change["after"] and "annualRevenue" in change["after"]


async def test_see_as_user_uses_their_row_scope(
    gql: GraphQLClient, services: Services, acme: str
) -> None:
    query = "{ viewer { user { id } roles scope } customers { edges { node { id } } } }"
    as_owner = await seen_as(gql, query, "user:am.chen")
    assert as_owner["viewer"] == {
        "user": {"id": "am.chen"},
        "roles": ["account_manager"],
        "scope": "OWN",
    }
    assert [e["node"]["id"] for e in as_owner["customers"]["edges"]] == [acme]
    # A role owns no customers: an OWN-scoped role reaches none; finance (ALL) reaches Acme.
    as_role = await seen_as(gql, query, "role:account_manager")
    assert as_role["customers"]["edges"] == []
    assert as_role["viewer"]["roles"] == ["account_manager"]
    as_finance = await seen_as(gql, query, "role:finance")
    assert [e["node"]["id"] for e in as_finance["customers"]["edges"]] == [acme]


async def test_see_as_refuses_mutations_and_writes_nothing(
    gql: GraphQLClient, services: Services, acme: str
) -> None:
    before = await audit_count(services)
    body = await gql.execute(
        "admin",
        """mutation ($id: ID!) { updateCustomer(input: {id: $id, expectedVersion: 1,
             paymentTermsDays: 10}) { customer { paymentTermsDays } } }""",
        {"id": acme},
        headers={"X-Baton-See-As": "role:finance"},
    )
    assert error_codes(body) == ["FORBIDDEN"]
    data = await gql.data("admin", CUSTOMER, {"id": acme})
    assert data["customer"]["paymentTermsDays"] == 45
    assert await audit_count(services) == before + 1  # the look itself, nothing else


@pytest.mark.parametrize("user", ["am.chen", "fin.he"])
async def test_see_as_needs_its_permission_and_writes_nothing(
    gql: GraphQLClient, services: Services, acme: str, user: str
) -> None:
    before = await audit_count(services)
    response = await gql.post(
        user, CUSTOMER, {"id": acme}, headers={"X-Baton-See-As": "role:admin"}
    )
    assert response.status_code == 403
    assert error_codes(response.json()) == ["FORBIDDEN"]
    assert await audit_count(services) == before


async def test_see_as_can_be_granted_to_another_role(
    gql: GraphQLClient, services: Services, acme: str
) -> None:
    await services.policies.grant(Actor("admin"), "auditor", "Query.seeAs", "call")
    await services.users.create(Actor.system(), "aud.xu", "Xu", roles=["auditor"])
    body = await gql.execute(
        "aud.xu", CUSTOMER, {"id": acme}, headers={"X-Baton-See-As": "user:fin.he"}
    )
    assert body["data"]["customer"]["paymentTermsDays"] == 45


@pytest.mark.parametrize(
    "target", ["finance", "role:no_such_role", "user:nobody", "group:finance", "role:"]
)
async def test_see_as_bad_target_is_a_bad_request(
    gql: GraphQLClient, services: Services, acme: str, target: str
) -> None:
    before = await audit_count(services)
    response = await gql.post("admin", CUSTOMER, {"id": acme}, headers={"X-Baton-See-As": target})
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert "seeAs" in response.json()["errors"][0]["message"]
    assert await audit_count(services) == before


async def test_roles_show_effective_permissions_and_scope(gql: GraphQLClient, admin: str) -> None:
    data = await gql.data(
        "admin",
        """{ policies(role: "team_manager") { role inherits scope
             effectivePermissions { object action } } }""",
    )
    [tm] = data["policies"]
    assert (tm["inherits"], tm["scope"]) == (["account_manager"], "TEAM")
    effective = {(p["object"], p["action"]) for p in tm["effectivePermissions"]}
    # inherited from account_manager and, through it, staff
    assert {("Customer.*", "read"), ("Query.viewer", "call"), ("User.*", "read")} <= effective


async def test_policy_objects_list_fields_operations_and_plugin_fields(
    gql: GraphQLClient, admin: str
) -> None:
    data = await gql.data("admin", "{ policyObjects { object kind typeName fieldName } }")
    objects = {o["object"]: o["kind"] for o in data["policyObjects"]}
    assert objects["Customer.annualRevenue"] == "FIELD"
    assert objects["BankingSpecialNeeds.riskTolerance"] == "FIELD"
    assert objects["Mutation.grantPermission"] == "OPERATION"
    assert objects["Query.seeAs"] == "OPERATION"
    assert "Customer.id" not in objects  # structural: never guarded
    body = await gql.execute("am.chen", "{ policyObjects { object } }")
    assert error_codes(body) == ["FORBIDDEN"]


async def test_audit_chain_status(gql: GraphQLClient, admin: str) -> None:
    data = await gql.data("admin", "{ auditChain { ok entries headSeq headHash badSeq reason } }")
    chain = data["auditChain"]
    assert chain["ok"] is True and chain["entries"] == chain["headSeq"] > 0
    assert len(chain["headHash"]) == 64 and chain["badSeq"] is None
    assert error_codes(await gql.execute("am.chen", "{ auditChain { ok } }")) == ["FORBIDDEN"]


async def test_policy_change_reason_is_audited(gql: GraphQLClient, admin: str) -> None:
    await gql.data(
        "admin",
        """mutation { revokePermission(input: {role: "finance", object: "Customer.paymentMethod",
             action: "read", reason: "ticket 42"}) { permission { object } } }""",
    )
    log = await gql.data(
        "admin",
        """{ auditLog(filter: {entityType: "Role", entityId: "finance"}, first: 1) {
             edges { node { action reason } } } }""",
    )
    [edge] = log["auditLog"]["edges"]
    assert edge["node"]["action"] == "revokePermission"
    assert edge["node"]["reason"] == "ticket 42"


DEACTIVATE = """mutation ($dry: Boolean!) {
  deactivateUser(input: {userId: "am.chen", reason: "left", dryRun: $dry}) {
    dryRun user { active }
    requests { id }
    releases { customer { name } interimOwner { id } opensRequest }
  }
}"""


async def test_deactivation_dry_run_previews_and_writes_nothing(
    gql: GraphQLClient, services: Services, acme: str
) -> None:
    await services.customers.create(Actor("admin"), {"name": "Solo"}, owner_id="am.chen")
    before = await audit_count(services)
    preview = (await gql.data("admin", DEACTIVATE, {"dry": True}))["deactivateUser"]
    assert preview["dryRun"] is True and preview["user"] == {"active": True}
    assert preview["requests"] == []
    expected = [
        {"customer": {"name": "Acme"}, "interimOwner": {"id": "am.wu"}, "opensRequest": True},
        {"customer": {"name": "Solo"}, "interimOwner": None, "opensRequest": True},
    ]
    assert sorted(preview["releases"], key=lambda r: r["customer"]["name"]) == expected
    assert await audit_count(services) == before
    async with services.db.reader() as session:
        assert not await session.scalar(select(func.count()).select_from(ReassignmentRequest))
    # The real run does what the preview said.
    done: dict[str, Any] = (await gql.data("admin", DEACTIVATE, {"dry": False}))["deactivateUser"]
    assert done["dryRun"] is False and done["user"] == {"active": False}
    assert sorted(done["releases"], key=lambda r: r["customer"]["name"]) == expected
    assert len(done["requests"]) == 2


async def test_deactivation_dry_run_needs_the_same_permission(
    gql: GraphQLClient, acme: str
) -> None:
    body = await gql.execute("fin.he", DEACTIVATE, {"dry": True})
    assert error_codes(body) == ["FORBIDDEN"]


CUSTOMERS = """{ viewer { user { id } roles scope }
  customers(first: 20) { totalCount edges { node {
    name annualRevenue paymentTermsDays contacts { name } owner { id } } } } }"""


@pytest.mark.parametrize("user", ["am.chen", "am.wu", "tm.li", "fin.he"])
async def test_see_as_user_gets_exactly_what_the_user_gets(
    gql: GraphQLClient, services: Services, acme: str, user: str
) -> None:
    await services.customers.create(Actor("admin"), {"name": "Other"}, owner_id="am.wu")
    own = await gql.execute(user, CUSTOMERS)
    seen = await gql.execute("admin", CUSTOMERS, headers={"X-Baton-See-As": f"user:{user}"})
    assert seen == own


async def test_see_as_ignores_an_idempotency_key(
    gql: GraphQLClient, services: Services, acme: str
) -> None:
    headers = {"X-Baton-See-As": "role:finance", "Idempotency-Key": "look-1"}
    for _ in range(2):  # both run (and are audited); nothing is stored to replay
        body = await gql.execute("admin", CUSTOMER, {"id": acme}, headers=headers)
        assert body["data"]["customer"]["paymentTermsDays"] == 45


NAMES = st.sampled_from(["Customer", "Query", "Mutation", "User", "*"])
FIELDS = st.sampled_from(["name", "annualRevenue", "customers", "updateCustomer", "*"])


@given(
    lines=st.lists(
        st.tuples(
            st.builds(lambda t, f: t if t == "*" else f"{t}.{f}", NAMES, FIELDS),
            st.sampled_from(["read", "write", "call"]),
        ),
        max_size=8,
    ),
    obj=st.builds(lambda t, f: f"{t}.{f}", NAMES.filter(lambda t: t != "*"), FIELDS),
    action=st.sampled_from(["read", "write", "call"]),
)
def test_a_read_only_view_allows_exactly_the_reads(
    lines: list[tuple[str, str]], obj: str, action: str
) -> None:
    view = PermissionView.compile(["some_role"], lines)
    read_only = view.as_read_only()
    is_read = action == "read" or (action == "call" and obj.startswith("Query."))
    assert read_only.allows(obj, action) == (view.allows(obj, action) and is_read)
    assert (read_only.roles, read_only.scope) == (view.roles, view.scope)
