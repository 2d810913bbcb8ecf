"""Customers over GraphQL: create, read, partial update, optimistic locking, validation."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient, error_codes

CREATE = """mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) {
    customer { id version name kind territory industry lifecycleStage paymentTermsDays
               annualRevenue productLines firstContact { id } owner { id }
               contacts { name email } }
  }
}"""
UPDATE = """mutation($input: UpdateCustomerInput!) {
  updateCustomer(input: $input) {
    customer { id version name territory paymentTermsDays invoiceRequirements updatedAt }
  }
}"""
GET = "query($id: ID!) { customer(id: $id) { id version name territory paymentTermsDays } }"
AUDIT_COUNT = '{ auditLog(filter: {entityType: "Customer"}) { totalCount } }'


async def create(gql: GraphQLClient, user: str = "admin", **fields: Any) -> dict[str, Any]:
    data = await gql.data(user, CREATE, {"input": {"name": "Acme Motors", **fields}})
    return data["createCustomer"]["customer"]  # type: ignore[no-any-return]


async def test_create_returns_the_customer_with_defaults(gql: GraphQLClient, admin: str) -> None:
    customer = await create(
        gql,
        "am.chen",
        territory="CN/East/Shanghai",
        industry="manufacturing.automotive",
        paymentTermsDays=45,
        annualRevenue="1250000.50",
        productLines=["erp", "iot"],
        contacts=[{"name": "Mia", "email": "mia@acme.example"}],
    )
    assert customer["id"].startswith("cus_")
    assert customer["version"] == 1
    assert customer["kind"] == "ENTERPRISE"
    assert customer["lifecycleStage"] == "LEAD"
    assert customer["firstContact"] == {"id": "am.chen"}
    assert customer["owner"] is None
    assert customer["annualRevenue"] == "1250000.50"
    assert customer["productLines"] == ["erp", "iot"]
    assert customer["contacts"] == [{"name": "Mia", "email": "mia@acme.example"}]
    fetched = await gql.data("admin", GET, {"id": customer["id"]})
    assert fetched["customer"]["territory"] == "CN/East/Shanghai"


async def test_create_with_owner_is_a_manual_assignment(gql: GraphQLClient, admin: str) -> None:
    data = await gql.data(
        "admin",
        """mutation {
      createCustomer(input: {name: "Owned", ownerId: "am.wu", reason: "key account"}) {
        customer { owner { id } ownership { assignedBy reason since } } } }""",
    )
    customer = data["createCustomer"]["customer"]
    assert customer["owner"] == {"id": "am.wu"}
    assert customer["ownership"]["assignedBy"] == "MANUAL"
    assert customer["ownership"]["reason"] == "key account"


async def test_update_is_partial_and_null_clears(gql: GraphQLClient, admin: str) -> None:
    customer = await create(gql, territory="CN/East", paymentTermsDays=30)
    data = await gql.data(
        "admin",
        UPDATE,
        {
            "input": {
                "id": customer["id"],
                "expectedVersion": 1,
                "paymentTermsDays": None,
                "invoiceRequirements": "PO number on every invoice",
            }
        },
    )
    updated = data["updateCustomer"]["customer"]
    assert updated["version"] == 2
    assert updated["territory"] == "CN/East"  # omitted: left as it was
    assert updated["paymentTermsDays"] is None  # explicit null: cleared
    assert updated["invoiceRequirements"] == "PO number on every invoice"


async def test_null_product_lines_clear_to_empty(gql: GraphQLClient, admin: str) -> None:
    # Found by tests/test_fuzz.py: a null list was stored and broke every later read.
    customer = await create(gql, productLines=None)
    assert customer["productLines"] == []
    update = """mutation($input: UpdateCustomerInput!) {
      updateCustomer(input: $input) { customer { productLines } } }"""
    data = await gql.data(
        "admin",
        update,
        {"input": {"id": customer["id"], "expectedVersion": 1, "productLines": None}},
    )
    assert data["updateCustomer"]["customer"]["productLines"] == []


async def test_stale_version_is_conflict_and_writes_nothing(gql: GraphQLClient, admin: str) -> None:
    customer = await create(gql)
    await gql.data(
        "admin", UPDATE, {"input": {"id": customer["id"], "expectedVersion": 1, "name": "Renamed"}}
    )
    entries_before = (await gql.data("admin", AUDIT_COUNT))["auditLog"]["totalCount"]
    body = await gql.execute(
        "admin",
        UPDATE,
        {"input": {"id": customer["id"], "expectedVersion": 1, "name": "Lost update"}},
    )
    assert error_codes(body) == ["CONFLICT"]
    assert body["data"] == {"updateCustomer": None}
    current = (await gql.data("admin", GET, {"id": customer["id"]}))["customer"]
    assert (current["name"], current["version"]) == ("Renamed", 2)
    assert (await gql.data("admin", AUDIT_COUNT))["auditLog"]["totalCount"] == entries_before


async def test_update_without_changes_keeps_version_and_audit(
    gql: GraphQLClient, admin: str
) -> None:
    customer = await create(gql, territory="CN/East")
    data = await gql.data(
        "admin",
        UPDATE,
        {"input": {"id": customer["id"], "expectedVersion": 1, "territory": "CN/East"}},
    )
    assert data["updateCustomer"]["customer"]["version"] == 1
    assert (await gql.data("admin", AUDIT_COUNT))["auditLog"]["totalCount"] == 1


async def _bad_input(gql: GraphQLClient, input_: dict[str, Any]) -> list[dict[str, str]]:
    body = await gql.execute("admin", CREATE, {"input": input_})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert (await gql.data("admin", "{ customers { totalCount } }"))["customers"]["totalCount"] == 0
    return body["errors"][0]["extensions"]["fields"]  # type: ignore[no-any-return]


async def test_bad_enum_names_the_field(gql: GraphQLClient, admin: str) -> None:
    fields = await _bad_input(gql, {"name": "X", "lifecycleStage": "ZOMBIE"})
    assert [f["path"] for f in fields] == ["input.lifecycleStage"]


async def test_negative_payment_terms_names_the_field(gql: GraphQLClient, admin: str) -> None:
    fields = await _bad_input(gql, {"name": "X", "paymentTermsDays": -5})
    assert fields == [{"path": "input.paymentTermsDays", "reason": "must be between 0 and 365"}]


async def test_empty_name_names_the_field(gql: GraphQLClient, admin: str) -> None:
    fields = await _bad_input(gql, {"name": "   "})
    assert fields == [{"path": "input.name", "reason": "must not be empty"}]


async def test_every_invalid_field_is_reported_at_once(gql: GraphQLClient, admin: str) -> None:
    fields = await _bad_input(
        gql,
        {
            "name": "X",
            "territory": "CN//East",
            "industry": "Bad Code",
            "growthPotential": 101,
            "annualRevenue": "-1",
        },
    )
    assert {f["path"] for f in fields} == {
        "input.territory",
        "input.industry",
        "input.growthPotential",
        "input.annualRevenue",
    }


async def test_unknown_reference_is_bad_input(gql: GraphQLClient, admin: str) -> None:
    fields = await _bad_input(gql, {"name": "X", "backupOwnerId": "ghost"})
    assert fields == [{"path": "input.backupOwnerId", "reason": "no active user has this id"}]


async def test_invalid_document_has_no_suggestions(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", "{ customers { edges { node { nam } } } }")
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Did you mean" not in body["errors"][0]["message"]


async def test_unknown_id_is_not_found(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", GET, {"id": "cus_doesnotexist"})
    assert error_codes(body) == ["NOT_FOUND"]
    body = await gql.execute("admin", UPDATE, {"input": {"id": "cus_nope", "expectedVersion": 1}})
    assert error_codes(body) == ["NOT_FOUND"]


async def test_node_resolves_customers_users_and_audit_entries(
    gql: GraphQLClient, admin: str
) -> None:
    customer = await create(gql)
    query = """query($id: ID!) { node(id: $id) { __typename id
      ... on Customer { name } ... on User { name } ... on AuditEntry { action } } }"""
    assert (await gql.data("admin", query, {"id": customer["id"]}))["node"]["name"] == "Acme Motors"
    assert (await gql.data("admin", query, {"id": "am.wu"}))["node"]["__typename"] == "User"
    entry = await gql.data("admin", "{ auditLog(first: 1) { edges { node { id } } } }")
    entry_id = entry["auditLog"]["edges"][0]["node"]["id"]
    assert (await gql.data("admin", query, {"id": entry_id}))["node"]["action"] == "createCustomer"
    assert error_codes(await gql.execute("admin", query, {"id": "nobody"})) == ["NOT_FOUND"]


async def test_unexpected_error_is_masked_with_request_id(
    gql: GraphQLClient, admin: str, monkeypatch: Any
) -> None:
    from core.services import customers

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals: annual revenue 123")

    monkeypatch.setattr(customers, "diff", broken)
    body = await gql.execute(
        "admin", CREATE, {"input": {"name": "Boom"}}, headers={"X-Request-Id": "req-boom"}
    )
    error = body["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": "req-boom"}
    assert "secret" not in error["message"]
