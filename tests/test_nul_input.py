"""A NUL character in any argument is BAD_USER_INPUT naming where it is, before anything runs
(PostgreSQL cannot store one: it used to answer INTERNAL)."""

from __future__ import annotations

from tests.conftest import GraphQLClient, error_codes

CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id } } }"""


async def test_a_nul_character_in_an_input_is_refused_with_its_path(
    gql: GraphQLClient, admin: str
) -> None:
    body = await gql.execute(
        "admin", CREATE, {"input": {"name": "Acme", "productLines": ["erp", "i\x00t"]}}
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"] == [
        {"path": "input.productLines[1]", "reason": "must not contain the NUL character"}
    ]
    count = await gql.data("admin", "{ customers { totalCount } }")
    assert count["customers"]["totalCount"] == 0


async def test_a_nul_character_in_an_id_argument_is_refused(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", 'query { customer(id: "cus_\\u0000") { id } }')
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == "id"
