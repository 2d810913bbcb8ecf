"""Requests that are not GraphQL requests: HTTP 400 ``BAD_REQUEST``, nothing executed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from core.clock import FixedClock
from core.config import Settings
from tests.conftest import GraphQLClient, client_of, running

CREATE = 'mutation Create { createCustomer(input: {name: "Sneaky"}) { customer { id } } }'
JSON = "application/json"

Q = "{ viewer { roles } }"
NAMED = "query A { viewer { roles } }"
TWO = "query A { viewer { roles } } query B { viewer { scope } }"
MULTIPART = b'--b\r\nContent-Disposition: form-data; name="query"\r\n\r\nQ\r\n--b--\r\n'


def body(value: Any) -> bytes:
    return orjson.dumps(value)


# (case, raw body, content type): each is refused on POST with HTTP 400.
POST_CASES: list[tuple[str, bytes, str | None]] = [
    ("no query", body({"variables": {}}), JSON),
    ("query null", body({"query": None}), JSON),
    ("query a number", body({"query": 42}), JSON),
    ("query an object", body({"query": {"q": 1}}), JSON),
    ("query empty", body({"query": "  "}), JSON),
    ("variables a list", body({"query": Q, "variables": [1]}), JSON),
    ("variables a string", body({"query": Q, "variables": "{}"}), JSON),
    ("operationName a number", body({"query": NAMED, "operationName": 1}), JSON),
    ("operationName unknown", body({"query": NAMED, "operationName": "B"}), JSON),
    ("two operations, no name", body({"query": TWO}), JSON),
    ("extensions a string", body({"query": Q, "extensions": "x"}), JSON),
    ("empty body", b"", JSON),
    ("blank body", b"  \n", JSON),
    ("invalid UTF-8", b'{"query": "{ viewer { roles } }", "x": "\xff\xfe"}', JSON),
    ("malformed JSON", b'{"query": ', JSON),
    ("JSON string", body(Q), JSON),
    ("JSON null", b"null", JSON),
    ("empty batch", b"[]", JSON),
    ("batch with a non-object", body([{"query": Q}, 3]), JSON),
    ("batch with a bad operation", body([{"query": Q}, {"query": 1}]), JSON),
    ("batch over the limit", body([{"query": Q}] * 11), JSON),
    ("text/plain", body({"query": Q}), "text/plain"),
    ("form", b"query=%7B%20viewer%20%7B%20roles%20%7D%20%7D", "application/x-www-form-urlencoded"),
    ("multipart", MULTIPART, "multipart/form-data; boundary=b"),
    ("no content type", body({"query": Q}), None),
    ("application/graphql", Q.encode(), "application/graphql"),
    ("another charset", body({"query": Q}), "application/json; charset=latin-1"),
]

# (case, query-string parameters): each is refused on GET with HTTP 400.
GET_CASES: list[tuple[str, dict[str, str]]] = [
    ("no query", {"variables": "{}"}),
    ("query empty", {"query": " "}),
    ("variables not JSON", {"query": Q, "variables": "{x"}),
    ("variables a list", {"query": Q, "variables": "[1]"}),
    ("operationName unknown", {"query": NAMED, "operationName": "B"}),
    ("two operations, no name", {"query": TWO}),
]


def _assert_bad_request(response: Any, case: str = "") -> None:
    assert response.status_code == 400, (case, response.text)
    body = response.json()
    assert set(body) == {"errors"}, case
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}, case
    assert error["message"], case


# One app per backend runs the whole table (an app per case would cost seconds each).
async def test_posts_that_are_not_graphql_requests_are_400(gql: GraphQLClient, admin: str) -> None:
    for case, raw, content_type in POST_CASES:
        headers = {"Authorization": f"Bearer {gql.token('admin')}"}
        if content_type:
            headers["Content-Type"] = content_type
        _assert_bad_request(await gql.http.post("/graphql", content=raw, headers=headers), case)


async def test_gets_that_are_not_graphql_requests_are_400(gql: GraphQLClient, admin: str) -> None:
    headers = {"Authorization": f"Bearer {gql.token('admin')}"}
    for case, params in GET_CASES:
        response = await gql.http.get("/graphql", params=params, headers=headers)
        _assert_bad_request(response, case)


async def test_the_messages_say_what_is_wrong(gql: GraphQLClient, admin: str) -> None:
    headers = {"Authorization": f"Bearer {gql.token('admin')}"}
    wrong_type = await gql.http.post(
        "/graphql", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
    )
    assert "Content-Type must be application/json" in wrong_type.json()["errors"][0]["message"]
    unknown = await gql.http.post(
        "/graphql",
        json={"query": "query A { viewer { roles } }", "operationName": "B"},
        headers=headers,
    )
    assert "'B' names no operation" in unknown.json()["errors"][0]["message"]
    batch = await gql.http.post(
        "/graphql", json=[{"query": "{ viewer { roles } }"}, {}], headers=headers
    )
    assert batch.json()["errors"][0]["message"] == "operation 1: `query` is missing"


async def test_a_refused_request_writes_nothing(gql: GraphQLClient, admin: str) -> None:
    """A mutation sent as a form (a cross-site page could) or in a batch with a malformed
    operation runs not at all."""
    headers = {"Authorization": f"Bearer {gql.token('admin')}"}
    as_text = await gql.http.post(
        "/graphql",
        content=f'{{"query": "{CREATE.replace(chr(34), chr(92) + chr(34))}"}}'.encode(),
        headers={**headers, "Content-Type": "text/plain;charset=UTF-8"},
    )
    _assert_bad_request(as_text)
    batch = await gql.http.post(
        "/graphql", json=[{"query": CREATE}, {"query": CREATE, "variables": 1}], headers=headers
    )
    _assert_bad_request(batch)
    data = await gql.data(
        "admin",
        '{ customers { totalCount } auditLog(filter: {action: "createCustomer"}) { totalCount } }',
    )
    assert data["customers"]["totalCount"] == 0
    assert data["auditLog"]["totalCount"] == 0


async def test_well_formed_variants_still_work(gql: GraphQLClient, admin: str) -> None:
    """The refusals stop short of valid requests: a chosen operation, a charset, a batch."""
    headers = {"Authorization": f"Bearer {gql.token('admin')}"}
    two = "query A { viewer { roles } } query B { viewer { scope } }"
    chosen = await gql.http.post(
        "/graphql",
        content=f'{{"query": "{two}", "operationName": "B"}}'.encode(),
        headers={**headers, "Content-Type": "Application/JSON; charset=UTF-8"},
    )
    assert chosen.status_code == 200
    assert chosen.json() == {"data": {"viewer": {"scope": "ALL"}}}
    got = await gql.http.get(
        "/graphql", params={"query": two, "operationName": "A"}, headers=headers
    )
    assert got.json() == {"data": {"viewer": {"roles": ["admin"]}}}
    # A syntax error is a GraphQL error, not a malformed request.
    broken = await gql.execute("admin", "{ viewer { roles }")
    assert broken["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_get_without_a_query_when_graphiql_is_off_is_400(
    settings: Settings, clock: FixedClock, admin: str
) -> None:
    async with (
        running(replace(settings, graphiql=False), clock) as app,
        client_of(app, clock) as gql,
    ):
        response = await gql.http.get(
            "/graphql", headers={"Authorization": f"Bearer {gql.token('admin')}"}
        )
        _assert_bad_request(response)


async def test_an_array_is_refused_when_batching_is_off(
    settings: Settings, clock: FixedClock, admin: str
) -> None:
    async with (
        running(replace(settings, max_batch_size=0), clock) as app,
        client_of(app, clock) as gql,
    ):
        headers = {"Authorization": f"Bearer {gql.token('admin')}"}
        response = await gql.http.post(
            "/graphql", json=[{"query": "{ viewer { roles } }"}], headers=headers
        )
        _assert_bad_request(response)
        assert "batching is off" in response.json()["errors"][0]["message"]
        single = await gql.http.post(
            "/graphql", json={"query": "{ viewer { roles } }"}, headers=headers
        )
        assert single.status_code == 200
