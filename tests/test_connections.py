"""Every list of entities is a Relay connection: the schema says so, and the converted lists
(`assignmentRules`, `riskWarnings`) page like the others."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from graphql import (
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    get_named_type,
    get_nullable_type,
)

from core.api.schema import build_schema
from core.plugins import builtin_plugins
from tests.conftest import GraphQLClient, error_codes
from tests.test_assignment_api import add_rule
from tests.test_tiering import customer, record

# Plain lists of entities that stay plain, and why (docs/frontend/graphql.md, "Lists").
PLAIN = {
    # A mutation's payload reports everything that one call did; it cannot be paged later.
    "RunAssignmentPayload.assigned",
    "RunAssignmentPayload.requests",
    "DeactivateUserPayload.requests",
    "TierReviewPayload.movements",
    "DeactivateUserPayload.releases",
    "WebhookDeliveriesPayload.deliveries",
    "GroupRequestsPayload.requests",
    "RecordActivityPayload.movements",
    # A computed result of one request over the given customers and rules, not stored.
    "AssignmentPreview.moves",
    "AssignmentPreview.loadChanges",
    "AssignmentExplanation.steps",
    "Query.lintAssignmentRules",
    "Query.portfolio",  # one row per owner of the viewer's team
    "GroupReassignmentPreview.units",
    "AccountRollup.owners",  # one row per owner of the group's units
    # Bounded child lists: an admin-chosen pool, a customer's few owners over its life.
    "AssignmentRule.pool",
    "Customer.ownershipHistory",
    # A customer's surveys (a few a year) and its tier overrides (one per tier at most).
    "Customer.surveys",
    "Customer.tierOverrides",
    # A group is at most 8 levels deep; an account's team is the few people around it.
    "Customer.ancestors",
    "Customer.team",
    "Handbook.team",
}


def _wraps_entity(type_: GraphQLNamedType) -> bool:
    """An entity (implements Node), or an item type that carries one (`AtRiskCustomer`)."""
    if not isinstance(type_, GraphQLObjectType):
        return False
    if any(i.name == "Node" for i in type_.interfaces):
        return True
    return any(
        isinstance(t := get_named_type(f.type), GraphQLObjectType)
        and any(i.name == "Node" for i in t.interfaces)
        for f in type_.fields.values()
    )


def _is_list(type_: GraphQLOutputType) -> bool:
    return isinstance(get_nullable_type(type_), GraphQLList)  # type: ignore[arg-type]


def test_every_list_of_entities_is_a_connection_or_named_as_an_exception() -> None:
    schema = build_schema(builtin_plugins())._schema
    plain = {
        f"{type_.name}.{name}"
        for type_ in schema.type_map.values()
        if isinstance(type_, GraphQLObjectType) and not type_.name.endswith("Connection")
        for name, field in type_.fields.items()
        if _is_list(field.type) and _wraps_entity(get_named_type(field.type))
    }
    assert plain == PLAIN, "make these connections, or add them with the reason to PLAIN"
    connections = [
        f
        for f in schema.query_type.fields.values()  # type: ignore[union-attr]
        if get_named_type(f.type).name.endswith("Connection")
    ]
    for field in connections:
        assert {"first", "after"} <= set(field.args)
        assert field.args["first"].default_value == 20


async def test_assignment_rules_page_by_priority_then_id(gql: GraphQLClient, admin: str) -> None:
    for priority, name in [(30, "c"), (10, "a"), (20, "b")]:
        await add_rule(gql, name=name, priority=priority, strategy="FIXED_OWNER", ownerId="am.chen")
    await add_rule(
        gql, name="off", priority=10, strategy="FIXED_OWNER", ownerId="am.wu", enabled=False
    )
    page = """query($after: String) { assignmentRules(first: 2, after: $after) {
      totalCount edges { cursor node { id name priority } }
      pageInfo { hasNextPage endCursor } } }"""
    names: list[str] = []
    after = None
    while True:
        rules = (await gql.data("admin", page, {"after": after}))["assignmentRules"]
        assert rules["totalCount"] == 4
        names += [e["node"]["name"] for e in rules["edges"]]
        if not rules["pageInfo"]["hasNextPage"]:
            break
        after = rules["pageInfo"]["endCursor"]
    assert names == ["a", "off", "b", "c"]  # equal priority: by id (ids grow with creation)


async def test_assignment_rules_keep_the_page_size_limit(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute("admin", "{ assignmentRules(first: 101) { totalCount } }")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    body = await gql.execute("admin", '{ assignmentRules(after: "bm9wZQ") { totalCount } }')
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_risk_warnings_page_most_urgent_first(
    gql: GraphQLClient, admin: str, clock: Any
) -> None:
    quiet = await customer(gql, name="Quiet")  # no order for two months: FOLLOW_UP
    for _ in range(3):
        await record(gql, quiet, "ORDER", clock, amount="1000", category="valves")
        clock.advance(timedelta(days=7))
    clock.advance(timedelta(days=61))
    leaving = [await customer(gql, name=f"Leaving {i}") for i in range(3)]
    for cid in leaving:
        await record(gql, cid, "LEAVE_INTENT", clock, note="competitor")
    await customer(gql, name="Fine")
    page = """query($after: String) { riskWarnings(first: 2, after: $after) {
      totalCount edges { node { customer { id } health { warnings { level } } } }
      pageInfo { hasNextPage endCursor } } }"""
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        found = (await gql.data("admin", page, {"after": after}))["riskWarnings"]
        seen += [
            (e["node"]["customer"]["id"], e["node"]["health"]["warnings"][0]["level"])
            for e in found["edges"]
        ]
        if not found["pageInfo"]["hasNextPage"]:
            break
        after = found["pageInfo"]["endCursor"]
    assert found["totalCount"] == len(seen)
    assert sorted(cid for cid, _ in seen) == sorted([*leaving, quiet])
    assert [level for cid, level in seen] == ["RETENTION"] * 3 + ["FOLLOW_UP"]
    assert [cid for cid, _ in seen][:3] == sorted(leaving)  # same urgency: by id
    body = await gql.execute("admin", '{ riskWarnings(after: "WzFd") { totalCount } }')
    assert error_codes(body) == ["BAD_USER_INPUT"]
