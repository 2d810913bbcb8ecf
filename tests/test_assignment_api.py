"""Assignment rules over GraphQL: rules, automatic assignment, explain, preview, run."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from core.services import Actor, Services
from tests.conftest import GraphQLClient, error_codes

CREATE_RULE = """mutation($input: CreateAssignmentRuleInput!) {
  createAssignmentRule(input: $input) { rule { id version name priority strategy owner { id } } }
}"""
CREATE_CUSTOMER = """mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) {
    customer { id owner { id } ownership { assignedBy reason } } }
}"""


async def add_rule(gql: GraphQLClient, **input_: Any) -> dict[str, Any]:
    data = await gql.data("admin", CREATE_RULE, {"input": input_})
    return data["createAssignmentRule"]["rule"]  # type: ignore[no-any-return]


async def east_to_chen(gql: GraphQLClient) -> dict[str, Any]:
    """The rule most examples need: CN/East customers go to am.chen."""
    return await add_rule(
        gql,
        name="East",
        priority=1,
        strategy="FIXED_OWNER",
        ownerId="am.chen",
        conditions={"territories": ["CN/East"]},
    )


async def new_customer(gql: GraphQLClient, **input_: Any) -> dict[str, Any]:
    data = await gql.data("admin", CREATE_CUSTOMER, {"input": {"name": "New", **input_}})
    return data["createCustomer"]["customer"]  # type: ignore[no-any-return]


async def test_territory_and_industry_rule_assigns_new_customers(
    gql: GraphQLClient, admin: str
) -> None:
    await add_rule(
        gql,
        name="East automotive",
        priority=10,
        strategy="FIXED_OWNER",
        ownerId="am.chen",
        conditions={"territories": ["CN/East"], "industries": ["manufacturing"]},
    )
    await add_rule(
        gql,
        name="East catch-all",
        priority=20,
        strategy="FIXED_OWNER",
        ownerId="am.wu",
        conditions={"territories": ["CN/East"]},
    )
    auto = await new_customer(
        gql, territory="CN/East/Shanghai", industry="manufacturing.automotive"
    )
    assert auto["owner"] == {"id": "am.chen"}
    assert auto["ownership"]["assignedBy"] == "RULE"
    assert "East automotive" in auto["ownership"]["reason"]
    other = await new_customer(gql, territory="CN/East/Hangzhou", industry="banking.retail")
    assert other["owner"] == {"id": "am.wu"}
    nowhere = await new_customer(gql, territory="US/West")
    assert nowhere["owner"] is None
    manual = await new_customer(gql, territory="CN/East", autoAssign=False)
    assert manual["owner"] is None


async def test_first_contact_rule_for_new_leads(gql: GraphQLClient, admin: str) -> None:
    await add_rule(
        gql,
        name="Leads stay with first contact",
        priority=1,
        strategy="FIRST_CONTACT",
        conditions={"lifecycleStages": ["LEAD"]},
    )
    lead = await new_customer(gql, lifecycleStage="LEAD", firstContactId="am.wu")
    assert lead["owner"] == {"id": "am.wu"}


async def test_duplicate_enabled_priority_is_bad_input(gql: GraphQLClient, admin: str) -> None:
    await add_rule(gql, name="One", priority=5, strategy="FIXED_OWNER", ownerId="am.chen")
    body = await gql.execute(
        "admin",
        CREATE_RULE,
        {"input": {"name": "Two", "priority": 5, "strategy": "FIXED_OWNER", "ownerId": "am.wu"}},
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == "input.priority"
    disabled = await add_rule(
        gql, name="Two", priority=5, strategy="FIXED_OWNER", ownerId="am.wu", enabled=False
    )
    assert disabled["priority"] == 5


async def test_invalid_rules_name_the_field(gql: GraphQLClient, admin: str) -> None:
    body = await gql.execute(
        "admin",
        CREATE_RULE,
        {
            "input": {
                "name": "",
                "priority": 1,
                "strategy": "ROUND_ROBIN",
                "conditions": {"territories": ["CN//East"], "extra": {"aum_band": ["A"]}},
            }
        },
    )
    paths = {f["path"] for f in body["errors"][0]["extensions"]["fields"]}
    assert paths == {
        "input.name",
        "input.poolIds",
        "input.conditions.territories.0",
        "input.conditions.extra.aum_band",
    }


async def test_extra_conditions_of_the_wrong_shape_are_bad_input(
    gql: GraphQLClient, admin: str
) -> None:
    # Found by tests/test_fuzz.py: `extra` is JSON, so anything arrives; both were INTERNAL.
    preview = """query($rules: [CreateAssignmentRuleInput!]) {
        previewAssignment(input: {rules: $rules}) { unchangedCount } }"""
    for extra, path in ((2, "conditions.extra"), ({"aumBand": "A"}, "conditions.extra.aumBand")):
        rule = {"name": "R", "priority": 1, "strategy": "FIXED_OWNER", "ownerId": "am.chen"}
        rule["conditions"] = {"extra": extra}
        created = await gql.execute("admin", CREATE_RULE, {"input": rule})
        previewed = await gql.execute("admin", preview, {"rules": [rule]})
        assert created["errors"][0]["extensions"]["fields"][0]["path"] == f"input.{path}"
        assert previewed["errors"][0]["extensions"]["fields"][0]["path"] == f"input.rules.0.{path}"


async def test_stale_rule_version_is_conflict(gql: GraphQLClient, admin: str) -> None:
    rule = await add_rule(gql, name="R", priority=1, strategy="FIXED_OWNER", ownerId="am.chen")
    update = """mutation($input: UpdateAssignmentRuleInput!) {
        updateAssignmentRule(input: $input) { rule { version priority } } }"""
    data = await gql.data(
        "admin", update, {"input": {"id": rule["id"], "expectedVersion": 1, "priority": 2}}
    )
    assert data["updateAssignmentRule"]["rule"] == {"version": 2, "priority": 2}
    body = await gql.execute(
        "admin", update, {"input": {"id": rule["id"], "expectedVersion": 1, "priority": 3}}
    )
    assert error_codes(body) == ["CONFLICT"]


async def test_explain_names_each_rule_and_why(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    await add_rule(
        gql,
        name="North",
        priority=1,
        strategy="FIXED_OWNER",
        ownerId="am.chen",
        conditions={"territories": ["CN/North"]},
    )
    await add_rule(gql, name="Gone", priority=2, strategy="FIXED_OWNER", ownerId="am.wu")
    await add_rule(gql, name="Fallback", priority=3, strategy="FIXED_OWNER", ownerId="tm.li")
    await services.users.deactivate(Actor("admin"), "am.wu")
    customer = await new_customer(gql, territory="CN/East")
    data = await gql.data(
        "admin",
        """query($id: ID!) { explainAssignment(customerId: $id) {
        decidedOwner { id } rule { name } steps { rule { name } matched reasons } } }""",
        {"id": customer["id"]},
    )
    explanation = data["explainAssignment"]
    assert explanation["decidedOwner"] == {"id": "tm.li"}
    assert explanation["rule"] == {"name": "Fallback"}
    assert explanation["steps"] == [
        {
            "rule": {"name": "North"},
            "matched": False,
            "reasons": ["territory 'CN/East' is not under CN/North"],
        },
        {
            "rule": {"name": "Gone"},
            "matched": True,
            "reasons": ["fixed owner am.wu is inactive or at capacity"],
        },
        {"rule": {"name": "Fallback"}, "matched": True, "reasons": ["fixed owner tm.li"]},
    ]


async def test_explanations_redact_fields_the_viewer_cannot_read(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    await services.users.create(Actor.system(), "fin.he", "Fin", roles=["finance"])
    await services.policies.grant(Actor.system(), "finance", "Query.explainAssignment", "call")
    await add_rule(
        gql,
        name="Strategic only",
        priority=1,
        strategy="FIXED_OWNER",
        ownerId="am.chen",
        conditions={"valueTiers": ["STRATEGIC"]},
    )
    customer = await new_customer(gql, valueTier="LOW", autoAssign=False)
    body = await gql.execute(
        "fin.he",
        """query($id: ID!) { explainAssignment(customerId: $id) {
        decidedOwner { id } steps { reasons } } }""",
        {"id": customer["id"]},
    )
    reasons = body["data"]["explainAssignment"]["steps"][0]["reasons"]
    assert reasons == ["valueTier does not match (you may not read valueTier)"]
    assert "LOW" not in str(body)


async def test_preview_is_exact_and_writes_nothing(gql: GraphQLClient, admin: str) -> None:
    unowned = await new_customer(gql, territory="CN/East")
    owned = await new_customer(gql, territory="CN/East", ownerId="am.wu")
    elsewhere = await new_customer(gql, territory="US")
    audit = "{ auditLog { totalCount } }"
    entries = (await gql.data("admin", audit))["auditLog"]["totalCount"]
    data = await gql.data(
        "admin",
        """query($rules: [CreateAssignmentRuleInput!]) {
        previewAssignment(input: {rules: $rules}) {
          moves { customer { id } fromOwner { id } toOwner { id } }
          unchangedCount unassignedCount loadChanges { owner { id } before after } } }""",
        {
            "rules": [
                {
                    "name": "East to Chen",
                    "priority": 1,
                    "strategy": "FIXED_OWNER",
                    "ownerId": "am.chen",
                    "conditions": {"territories": ["CN/East"]},
                }
            ]
        },
    )
    preview = data["previewAssignment"]
    moves = {m["customer"]["id"]: (m["fromOwner"], m["toOwner"]) for m in preview["moves"]}
    assert moves == {
        unowned["id"]: (None, {"id": "am.chen"}),
        owned["id"]: ({"id": "am.wu"}, {"id": "am.chen"}),
    }
    assert (preview["unchangedCount"], preview["unassignedCount"]) == (0, 1)
    assert {c["owner"]["id"]: (c["before"], c["after"]) for c in preview["loadChanges"]} == {
        "am.chen": (0, 2),
        "am.wu": (1, 0),
    }
    assert (await gql.data("admin", audit))["auditLog"]["totalCount"] == entries
    assert elsewhere["owner"] is None


async def test_run_assigns_unowned_and_requests_realignment(gql: GraphQLClient, admin: str) -> None:
    unowned = await new_customer(gql, territory="CN/East")
    owned = await new_customer(gql, territory="CN/East", ownerId="am.wu")
    await add_rule(
        gql,
        name="East to Chen",
        priority=1,
        strategy="FIXED_OWNER",
        ownerId="am.chen",
        conditions={"territories": ["CN/East"]},
    )
    run = """mutation($dry: Boolean!) { runAssignment(input: {dryRun: $dry}) {
        assigned { id owner { id } } requests { id customer { id } fromOwner { id }
        toOwner { id } trigger status } dryRun } }"""
    dry = (await gql.data("admin", run, {"dry": True}))["runAssignment"]
    assert [c["id"] for c in dry["assigned"]] == [unowned["id"]]
    assert dry["assigned"][0]["owner"] is None  # nothing written
    real = (await gql.data("admin", run, {"dry": False}))["runAssignment"]
    assert real["assigned"] == [{"id": unowned["id"], "owner": {"id": "am.chen"}}]
    [request] = real["requests"]
    assert request["customer"] == {"id": owned["id"]}
    assert (request["fromOwner"], request["toOwner"]) == ({"id": "am.wu"}, {"id": "am.chen"})
    assert (request["trigger"], request["status"]) == ("RULE_REALIGNMENT", "PENDING")
    again = (await gql.data("admin", run, {"dry": False}))["runAssignment"]
    assert again["assigned"] == [] and again["requests"] == []  # one open request per customer
    history = await gql.data(
        "admin",
        """query($id: ID!) { auditLog(filter: {entityId: $id,
        action: "runAssignment"}) { edges { node { changes { field after } } } } }""",
        {"id": unowned["id"]},
    )
    [entry] = history["auditLog"]["edges"]
    assert entry["node"]["changes"] == [{"field": "owner", "after": "am.chen"}]


async def test_concurrent_round_robin_assignments_share_the_pool_evenly(
    gql: GraphQLClient, admin: str
) -> None:
    await add_rule(
        gql,
        name="Round robin",
        priority=1,
        strategy="ROUND_ROBIN",
        poolIds=["am.chen", "am.wu", "tm.li"],
    )
    customers = await asyncio.gather(*[new_customer(gql, name=f"C{i}") for i in range(9)])
    owners = Counter(c["owner"]["id"] for c in customers)
    assert owners == {"am.chen": 3, "am.wu": 3, "tm.li": 3}


UPDATE_CUSTOMER = """mutation($input: UpdateCustomerInput!) {
  updateCustomer(input: $input) { customer { version owner { id } } } }"""


async def test_lifecycle_change_opens_a_realignment_request(gql: GraphQLClient, admin: str) -> None:
    """A converted lead moves from pre-sales to the customer-success team, via approval."""
    await add_rule(
        gql,
        name="Leads to pre-sales",
        priority=1,
        strategy="FIXED_OWNER",
        ownerId="am.wu",
        conditions={"lifecycleStages": ["LEAD", "PROSPECT"]},
    )
    await add_rule(
        gql,
        name="Customers to success",
        priority=2,
        strategy="FIXED_OWNER",
        ownerId="am.chen",
        conditions={"lifecycleStages": ["ACTIVE"]},
    )
    lead = await new_customer(gql, lifecycleStage="LEAD")
    assert lead["owner"] == {"id": "am.wu"}
    data = await gql.data(
        "admin",
        UPDATE_CUSTOMER,
        {"input": {"id": lead["id"], "expectedVersion": 1, "lifecycleStage": "ACTIVE"}},
    )
    assert data["updateCustomer"]["customer"]["owner"] == {"id": "am.wu"}  # moves only by handover
    audit = await gql.data(
        "admin",
        """{ auditLog(filter: {entityType: "ReassignmentRequest"}) {
        edges { node { action changes { field after } } } } }""",
    )
    [entry] = [e["node"] for e in audit["auditLog"]["edges"]]
    changes = {c["field"]: c["after"] for c in entry["changes"]}
    assert (entry["action"], changes["toOwner"], changes["trigger"]) == (
        "requestReassignment",
        "am.chen",
        "RULE_REALIGNMENT",
    )


async def test_profile_change_assigns_an_unowned_customer(gql: GraphQLClient, admin: str) -> None:
    await east_to_chen(gql)
    customer = await new_customer(gql, territory="US")
    assert customer["owner"] is None
    data = await gql.data(
        "admin",
        UPDATE_CUSTOMER,
        {"input": {"id": customer["id"], "expectedVersion": 1, "territory": "CN/East/Suzhou"}},
    )
    assert data["updateCustomer"]["customer"]["owner"] == {"id": "am.chen"}
    history = await gql.data(
        "admin",
        """query($id: ID!) { auditLog(filter: {entityId: $id,
        action: "updateCustomer"}) { edges { node { changes { field after } } } } }""",
        {"id": customer["id"]},
    )
    [entry] = history["auditLog"]["edges"]  # one entry per changed entity, owner included
    assert {c["field"] for c in entry["node"]["changes"]} == {"territory", "owner"}


async def test_ownership_history_and_owner_at(gql: GraphQLClient, admin: str, clock: Any) -> None:
    """ "Why does X own Y?" stays answerable: the rule, its version and the reason are kept."""
    from datetime import timedelta

    rule = await add_rule(
        gql,
        name="East",
        priority=1,
        strategy="FIXED_OWNER",
        ownerId="am.chen",
        conditions={"territories": ["CN/East"]},
    )
    before = clock.now()
    clock.advance(timedelta(days=1))
    customer = await new_customer(gql, territory="CN/East")
    data = await gql.data(
        "admin",
        """query($id: ID!) { customer(id: $id) { ownershipHistory {
        owner { id } assignedBy since until reason rule { id name } ruleVersion } } }""",
        {"id": customer["id"]},
    )
    [period] = data["customer"]["ownershipHistory"]
    assert period["owner"] == {"id": "am.chen"} and period["assignedBy"] == "RULE"
    assert period["until"] is None and "East" in period["reason"]
    assert (period["rule"], period["ruleVersion"]) == ({"id": rule["id"], "name": "East"}, 1)
    owner_at = "query($id: ID!, $at: DateTime!) { ownerAt(customerId: $id, at: $at) { id } }"
    then = await gql.data("admin", owner_at, {"id": customer["id"], "at": before.isoformat()})
    assert then["ownerAt"] is None
    now = await gql.data("admin", owner_at, {"id": customer["id"], "at": clock.now().isoformat()})
    assert now["ownerAt"] == {"id": "am.chen"}


async def test_lint_over_graphql(gql: GraphQLClient, admin: str) -> None:
    await east_to_chen(gql)
    await add_rule(
        gql,
        name="Shanghai",
        priority=2,
        strategy="FIXED_OWNER",
        ownerId="am.wu",
        conditions={"territories": ["CN/East/Shanghai"]},
    )
    data = await gql.data(
        "admin",
        """{ lintAssignmentRules { code rule { name }
        otherRule { name } message } }""",
    )
    [warning] = data["lintAssignmentRules"]
    assert (warning["code"], warning["rule"], warning["otherRule"]) == (
        "SHADOWED",
        {"name": "Shanghai"},
        {"name": "East"},
    )


async def test_a_pool_member_keeps_the_customers_the_pool_rule_gave_them(
    gql: GraphQLClient, admin: str
) -> None:
    """Re-running a least-loaded rule must not reshuffle customers between its members."""
    await add_rule(
        gql, name="Team", priority=1, strategy="LEAST_LOADED", poolIds=["am.chen", "am.wu"]
    )
    for i in range(5):
        await new_customer(gql, name=f"C{i}")
    await new_customer(gql, name="Extra", ownerId="am.chen")  # unbalances the pool
    data = await gql.data(
        "admin",
        """{ previewAssignment(input: {}) {
        moves { customer { id } } unchangedCount } }""",
    )
    assert data["previewAssignment"] == {"moves": [], "unchangedCount": 6}


async def test_concurrent_runs_and_manual_assignments_never_make_two_owners(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    from sqlalchemy import func, select

    from core.domain import Ownership

    await add_rule(
        gql, name="Team", priority=1, strategy="ROUND_ROBIN", poolIds=["am.chen", "am.wu", "tm.li"]
    )
    ids = [(await new_customer(gql, name=f"C{i}", autoAssign=False))["id"] for i in range(12)]
    run = "mutation { runAssignment(input: {}) { assigned { id } } }"
    assign = """mutation($id: ID!) { assignOwner(input: {customerId: $id, ownerId: "tm.li"})
        { customer { id } } }"""
    bodies = await asyncio.gather(
        *[gql.execute("admin", run) for _ in range(3)],
        *[gql.execute("admin", assign, {"id": cid}) for cid in ids],
    )
    assert {code for b in bodies for code in error_codes(b)} <= {"CONFLICT", "INVALID_STATE"}
    async with services.db.reader() as session:
        counts = dict(
            (
                await session.execute(
                    select(Ownership.customer_id, func.count())
                    .where(Ownership.valid_to.is_(None))
                    .group_by(Ownership.customer_id)
                )
            ).all()
        )
    assert counts == dict.fromkeys(ids, 1)
