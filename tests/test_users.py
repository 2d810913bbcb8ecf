"""Users: creation with roles in the policy store, deactivation, lists."""

from __future__ import annotations

from sqlalchemy import select

from core.domain import CasbinRule
from core.services import Services
from tests.conftest import GraphQLClient, error_codes

CREATE_USER = """mutation($input: CreateUserInput!) {
  createUser(input: $input) {
    user { id name email active team roles manager { id } capacity accountCount }
  }
}"""


async def test_create_user_stores_roles_as_grouping_policies(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    data = await gql.data(
        "admin",
        CREATE_USER,
        {
            "input": {
                "id": "am.new",
                "name": "New AM",
                "email": "new@baton.example",
                "team": "east",
                "roles": ["account_manager", "customer_service"],
                "managerId": "tm.li",
                "capacity": 40,
            }
        },
    )
    assert data["createUser"]["user"] == {
        "id": "am.new",
        "name": "New AM",
        "email": "new@baton.example",
        "active": True,
        "team": "east",
        "roles": ["account_manager", "customer_service"],
        "manager": {"id": "tm.li"},
        "capacity": 40,
        "accountCount": 0,
    }
    async with services.db.reader() as session:
        rows = (
            (
                await session.execute(
                    select(CasbinRule.v1).where(CasbinRule.ptype == "g", CasbinRule.v0 == "am.new")
                )
            )
            .scalars()
            .all()
        )
    assert sorted(rows) == ["account_manager", "customer_service"]


async def test_bad_user_input_names_each_field(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute(
        "admin",
        CREATE_USER,
        {"input": {"id": "Bad Id", "name": "", "email": "nope", "roles": ["wizard"]}},
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    paths = {f["path"] for f in body["errors"][0]["extensions"]["fields"]}
    assert paths == {"input.id", "input.name", "input.email", "input.roles"}


async def test_duplicate_id_is_bad_input(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", CREATE_USER, {"input": {"id": "am.wu", "name": "Again"}})
    assert body["errors"][0]["extensions"]["fields"] == [
        {"path": "input.id", "reason": "a user with this id already exists"}
    ]


async def test_deactivate_twice_is_invalid_state(gql: GraphQLClient, admin: str) -> None:
    mutation = 'mutation { deactivateUser(input: {userId: "am.wu"}) { user { active } } }'
    assert (await gql.data("admin", mutation))["deactivateUser"]["user"]["active"] is False
    body = await gql.execute("admin", mutation)
    assert error_codes(body) == ["INVALID_STATE"]
    assert body["errors"][0]["extensions"]["state"] == "INACTIVE"


async def test_users_list_filters_by_team_and_pages(gql: GraphQLClient, admin: str) -> None:
    query = """query($after: String) { users(first: 2, after: $after, filter: {team: "east"}) {
        totalCount edges { node { id } } pageInfo { hasNextPage endCursor } } }"""
    first = (await gql.data("admin", query))["users"]
    assert first["totalCount"] == 3
    assert [e["node"]["id"] for e in first["edges"]] == ["am.chen", "am.wu"]
    rest = (await gql.data("admin", query, {"after": first["pageInfo"]["endCursor"]}))["users"]
    assert [e["node"]["id"] for e in rest["edges"]] == ["tm.li"]
    assert rest["pageInfo"]["hasNextPage"] is False
