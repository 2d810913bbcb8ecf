"""`runTierReview(input: { customerIds, dryRun })`: a preview that writes nothing, a review of
some customers, and the changes it reports."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.domain.models import Base
from core.services import Services
from tests.conftest import GraphQLClient, error_codes
from tests.test_tiering import customer

REVIEW = """mutation($input: RunTierReviewInput!) { runTierReview(input: $input) {
  reviewed dryRun
  movements { customer { id name valueTier } tier before after reason redacted } } }"""


async def everything(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that nothing at all was written."""
    async with services.db.reader() as session:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in await session.execute(select(table))),
            )
            for table in Base.metadata.sorted_tables
        }


async def ranked(gql: GraphQLClient) -> list[str]:
    """Five customers whose revenue ranks them; none has a tier yet."""
    return [
        await customer(gql, annualRevenue=str(1_000_000 * (i + 1)), strategicFit=90)
        for i in range(5)
    ]


async def test_a_dry_run_reports_the_changes_and_writes_nothing(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    ids = await ranked(gql)
    before = await everything(services)
    preview = (await gql.data("admin", REVIEW, {"input": {"dryRun": True}}))["runTierReview"]
    assert await everything(services) == before
    assert preview["dryRun"] is True
    assert preview["reviewed"] == 5
    top = next(
        m for m in preview["movements"] if m["customer"]["id"] == ids[-1] and m["tier"] == "value"
    )
    assert top["before"] is None
    assert top["after"] == "STRATEGIC"
    assert top["reason"]  # the criterion that decided
    assert top["customer"] == {"id": ids[-1], "name": "Acme", "valueTier": None}  # not written

    applied = (await gql.data("admin", REVIEW, {"input": {}}))["runTierReview"]
    assert applied["dryRun"] is False

    def changes(result: dict[str, Any]) -> list[tuple[str, str, Any, Any, Any]]:
        return sorted(
            (m["customer"]["id"], m["tier"], m["before"], m["after"], m["reason"])
            for m in result["movements"]
        )

    assert changes(applied) == changes(preview)  # the preview was exact
    assert await everything(services) != before


async def test_a_review_of_some_customers_moves_only_theirs(gql: GraphQLClient, admin: str) -> None:
    ids = await ranked(gql)
    result = await gql.data("admin", REVIEW, {"input": {"customerIds": [ids[-1], ids[0]]}})
    review = result["runTierReview"]
    assert review["reviewed"] == 2
    assert {m["customer"]["id"] for m in review["movements"]} == {ids[-1], ids[0]}
    # Ranked against everyone, not just the two: the top one is still STRATEGIC.
    value = {m["customer"]["id"]: m["after"] for m in review["movements"] if m["tier"] == "value"}
    assert value[ids[-1]] == "STRATEGIC"
    tiers = await gql.data("admin", "{ customers(first: 10) { edges { node { id valueTier } } } }")
    unchanged = [e["node"] for e in tiers["customers"]["edges"] if e["node"]["id"] in ids[1:-1]]
    assert [c["valueTier"] for c in unchanged] == [None, None, None]


async def test_an_unknown_customer_is_not_found_and_nothing_is_written(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    ids = await ranked(gql)
    before = await everything(services)
    body = await gql.execute("admin", REVIEW, {"input": {"customerIds": [ids[0], "cus_nobody"]}})
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"]["runTierReview"] is None
    assert await everything(services) == before


async def test_the_input_is_required_like_every_mutation(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", "mutation { runTierReview { reviewed } }")
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
