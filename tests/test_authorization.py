"""Field-level access on every path: nesting, aliases, fragments, lists, batches, payloads,
audit entries, filters and orderings, error messages; writes; operations; row scope."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

SECRET_REVENUE = "987654.32"


@pytest.fixture
async def world(services: Services, admin: str) -> dict[str, str]:
    """Finance, service and auditor users; customers owned by am.chen, am.wu and nobody."""
    system = Actor.system()
    for uid, role in (
        ("fin.he", "finance"),
        ("cs.liu", "customer_service"),
        ("aud.xu", "auditor"),
        ("sd.wang", "sales_director"),
        ("am.out", "account_manager"),
    ):
        await services.users.create(system, uid, uid, roles=[role])
    ids = {}
    for key, owner, contact in (
        ("chen", "am.chen", "admin"),
        ("wu", "am.wu", "admin"),
        ("lead", None, "am.chen"),
        ("out", "am.out", "admin"),
    ):
        customer = await services.customers.create(
            Actor(contact),
            {
                "name": f"Customer {key}",
                "annual_revenue": Decimal(SECRET_REVENUE),
                "payment_terms_days": 30,
                "territory": "CN/East",
                "invoice_requirements": "PO",
            },
            owner_id=owner,
        )
        ids[key] = customer.id
    return ids


def forbidden_objects(body: dict[str, Any]) -> list[str]:
    return sorted(
        e["extensions"]["object"]
        for e in body.get("errors", [])
        if e["extensions"]["code"] == "FORBIDDEN_FIELD"
    )


def assert_no_secret(body: dict[str, Any]) -> None:
    text = json.dumps(body)
    assert SECRET_REVENUE not in text and "987654" not in text


async def test_finance_reads_payment_fields_not_revenue(gql: GraphQLClient, world: dict) -> None:
    body = await gql.execute(
        "fin.he",
        """query($id: ID!) { customer(id: $id) { id version name territory
        paymentTermsDays invoiceRequirements annualRevenue owner { id } } }""",
        {"id": world["chen"]},
    )
    customer = body["data"]["customer"]
    assert customer["name"] == "Customer chen"
    assert customer["paymentTermsDays"] == 30
    assert customer["annualRevenue"] is None and customer["owner"] is None
    assert forbidden_objects(body) == ["Customer.annualRevenue", "Customer.owner"]
    assert_no_secret(body)


async def test_aliases_and_fragments_do_not_bypass(gql: GraphQLClient, world: dict) -> None:
    body = await gql.execute(
        "fin.he",
        """
      query($id: ID!) {
        a: customer(id: $id) { money: annualRevenue ...F ... on Customer { again: annualRevenue } }
        n: node(id: $id) { ... on Customer { annualRevenue name } }
      }
      fragment F on Customer { profit: annualRevenue name }""",
        {"id": world["chen"]},
    )
    assert body["data"]["a"]["money"] is None
    assert body["data"]["a"]["profit"] is None
    assert body["data"]["a"]["again"] is None
    assert body["data"]["n"] == {"annualRevenue": None, "name": "Customer chen"}
    assert set(forbidden_objects(body)) == {"Customer.annualRevenue"}
    assert len(forbidden_objects(body)) == 4
    assert_no_secret(body)


async def test_lists_and_batches_do_not_bypass(gql: GraphQLClient, world: dict) -> None:
    query = "{ customers(first: 50) { edges { node { name annualRevenue } } } }"
    body = await gql.execute("fin.he", query)
    rows = [e["node"] for e in body["data"]["customers"]["edges"]]
    assert len(rows) == 4 and all(r["annualRevenue"] is None for r in rows)
    assert len(forbidden_objects(body)) == 4
    batch = await gql.http.post(
        "/graphql",
        json=[{"query": query}, {"query": query}],
        headers={"Authorization": f"Bearer {gql.token('fin.he')}"},
    )
    assert_no_secret(batch.json())


async def test_mutation_payload_does_not_bypass(gql: GraphQLClient, world: dict) -> None:
    body = await gql.execute(
        "fin.he",
        """mutation($id: ID!) { updateCustomer(input:
        {id: $id, expectedVersion: 1, paymentTermsDays: 45}) {
        customer { paymentTermsDays annualRevenue } } }""",
        {"id": world["chen"]},
    )
    assert body["data"]["updateCustomer"]["customer"] == {
        "paymentTermsDays": 45,
        "annualRevenue": None,
    }
    assert forbidden_objects(body) == ["Customer.annualRevenue"]
    assert_no_secret(body)


async def test_writing_an_unwritable_field_is_rejected_whole(
    gql: GraphQLClient, world: dict
) -> None:
    body = await gql.execute(
        "fin.he",
        """mutation($id: ID!) { updateCustomer(input:
        {id: $id, expectedVersion: 1, paymentTermsDays: 10, annualRevenue: "1"}) {
        customer { paymentTermsDays } } }""",
        {"id": world["chen"]},
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["extensions"]["objects"] == ["Customer.annualRevenue"]
    assert body["data"] == {"updateCustomer": None}
    data = await gql.data(
        "admin",
        "query($id: ID!) { customer(id: $id) { version paymentTermsDays } }",
        {"id": world["chen"]},
    )
    assert data["customer"] == {"version": 1, "paymentTermsDays": 30}


async def test_operations_need_call_permission(gql: GraphQLClient, world: dict) -> None:
    body = await gql.execute(
        "fin.he", 'mutation { createCustomer(input: {name: "X"}) { customer { id } } }'
    )
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql.execute("fin.he", "{ auditLog { totalCount } }")
    assert error_codes(body) == ["FORBIDDEN"] and body["data"] == {"auditLog": None}
    body = await gql.execute(
        "am.chen",
        """mutation { createCustomer(input:
        {name: "Self-assigned", ownerId: "am.chen"}) { customer { id } } }""",
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert "Mutation.assignOwner" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "filter_, order",
    [
        ({"valueTiers": ["HIGH"]}, None),
        ({"ownerId": "am.chen"}, None),
        ({"unassigned": True}, None),
        (None, {"field": "CREATED_AT", "direction": "ASC"}),
    ],
)
async def test_filtering_or_ordering_by_unreadable_fields_is_forbidden(
    gql: GraphQLClient, world: dict, filter_: Any, order: Any
) -> None:
    body = await gql.execute(
        "fin.he",
        """query($f: CustomerFilter, $o: CustomerOrder) {
        customers(filter: $f, orderBy: $o) { totalCount } }""",
        {"f": filter_, "o": order},
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] == {"customers": None}


async def test_filtering_by_readable_fields_is_allowed(gql: GraphQLClient, world: dict) -> None:
    data = await gql.data(
        "fin.he",
        """{ customers(filter: {territory: "CN", search: "chen"})
        { totalCount } }""",
    )
    assert data["customers"]["totalCount"] == 1


async def test_audit_entries_redact_unreadable_values(gql: GraphQLClient, world: dict) -> None:
    body = await gql.execute(
        "aud.xu",
        """query($id: ID!) { auditLog(filter: {entityId: $id}) {
        edges { node { action changes { field before after redacted } } } } }""",
        {"id": world["chen"]},
    )
    assert "errors" not in body
    changes = {
        c["field"]: c for e in body["data"]["auditLog"]["edges"] for c in e["node"]["changes"]
    }
    assert changes["annualRevenue"] == {
        "field": "annualRevenue",
        "before": None,
        "after": None,
        "redacted": True,
    }
    assert changes["name"]["after"] == "Customer chen" and not changes["name"]["redacted"]
    assert_no_secret(body)


async def test_error_messages_carry_no_restricted_values(gql: GraphQLClient, world: dict) -> None:
    body = await gql.execute(
        "fin.he",
        """mutation($id: ID!) { updateCustomer(input:
        {id: $id, expectedVersion: 7, paymentTermsDays: 5}) { customer { id } } }""",
        {"id": world["chen"]},
    )
    assert error_codes(body) == ["CONFLICT"]
    assert_no_secret(body)


async def test_account_manager_sees_own_and_first_contacted_unowned(
    gql: GraphQLClient, world: dict
) -> None:
    data = await gql.data(
        "am.chen", "{ customers { totalCount edges { node { id annualRevenue } } } }"
    )
    seen = {e["node"]["id"] for e in data["customers"]["edges"]}
    assert seen == {world["chen"], world["lead"]}
    assert data["customers"]["totalCount"] == 2
    assert {e["node"]["annualRevenue"] for e in data["customers"]["edges"]} == {SECRET_REVENUE}


async def test_out_of_scope_is_indistinguishable_from_missing(
    gql: GraphQLClient, world: dict
) -> None:
    query = "query($id: ID!) { customer(id: $id) { id } }"
    hidden = await gql.execute("am.chen", query, {"id": world["wu"]})
    missing = await gql.execute("am.chen", query, {"id": "cus_doesnotexist0000000000"})
    assert error_codes(hidden) == error_codes(missing) == ["NOT_FOUND"]
    assert hidden["errors"][0]["message"].replace(world["wu"], "ID") == missing["errors"][0][
        "message"
    ].replace("cus_doesnotexist0000000000", "ID")
    update = await gql.execute(
        "am.chen",
        """mutation($id: ID!) { updateCustomer(input:
        {id: $id, expectedVersion: 2, name: "Stolen"}) { customer { id } } }""",
        {"id": world["wu"]},
    )
    assert error_codes(update) == ["NOT_FOUND"]
    node = await gql.execute(
        "am.chen", "query($id: ID!) { node(id: $id) { id } }", {"id": world["wu"]}
    )
    assert error_codes(node) == ["NOT_FOUND"]


async def test_team_manager_sees_the_team(gql: GraphQLClient, world: dict) -> None:
    data = await gql.data("tm.li", "{ customers { edges { node { id } } } }")
    assert {e["node"]["id"] for e in data["customers"]["edges"]} == {
        world["chen"],
        world["wu"],
        world["lead"],
    }


async def test_narrow_scope_sees_only_its_audit_entries(
    gql: GraphQLClient, world: dict, services: Services
) -> None:
    await services.policies.grant(Actor.system(), "account_manager", "Query.auditLog", "call")
    await services.policies.grant(Actor.system(), "account_manager", "AuditEntry.*", "read")
    data = await gql.data("am.chen", "{ auditLog(first: 100) { edges { node { entityId } } } }")
    assert {e["node"]["entityId"] for e in data["auditLog"]["edges"]} == {
        world["chen"],
        world["lead"],
    }


async def test_viewer_reports_roles_permissions_and_scope(gql: GraphQLClient, world: dict) -> None:
    data = await gql.data("fin.he", "{ viewer { roles scope permissions { object action } } }")
    viewer = data["viewer"]
    assert viewer["roles"] == ["finance"]
    assert viewer["scope"] == "ALL"
    permissions = {(p["object"], p["action"]) for p in viewer["permissions"]}
    assert ("Customer.paymentTermsDays", "read") in permissions
    assert ("Customer.annualRevenue", "read") not in permissions
    assert ("User.name", "read") in permissions  # inherited from staff


async def test_policy_changes_apply_on_the_next_request(gql: GraphQLClient, world: dict) -> None:
    query = "query($id: ID!) { customer(id: $id) { annualRevenue } }"
    assert (await gql.execute("fin.he", query, {"id": world["chen"]}))["data"]["customer"][
        "annualRevenue"
    ] is None
    grant = """mutation { grantPermission(input: {role: "finance", object: "Customer.annualRevenue",
        action: "read"}) { permission { role object action } } }"""
    assert (await gql.data("admin", grant))["grantPermission"]["permission"]["role"] == "finance"
    assert (await gql.data("fin.he", query, {"id": world["chen"]}))["customer"][
        "annualRevenue"
    ] == SECRET_REVENUE
    await gql.data("admin", grant.replace("grantPermission", "revokePermission"))
    assert (await gql.execute("fin.he", query, {"id": world["chen"]}))["data"]["customer"][
        "annualRevenue"
    ] is None


async def test_role_changes_apply_on_the_next_request(gql: GraphQLClient, world: dict) -> None:
    query = "{ customers { totalCount } }"
    assert error_codes(await gql.execute("am.out", "{ auditLog { totalCount } }")) == ["FORBIDDEN"]
    data = await gql.data(
        "admin",
        """mutation { assignRole(input: {userId: "am.out", role: "auditor"})
        { user { id roles } } }""",
    )
    assert data["assignRole"]["user"]["roles"] == ["account_manager", "auditor"]
    assert (await gql.data("am.out", query))["customers"]["totalCount"] == 4  # auditor scope ALL
    await gql.data(
        "admin",
        """mutation { unassignRole(input: {userId: "am.out", role: "auditor"})
        { user { id } } }""",
    )
    assert (await gql.data("am.out", query))["customers"]["totalCount"] == 1


async def test_policy_changes_are_audited(gql: GraphQLClient, world: dict) -> None:
    await gql.data(
        "admin",
        """mutation { grantPermission(input: {role: "finance",
        object: "Customer.contacts", action: "read"}) { permission { role } } }""",
    )
    data = await gql.data(
        "admin",
        """{ auditLog(filter: {entityType: "Role", action: "grantPermission"}) {
        edges { node { action entityId actor { id } changes { field after } } } } }""",
    )
    [entry] = [e["node"] for e in data["auditLog"]["edges"]]
    assert entry == {
        "action": "grantPermission",
        "entityId": "finance",
        "actor": {"id": "admin"},
        "changes": [{"field": "permission", "after": "Customer.contacts:read"}],
    }


async def test_non_admin_cannot_manage_policies(gql: GraphQLClient, world: dict) -> None:
    body = await gql.execute(
        "sd.wang",
        """mutation { grantPermission(input: {role: "sales_director",
        object: "*", action: "read"}) { permission { role } } }""",
    )
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql.execute("sd.wang", '{ policies(role: "admin") { role } }')
    assert error_codes(body) == ["FORBIDDEN"]


async def test_user_created_at_runtime_has_its_roles_at_once(
    gql: GraphQLClient, world: dict[str, str]
) -> None:
    await gql.data("fin.he", "{ viewer { roles } }")  # the policy store is loaded by now
    await gql.data(
        "admin",
        """mutation { createUser(input: {id: "fin.new", name: "New",
        roles: ["finance"]}) { user { id } } }""",
    )
    data = await gql.data("fin.new", "{ viewer { roles } customers { totalCount } }")
    assert data["viewer"]["roles"] == ["finance"]
    assert data["customers"]["totalCount"] == 4


async def test_installing_the_default_policies_is_audited(gql: GraphQLClient, admin: str) -> None:
    from core.authz.defaults import DEFAULT_ROLES

    data = await gql.data(
        "admin",
        """{ auditLog(first: 50, filter: {action:
        "installDefaultPolicies"}) { edges { node { entityId actor { id } } } } }""",
    )
    entries = [e["node"] for e in data["auditLog"]["edges"]]
    assert sorted(e["entityId"] for e in entries) == sorted(DEFAULT_ROLES)
    assert all(e["actor"] is None for e in entries)  # the system
