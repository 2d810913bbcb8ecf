"""Prepared documents: parse, validation and the limits' measure once per distinct document,
while the limits still apply to every request's own variables."""

from __future__ import annotations

from dataclasses import replace

import hypothesis
from graphql import parse
from hypothesis import strategies as st
from starlette.applications import Starlette

from core.api.documents import LRU, DocumentCache
from core.api.limits import measure, measure_reading
from core.clock import FixedClock
from core.config import Settings
from tests.conftest import GraphQLClient, client_of, error_codes, running
from tests.test_query_limits import NESTED, nested

PAGE = "query($n: Int!) { customers(first: $n) { edges { node { id name owner { id } } } } }"


def parses(app: Starlette) -> int:
    documents = app.state.schema.documents
    assert isinstance(documents, DocumentCache)
    return documents.parses


async def test_a_document_sent_again_is_not_parsed_again(
    app: Starlette, gql: GraphQLClient, admin: str
) -> None:
    before = parses(app)
    for first in (1, 5, 1, 50):
        await gql.data("admin", PAGE, {"n": first})
    assert parses(app) == before + 1
    await gql.data("admin", PAGE.replace("name", "territory"), {"n": 1})
    assert parses(app) == before + 2


async def test_the_cost_limit_applies_to_each_requests_own_first(
    settings: Settings, clock: FixedClock, admin: str
) -> None:
    # The page costs 1 + n x 6: under 200 for n = 10, over it for n = 100.
    async with (
        running(replace(settings, max_cost=200), clock) as app,
        client_of(app, clock) as gql,
    ):
        assert (await gql.data("admin", PAGE, {"n": 10}))["customers"]["edges"] == []
        refused = await gql.execute("admin", PAGE, {"n": 100})
        assert error_codes(refused) == ["QUERY_TOO_COMPLEX"]
        assert refused["errors"][0]["extensions"]["limit"] == {
            "name": "cost",
            "value": 601,
            "max": 200,
        }
        # Back to a small page: the refusal was not remembered for the document.
        assert (await gql.data("admin", PAGE, {"n": 10}))["customers"]["edges"] == []


async def test_an_invalid_document_is_refused_every_time(gql: GraphQLClient, admin: str) -> None:
    for _ in range(2):
        body = await gql.execute("admin", "{ customers { edges { node { nope } } } }")
        assert body["data"] is None
        assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_introspection_switch_applies_to_a_cached_document(
    settings: Settings, clock: FixedClock, admin: str
) -> None:
    query = "{ __schema { queryType { name } } }"
    async with (
        running(replace(settings, introspection=False), clock) as app,
        client_of(app, clock) as gql,
    ):
        for _ in range(2):
            assert error_codes(await gql.execute("admin", query)) == ["GRAPHQL_VALIDATION_FAILED"]


@hypothesis.given(
    st.lists(st.one_of(st.none(), st.integers(0, 100)), min_size=1, max_size=4),
    st.lists(st.lists(st.one_of(st.none(), st.integers(0, 100)), min_size=4, max_size=4)),
)
@hypothesis.settings(max_examples=100, deadline=None)
def test_a_cached_measure_equals_a_fresh_one(
    sizes: list[int | None], requests: list[list[int | None]]
) -> None:
    query, declared = nested(sizes)
    cache = DocumentCache()
    prepared = cache.document(query, parse)
    document = prepared.document
    for values in requests:
        # Each request sends its own values for the declared variables (or leaves one out).
        variables = {
            name: value for name, value in zip(declared, values, strict=False) if value is not None
        }
        fresh = lambda v=variables: measure_reading(NESTED, document, None, v)  # noqa: E731
        cached = cache.measure(prepared, None, variables, fresh)
        assert cached == measure(NESTED, parse(query), variables=variables)
    assert cache.parses == 1


def test_the_cache_forgets_the_least_recently_used_document() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recently used
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c"), len(lru)) == (1, None, 3, 2)
