"""The customers connection: filters, ordering, keyset pagination, page-size limits."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain import LifecycleStage, ValueTier
from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

LIST = """query($first: Int, $after: String, $filter: CustomerFilter, $orderBy: CustomerOrder) {
  customers(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { cursor node { id name territory industry owner { id } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _names(gql: GraphQLClient, **variables: Any) -> list[str]:
    data = await gql.data("admin", LIST, {"first": 100, **variables})
    return [e["node"]["name"] for e in data["customers"]["edges"]]


async def _seed(services: Services) -> None:
    admin = Actor("admin")
    rows = [
        ("Alpha", "CN/East/Shanghai", "manufacturing.automotive", ValueTier.HIGH, "am.chen"),
        ("Bravo", "CN/East", "manufacturing", ValueTier.LOW, "am.wu"),
        ("Charlie", "CN/Eastern", "manufacturing_old", ValueTier.HIGH, None),
        ("Delta", "CN/North/Beijing", "banking.retail", ValueTier.STRATEGIC, "am.chen"),
        ("echo 50%_off", "US/West", "retail", None, None),
    ]
    for name, territory, industry, tier, owner in rows:
        await services.customers.create(
            admin,
            {
                "name": name,
                "territory": territory,
                "industry": industry,
                "value_tier": tier,
                "lifecycle_stage": LifecycleStage.ACTIVE if owner else LifecycleStage.LEAD,
            },
            owner_id=owner,
        )


async def test_filters_combine(gql: GraphQLClient, services: Services, admin: str) -> None:
    await _seed(services)
    assert await _names(gql, filter={"territory": "CN/East"}) == ["Alpha", "Bravo"]
    assert await _names(gql, filter={"industry": "manufacturing"}) == ["Alpha", "Bravo"]
    assert await _names(gql, filter={"ownerId": "am.chen"}) == ["Alpha", "Delta"]
    assert await _names(gql, filter={"unassigned": True}) == ["Charlie", "echo 50%_off"]
    assert await _names(gql, filter={"valueTiers": ["HIGH", "STRATEGIC"], "territory": "CN"}) == [
        "Alpha",
        "Charlie",
        "Delta",
    ]
    assert await _names(gql, filter={"lifecycleStages": ["LEAD"]}) == ["Charlie", "echo 50%_off"]
    assert await _names(gql, filter={"search": "LT"}) == ["Delta"]
    assert await _names(gql, filter={"search": "50%_"}) == ["echo 50%_off"]
    assert await _names(gql, filter={"search": "%"}) == ["echo 50%_off"]


async def test_order_by_name_descending(gql: GraphQLClient, services: Services, admin: str) -> None:
    await _seed(services)
    names = await _names(gql, orderBy={"field": "NAME", "direction": "DESC"})
    assert names == ["echo 50%_off", "Delta", "Charlie", "Bravo", "Alpha"]


async def test_page_size_over_100_is_bad_input(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", LIST, {"first": 101})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == "first"


async def test_garbage_cursor_is_bad_input(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", LIST, {"after": "not-a-cursor"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def _walk(
    gql: GraphQLClient, order: dict[str, str], page: int, between_pages: Any = None
) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        data = await gql.data("admin", LIST, {"first": page, "after": after, "orderBy": order})
        seen += [e["node"]["id"] for e in data["customers"]["edges"]]
        info = data["customers"]["pageInfo"]
        if not info["hasNextPage"]:
            return seen
        after = info["endCursor"]
        if between_pages:
            await between_pages()


async def test_keyset_pages_return_every_row_once_while_rows_are_inserted(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    admin_actor = Actor("admin")
    original = [
        (await services.customers.create(admin_actor, {"name": f"Customer {i:02d}"})).id
        for i in range(23)
    ]
    inserted = iter(range(100))

    async def insert_some() -> None:
        # New rows land before and after the cursor position in name order.
        i = next(inserted)
        for name in (f"AAA new {i}", f"Customer 10.5 new {i}", f"ZZZ new {i}"):
            await services.customers.create(admin_actor, {"name": name})

    for order in (
        {"field": "NAME", "direction": "ASC"},
        {"field": "CREATED_AT", "direction": "DESC"},
    ):
        seen = await _walk(gql, order, 5, insert_some)
        assert len(seen) == len(set(seen)), "a row was returned twice"
        assert set(original) <= set(seen), "an existing row was skipped"


# Territory and industry codes built from few parts, so that prefixes often collide.
_part = st.sampled_from(["CN", "East", "Eastern", "US", "a_b", "a%b", "x"])
_territory = st.lists(_part, min_size=1, max_size=3).map("/".join)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(territories=st.lists(_territory, min_size=1, max_size=6), prefix=_territory)
async def test_territory_prefix_filter_matches_the_path_rule(
    gql: GraphQLClient, services: Services, admin: str, territories: list[str], prefix: str
) -> None:
    """A prefix matches the territory itself and everything below it, nothing else."""
    tag = f"h{len(territories)}{abs(hash((tuple(territories), prefix))) % 10**8}"
    for i, territory in enumerate(territories):
        await services.customers.create(
            Actor("admin"), {"name": f"{tag} {i}", "territory": territory}
        )
    names = await _names(gql, filter={"territory": prefix, "search": tag})
    expected = sorted(
        f"{tag} {i}" for i, t in enumerate(territories) if t == prefix or t.startswith(prefix + "/")
    )
    assert sorted(names) == expected
