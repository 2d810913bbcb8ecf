"""Automatic persisted queries (Apollo's protocol) over real HTTP: a hash stands for a text the
client registered; an unknown hash is answered so that the client sends the text; a wrong hash
is refused; the limits, the GET rules and idempotency keys hold as for texts."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from typing import Any

import httpx
import hypothesis
import orjson
import pytest
from graphql import parse
from hypothesis import strategies as st

from core.api.documents import DocumentCache
from core.clock import FixedClock
from core.config import Settings
from tests.conftest import GraphQLClient, client_of, error_codes, running

VIEWER = "query Who { viewer { roles } }"
PAGE = "query($n: Int!) { customers(first: $n) { edges { node { id name } } } }"
CREATE = 'mutation { createCustomer(input: {name: "Harbor"}) { customer { id name } } }'
NOT_FOUND = {
    "errors": [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
}
NOT_SUPPORTED = {
    "errors": [
        {
            "message": "PersistedQueryNotSupported",
            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
        }
    ]
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}


def headers(gql: GraphQLClient, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gql.token('admin')}", **more}


async def post(
    gql: GraphQLClient, body: Any, extra: dict[str, str] | None = None
) -> httpx.Response:
    return await gql.http.post("/graphql", json=body, headers=headers(gql, **(extra or {})))


async def get(gql: GraphQLClient, params: dict[str, Any]) -> httpx.Response:
    encoded = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in params.items()}
    return await gql.http.get("/graphql", params=encoded, headers=headers(gql))


async def test_the_apollo_round_trip_over_post(gql: GraphQLClient, admin: str) -> None:
    """Hash only (unknown) → PersistedQueryNotFound; text and hash → answered and registered;
    hash only → answered from the same prepared document, not parsed again."""
    documents = gql_documents(gql)
    missed = await post(gql, {"extensions": persisted(VIEWER)})
    assert missed.status_code == 200
    assert missed.json() == NOT_FOUND
    assert missed.headers["cache-control"] == "private, no-cache, must-revalidate"
    registered = await post(gql, {"query": VIEWER, "extensions": persisted(VIEWER)})
    assert registered.json() == {"data": {"viewer": {"roles": ["admin"]}}}
    parses = documents.parses
    for _ in range(3):
        hit = await post(gql, {"extensions": persisted(VIEWER), "operationName": "Who"})
        assert hit.status_code == 200
        assert hit.json() == {"data": {"viewer": {"roles": ["admin"]}}}
        assert "cache-control" not in hit.headers
    assert documents.parses == parses


def gql_documents(gql: GraphQLClient) -> DocumentCache:
    transport = gql.http._transport
    assert isinstance(transport, httpx.ASGITransport)
    documents = transport.app.state.schema.documents  # type: ignore[attr-defined]
    assert isinstance(documents, DocumentCache)
    return documents


async def test_the_round_trip_over_get(gql: GraphQLClient, admin: str) -> None:
    ext = persisted(PAGE)
    variables = {"n": 2}
    missed = await get(gql, {"extensions": ext, "variables": variables})
    assert (missed.status_code, missed.json()) == (200, NOT_FOUND)
    sent = await get(gql, {"query": PAGE, "extensions": ext, "variables": variables})
    assert sent.json() == {"data": {"customers": {"edges": []}}}
    hit = await get(gql, {"extensions": ext, "variables": variables})
    assert hit.json() == {"data": {"customers": {"edges": []}}}


async def test_a_wrong_hash_is_400_naming_the_field(gql: GraphQLClient, admin: str) -> None:
    for wrong in (sha256(VIEWER + " "), "not-a-hash"):
        ext = {"persistedQuery": {"version": 1, "sha256Hash": wrong}}
        response = await post(gql, {"query": VIEWER, "extensions": ext})
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["fields"] == [
            {
                "path": "extensions.persistedQuery.sha256Hash",
                "reason": "is not the sha256 of the query text",
            }
        ]
    # Nothing was registered under the wrong hash.
    ext = {"persistedQuery": {"version": 1, "sha256Hash": sha256(VIEWER + " ")}}
    assert (await post(gql, {"extensions": ext})).json() == NOT_FOUND


async def test_a_malformed_extension_is_a_bad_request(gql: GraphQLClient, admin: str) -> None:
    for bad in (
        {"persistedQuery": {"version": 2, "sha256Hash": sha256(VIEWER)}},
        {"persistedQuery": {"version": 1, "sha256Hash": 7}},
        {"persistedQuery": "abc"},
    ):
        for body in ({"extensions": bad}, {"query": VIEWER, "extensions": bad}):
            response = await post(gql, body)
            assert response.status_code == 400, (body, response.text)
            assert error_codes(response.json()) == ["BAD_REQUEST"]
    malformed_get = await gql.http.get(
        "/graphql", params={"query": VIEWER, "extensions": "{"}, headers=headers(gql)
    )
    assert malformed_get.status_code == 400


async def test_a_client_cannot_mark_an_operation_unresolved(gql: GraphQLClient, admin: str) -> None:
    for marker in ("INTERNAL", "PERSISTED_QUERY_NOT_FOUND"):
        response = await post(gql, {"query": VIEWER, "persistedQueryError": marker})
        assert response.json() == {"data": {"viewer": {"roles": ["admin"]}}}
    response = await get(gql, {"query": CREATE, "persistedQueryError": "INTERNAL"})
    assert response.status_code == 405


async def test_a_mutation_by_hash_over_get_is_still_refused(gql: GraphQLClient, admin: str) -> None:
    registered = await post(gql, {"query": CREATE, "extensions": persisted(CREATE)})
    assert "errors" not in registered.json()
    refused = await get(gql, {"extensions": persisted(CREATE)})
    assert refused.status_code == 405
    assert error_codes(refused.json()) == ["METHOD_NOT_ALLOWED"]
    count = await gql.data("admin", "{ customers { totalCount } }")
    assert count["customers"]["totalCount"] == 1


async def test_limits_apply_to_each_requests_variables(
    settings: Settings, clock: FixedClock, admin: str
) -> None:
    # The page costs 1 + n x 4: under 200 for n = 10, over it for n = 100.
    async with (
        running(replace(settings, max_cost=200), clock) as app,
        client_of(app, clock) as gql,
    ):
        ext = persisted(PAGE)
        small = await post(gql, {"query": PAGE, "variables": {"n": 10}, "extensions": ext})
        assert "errors" not in small.json()
        big = await post(gql, {"variables": {"n": 100}, "extensions": ext})
        assert error_codes(big.json()) == ["QUERY_TOO_COMPLEX"]
        again = await post(gql, {"variables": {"n": 10}, "extensions": ext})
        assert again.json() == {"data": {"customers": {"edges": []}}}


async def test_a_batch_answers_each_operation(gql: GraphQLClient, admin: str) -> None:
    batch = [{"extensions": persisted(VIEWER)}, {"query": VIEWER}]
    response = await post(gql, batch)
    assert response.status_code == 200
    assert response.json() == [NOT_FOUND, {"data": {"viewer": {"roles": ["admin"]}}}]


async def test_an_idempotent_mutation_survives_the_round_trip(
    gql: GraphQLClient, admin: str
) -> None:
    """Apollo Client sends a mutation's hash first: the miss does not use up the key, and
    the text (and later the hash alone) under the same key is the same request."""
    key = {"Idempotency-Key": "order-7"}
    ext = persisted(CREATE)
    missed = await post(gql, {"extensions": ext}, key)
    assert missed.json() == NOT_FOUND
    sent = await post(gql, {"query": CREATE, "extensions": ext}, key)
    assert sent.status_code == 200 and "errors" not in sent.json()
    replayed = await post(gql, {"query": CREATE, "extensions": ext}, key)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == sent.content
    by_hash = await post(gql, {"extensions": ext}, key)
    assert by_hash.headers["idempotent-replayed"] == "true"
    count = await gql.data("admin", "{ customers { totalCount } }")
    assert count["customers"]["totalCount"] == 1


# Every combination of what a request carries, and whether the hash was registered before:
# the outcome of each follows from the protocol (the model below), with the setting on and off.
TEXTS = ("none", "text", "other text")
HASHES = ("none", "of text", "of other text", "malformed")
VIEWER_DATA = {"data": {"viewer": {"roles": ["admin"]}}}
OTHER = "query Other { viewer { scope } }"
OTHER_DATA = {"data": {"viewer": {"scope": "ALL"}}}


def expected(text: str, sent_hash: str, registered: bool, on: bool) -> tuple[int, Any]:
    """(status, body or error code) the protocol asks for."""
    if sent_hash == "none":
        if text == "none":
            return 400, "BAD_REQUEST"  # no query at all
        return 200, VIEWER_DATA if text == "text" else OTHER_DATA
    if text == "none":
        if not on:
            return 200, NOT_SUPPORTED
        if sent_hash == "malformed":
            return 400, "BAD_REQUEST"
        return 200, VIEWER_DATA if sent_hash == "of text" and registered else NOT_FOUND
    body = VIEWER_DATA if text == "text" else OTHER_DATA
    if not on:
        return 200, body  # the extension is ignored; the text runs
    if sent_hash == "malformed":
        return 400, "BAD_REQUEST"
    matches = (text, sent_hash) in (("text", "of text"), ("other text", "of other text"))
    return (200, body) if matches else (400, "BAD_USER_INPUT")


@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
async def test_every_combination_of_text_and_hash(
    settings: Settings, clock: FixedClock, admin: str, on: bool
) -> None:
    async with (
        running(replace(settings, persisted_queries=on), clock) as app,
        client_of(app, clock) as gql,
    ):
        texts = {"none": None, "text": VIEWER, "other text": OTHER}
        hashes: dict[str, Any] = {
            "none": None,
            "of text": sha256(VIEWER),
            "of other text": sha256(OTHER),
            "malformed": 12,
        }
        for registered in (False, True):
            if registered:
                await post(gql, {"query": VIEWER, "extensions": persisted(VIEWER)})
            for text, sent_hash in itertools.product(TEXTS, HASHES):
                body: dict[str, Any] = {}
                if texts[text] is not None:
                    body["query"] = texts[text]
                if hashes[sent_hash] is not None:
                    body["extensions"] = {
                        "persistedQuery": {"version": 1, "sha256Hash": hashes[sent_hash]}
                    }
                for method in ("POST", "GET"):
                    if method == "GET" and not body:
                        continue  # a GET without parameters is the GraphiQL page
                    if method == "POST":
                        response = await post(gql, body)
                    else:
                        response = await get(gql, body)
                    status, want = expected(text, sent_hash, registered, on)
                    case = (method, text, sent_hash, registered)
                    assert response.status_code == status, (case, response.text)
                    if isinstance(want, str):
                        assert error_codes(response.json()) == [want], case
                    else:
                        assert response.json() == want, case
                if text == "other text" and sent_hash == "of other text":
                    # It registered OTHER: forget it again for the rest of the table.
                    gql_documents(gql)._persisted.pop(sha256(OTHER), None)


def test_a_hash_is_forgotten_with_its_document() -> None:
    """One cache: the hashes name prepared documents and go when the LRU drops them."""
    cache = DocumentCache(maxsize=2)
    texts = ["{ a }", "{ b }", "{ c }"]
    cache.document(texts[0], parse)
    assert cache.register(sha256(texts[0]), texts[0])
    assert not cache.register(sha256("{ never parsed }"), "{ never parsed }")
    cache.document(texts[1], parse)
    assert cache.persisted(sha256(texts[0])) == texts[0]  # now the most recently used
    cache.document(texts[2], parse)  # pushes out texts[1]: texts[0] was used since
    cache.document(texts[1], parse)  # pushes out texts[0], and its hash with it
    assert cache.persisted(sha256(texts[0])) is None
    assert cache._persisted == {}


@pytest.mark.parametrize(("raw", "on"), [("off", False), ("0", False), ("on", True), (None, True)])
def test_the_setting_is_read_and_shown_by_doctor(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, on: bool
) -> None:
    if raw is None:
        monkeypatch.delenv("BATON_PERSISTED_QUERIES", raising=False)
    else:
        monkeypatch.setenv("BATON_PERSISTED_QUERIES", raw)
    settings = Settings.from_env()
    assert settings.persisted_queries is on
    assert settings.effective()["BATON_PERSISTED_QUERIES"] == str(on)


@hypothesis.given(
    st.lists(st.tuples(st.sampled_from(("send", "register", "look up")), st.integers(0, 5)))
)
@hypothesis.settings(max_examples=200, deadline=None)
def test_the_hashes_follow_the_documents_lru(steps: list[tuple[str, int]]) -> None:
    """Against a model of the LRU: a hash resolves exactly while its registered document is
    among the ``maxsize`` most recently used, and nothing else is kept."""
    cache = DocumentCache(maxsize=3)
    recent: list[str] = []  # the model: texts, least recently used first
    registered: set[str] = set()

    def use(text: str) -> None:
        if text in recent:
            recent.remove(text)
        recent.append(text)
        for gone in recent[:-3]:
            registered.discard(gone)
        del recent[:-3]

    for action, i in steps:
        text = f"{{ f{i} }}"
        if action == "send":
            cache.document(text, parse)
            use(text)
        elif action == "register":
            assert cache.register(sha256(text), text) == (text in recent)
            if text in recent:
                use(text)
                registered.add(text)
        else:
            found = cache.persisted(sha256(text))
            assert found == (text if text in registered else None)
            if found is not None:
                use(text)
        assert set(cache._persisted.values()) == registered
