"""HTTP contract: probes, authentication, body limits, methods, error bodies."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import GraphQLClient

VIEWER = "{ viewer { user { id name } roles } }"


async def test_healthz_and_readyz_answer_when_the_database_is_up(gql: GraphQLClient) -> None:
    assert (await gql.http.get("/healthz")).status_code == 200
    ready = await gql.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_viewer_sees_own_user_and_roles(gql: GraphQLClient, admin: str) -> None:
    data = await gql.data("am.chen", VIEWER)
    assert data["viewer"] == {
        "user": {"id": "am.chen", "name": "Am.Chen"},
        "roles": ["account_manager"],
    }


async def _assert_unauthenticated(gql: GraphQLClient, headers: dict[str, str]) -> None:
    response = await gql.http.post("/graphql", json={"query": VIEWER}, headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in response.json()


async def test_missing_token_is_401(gql: GraphQLClient, admin: str) -> None:
    await _assert_unauthenticated(gql, {})


async def test_malformed_token_is_401(gql: GraphQLClient, admin: str) -> None:
    await _assert_unauthenticated(gql, {"Authorization": "Bearer not.a.jwt"})
    await _assert_unauthenticated(gql, {"Authorization": f"Basic {gql.token('admin')}"})


async def test_token_signed_with_another_secret_is_401(gql: GraphQLClient, admin: str) -> None:
    from core.clock import SystemClock
    from core.identity import issue_token

    forged = issue_token(
        "admin",
        "another-secret-that-is-long-enough-too",
        now=SystemClock().now(),
        ttl=timedelta(hours=1),
    )
    await _assert_unauthenticated(gql, {"Authorization": f"Bearer {forged}"})


async def test_expired_token_is_401(gql: GraphQLClient, admin: str) -> None:
    expired = gql.token("admin", ttl=timedelta(seconds=-60))  # past the 30 s leeway
    await _assert_unauthenticated(gql, {"Authorization": f"Bearer {expired}"})


async def test_unknown_user_is_401(gql: GraphQLClient, admin: str) -> None:
    await _assert_unauthenticated(gql, {"Authorization": f"Bearer {gql.token('ghost')}"})


async def test_deactivated_user_is_401_on_the_next_request(gql: GraphQLClient, admin: str) -> None:
    token = {"Authorization": f"Bearer {gql.token('am.wu')}"}
    assert (
        await gql.http.post("/graphql", json={"query": VIEWER}, headers=token)
    ).status_code == 200
    await gql.data(
        "admin",
        'mutation { deactivateUser(input: {userId: "am.wu", reason: "left"}) '
        "{ user { id active } } }",
    )
    await _assert_unauthenticated(gql, token)


async def test_body_over_the_limit_is_413(gql: GraphQLClient, admin: str) -> None:
    padding = " " * (1024 * 1024)
    response = await gql.http.post(
        "/graphql",
        content=('{"query": "{ viewer { roles } }"' + padding + "}").encode(),
        headers={
            "Authorization": f"Bearer {gql.token('admin')}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_mutation_over_get_is_405_and_writes_nothing(gql: GraphQLClient, admin: str) -> None:
    mutation = 'mutation { createCustomer(input: {name: "Via GET"}) { customer { id } } }'
    response = await gql.http.get(
        "/graphql",
        params={"query": mutation},
        headers={"Authorization": f"Bearer {gql.token('admin')}"},
    )
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    data = await gql.data("admin", "{ customers { totalCount } }")
    assert data["customers"]["totalCount"] == 0


async def test_query_over_get_works(gql: GraphQLClient, admin: str) -> None:
    response = await gql.http.get(
        "/graphql",
        params={"query": VIEWER},
        headers={"Authorization": f"Bearer {gql.token('admin')}"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["user"]["id"] == "admin"


async def test_get_without_query_serves_graphiql(gql: GraphQLClient) -> None:
    response = await gql.http.get("/graphql")
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_request_id_is_echoed_and_stamped_on_audit(gql: GraphQLClient, admin: str) -> None:
    response = await gql.post(
        "admin",
        'mutation { createCustomer(input: {name: "Traced"}) { customer { id } } }',
        headers={"X-Request-Id": "req-42"},
    )
    assert response.headers["x-request-id"] == "req-42"
    data = await gql.data(
        "admin", '{ auditLog(filter: {action: "createCustomer"}) { edges { node { requestId } } } }'
    )
    assert [e["node"]["requestId"] for e in data["auditLog"]["edges"]] == ["req-42"]


async def test_batched_operations_each_get_a_result(gql: GraphQLClient, admin: str) -> None:
    response = await gql.http.post(
        "/graphql",
        json=[{"query": VIEWER}, {"query": "{ nope }"}],
        headers={"Authorization": f"Bearer {gql.token('admin')}"},
    )
    first, second = response.json()
    assert first["data"]["viewer"]["user"]["id"] == "admin"
    assert second["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
