"""The built-in plugins through the public path: typed special needs read and written over
GraphQL, validated by their specs, audited field by field, and authorised like core fields."""

from __future__ import annotations

from typing import Any

from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

NEEDS = """specialNeeds {
  banking { riskTolerance aumBand privacyOptOut marketingOptOut conciergeChannel kycReviewDate }
  manufacturing { esgRequirements deliverySlaDays qualityCertifications plantRegion }
}"""
CREATE = f"""mutation($input: CreateCustomerInput!) {{
  createCustomer(input: $input) {{ customer {{ id version {NEEDS} }} }} }}"""
UPDATE = f"""mutation($input: UpdateCustomerInput!) {{
  updateCustomer(input: $input) {{ customer {{ id version {NEEDS} }} }} }}"""
AUDIT = """query($id: ID!) { auditLog(filter: {entityId: $id}) {
  edges { node { action changes { field before after redacted } } } } }"""


async def create(gql: GraphQLClient, needs: dict[str, Any], user: str = "am.chen") -> Any:
    data = await gql.data(user, CREATE, {"input": {"name": "Bank Client", "specialNeeds": needs}})
    return data["createCustomer"]["customer"]


async def test_typed_fields_round_trip(gql: GraphQLClient, admin: str) -> None:
    customer = await create(
        gql,
        {
            "banking": {
                "riskTolerance": "C3",
                "aumBand": "ABOVE_100M",
                "kycReviewDate": "2027-03-01",
            },
            "manufacturing": {"qualityCertifications": ["ISO_9001"], "deliverySlaDays": 14},
        },
    )
    assert customer["specialNeeds"]["banking"] == {
        "riskTolerance": "C3",
        "aumBand": "ABOVE_100M",
        "privacyOptOut": None,
        "marketingOptOut": None,
        "conciergeChannel": None,
        "kycReviewDate": "2027-03-01",
    }
    updated = await gql.data(
        "am.chen",
        UPDATE,
        {
            "input": {
                "id": customer["id"],
                "expectedVersion": customer["version"],
                "specialNeeds": {"banking": {"riskTolerance": None, "privacyOptOut": True}},
            }
        },
    )
    banking = updated["updateCustomer"]["customer"]["specialNeeds"]["banking"]
    assert banking["riskTolerance"] is None  # explicit null clears
    assert banking["privacyOptOut"] is True
    assert banking["aumBand"] == "ABOVE_100M"  # omitted stays
    manufacturing = updated["updateCustomer"]["customer"]["specialNeeds"]["manufacturing"]
    assert manufacturing["deliverySlaDays"] == 14


async def test_every_changed_plugin_field_is_audited(gql: GraphQLClient, admin: str) -> None:
    customer = await create(gql, {"banking": {"riskTolerance": "C2"}})
    await gql.data(
        "am.chen",
        UPDATE,
        {
            "input": {
                "id": customer["id"],
                "expectedVersion": customer["version"],
                "specialNeeds": {"banking": {"riskTolerance": "C4", "aumBand": "BELOW_1M"}},
            }
        },
    )
    entries = (await gql.data("admin", AUDIT, {"id": customer["id"]}))["auditLog"]["edges"]
    update = next(e["node"] for e in entries if e["node"]["action"] == "updateCustomer")
    assert sorted((c["field"], c["before"], c["after"]) for c in update["changes"]) == [
        ("specialNeeds.banking.aumBand", None, "BELOW_1M"),
        ("specialNeeds.banking.riskTolerance", "C2", "C4"),
    ]


async def test_invalid_values_name_the_field_and_write_nothing(
    gql: GraphQLClient, admin: str
) -> None:
    customer = await create(gql, {"manufacturing": {"deliverySlaDays": 10}})
    body = await gql.execute(
        "am.chen",
        UPDATE,
        {
            "input": {
                "id": customer["id"],
                "expectedVersion": customer["version"],
                "name": "Renamed",
                "specialNeeds": {
                    "manufacturing": {"deliverySlaDays": 0, "esgRequirements": ["x"] * 21}
                },
            }
        },
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    fields = {e["path"]: e["reason"] for e in body["errors"][0]["extensions"]["fields"]}
    assert fields == {
        "input.specialNeeds.manufacturing.deliverySlaDays": "must be at least 1",
        "input.specialNeeds.manufacturing.esgRequirements": "entries must be unique",
    }
    after = await gql.data(
        "am.chen",
        f"query($id: ID!) {{ customer(id: $id) {{ name version {NEEDS} }} }}",
        {"id": customer["id"]},
    )
    assert after["customer"]["name"] == "Bank Client"
    assert after["customer"]["version"] == customer["version"]
    assert after["customer"]["specialNeeds"]["manufacturing"]["deliverySlaDays"] == 10


async def test_finance_reads_neither_risk_nor_privacy_anywhere(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    customer = await create(
        gql, {"banking": {"riskTolerance": "C5", "privacyOptOut": True, "aumBand": "BELOW_1M"}}
    )
    await gql.data(
        "am.chen",
        UPDATE,
        {
            "input": {
                "id": customer["id"],
                "expectedVersion": customer["version"],
                "specialNeeds": {"banking": {"riskTolerance": "C1"}},
            }
        },
    )
    body = await gql.execute(
        "fin.zhao",
        """query($id: ID!) {
          a: customer(id: $id) { specialNeeds { banking { aumBand risk: riskTolerance } } }
          list: customers(first: 5) { edges { node { ...N } } }
        }
        fragment N on Customer { specialNeeds { banking { privacyOptOut riskTolerance } } }""",
        {"id": customer["id"]},
    )
    assert body["data"]["a"]["specialNeeds"]["banking"] == {"aumBand": "BELOW_1M", "risk": None}
    node = body["data"]["list"]["edges"][0]["node"]
    assert node["specialNeeds"]["banking"] == {"privacyOptOut": None, "riskTolerance": None}
    assert set(error_codes(body)) == {"FORBIDDEN_FIELD"}
    assert "C5" not in str(body) and "C1" not in str(body)
    # Audit entries show finance the changed field's name, never its values.
    await services.policies.grant(Actor.system(), "finance", "Query.auditLog", "call")
    await services.policies.grant(Actor.system(), "finance", "AuditEntry.*", "read")
    audit = await gql.data("fin.zhao", AUDIT, {"id": customer["id"]})
    changes = [c for e in audit["auditLog"]["edges"] for c in e["node"]["changes"]]
    risk = [c for c in changes if c["field"] == "specialNeeds.banking.riskTolerance"]
    assert risk and all(c == {**c, "before": None, "after": None, "redacted": True} for c in risk)
    aum = next(c for c in changes if c["field"] == "specialNeeds.banking.aumBand")
    assert aum["after"] == "BELOW_1M" and not aum["redacted"]


async def test_a_write_to_an_unwritable_plugin_field_is_refused_whole(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await services.users.create(Actor.system(), "fin.zhao", "Zhao", roles=["finance"])
    customer = await create(gql, {"banking": {"aumBand": "BELOW_1M"}}, user="admin")
    body = await gql.execute(
        "fin.zhao",
        UPDATE.replace(NEEDS, ""),
        {
            "input": {
                "id": customer["id"],
                "expectedVersion": customer["version"],
                "paymentTermsDays": 30,
                "specialNeeds": {"banking": {"aumBand": "ABOVE_100M"}},
            }
        },
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert "BankingSpecialNeeds.aumBand" in body["errors"][0]["message"]


async def test_plugins_query_lists_name_version_and_hooks(gql: GraphQLClient, admin: str) -> None:
    data = await gql.data("am.chen", "{ plugins { name version hooks specialNeedsType } }")
    banking = next(p for p in data["plugins"] if p["name"] == "banking")
    assert banking["specialNeedsType"] == "BankingSpecialNeeds"
    assert "baton_special_needs_fields" in banking["hooks"]
    assert banking["version"]


async def test_a_rule_on_a_plugin_dimension_assigns_by_it(gql: GraphQLClient, admin: str) -> None:
    await gql.data(
        "admin",
        """mutation { createAssignmentRule(input: {name: "Private banking", priority: 1,
          conditions: {extra: {aumBand: ["ABOVE_100M"]}}, strategy: FIXED_OWNER,
          ownerId: "am.wu"}) { rule { id } } }""",
    )
    rich = await gql.data(
        "admin",
        """mutation { createCustomer(input: {name: "Rich", specialNeeds: {banking:
          {aumBand: ABOVE_100M}}}) { customer { owner { id } } } }""",
    )
    modest = await gql.data(
        "admin",
        """mutation { createCustomer(input: {name: "Modest", specialNeeds: {banking:
          {aumBand: BELOW_1M}}}) { customer { owner { id } } } }""",
    )
    assert rich["createCustomer"]["customer"]["owner"] == {"id": "am.wu"}
    assert modest["createCustomer"]["customer"]["owner"] is None
    unknown = await gql.execute(
        "admin",
        """mutation { createAssignmentRule(input: {name: "Bad", priority: 2,
          conditions: {extra: {netWorth: ["X"]}}, strategy: FIXED_OWNER, ownerId: "am.wu"})
          { rule { id } } }""",
    )
    assert error_codes(unknown) == ["BAD_USER_INPUT"]
    assert "conditions.extra.netWorth" in str(unknown["errors"][0]["extensions"])
