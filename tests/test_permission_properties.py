"""Property: whatever the policy and however the query is shaped, no value of a field the viewer
may not read appears anywhere in the response, and every readable one appears intact."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

import casbin
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.authz.model import casbin_model
from core.authz.view import PermissionView
from core.services import Actor, Services
from tests.conftest import GraphQLClient

# Distinctive values: if one shows up anywhere in a response, it leaked.
SECRETS: dict[str, Any] = {
    "name": "Nm-7781",
    "territory": "ZQ/Hidden7781",
    "industry": "hidden7781",
    "annualRevenue": "987654.32",
    "profitContribution": "123457.89",
    "invoiceRequirements": "inv-7781",
    "contacts": "Ct-7781",
}
SELECTION = {f: f for f in SECRETS} | {"contacts": "contacts { name }"}
_roles = itertools.count()


@pytest.fixture
async def secret_customer(services: Services, admin: str) -> str:
    customer = await services.customers.create(
        Actor("admin"),
        {
            "name": SECRETS["name"],
            "territory": SECRETS["territory"],
            "industry": SECRETS["industry"],
            "annual_revenue": Decimal(SECRETS["annualRevenue"]),
            "profit_contribution": Decimal(SECRETS["profitContribution"]),
            "invoice_requirements": SECRETS["invoiceRequirements"],
            "contacts": [{"name": SECRETS["contacts"]}],
        },
        owner_id="am.chen",
    )
    return customer.id


def shape(kind: str, fields: list[str], aliased: list[bool]) -> str:
    body = " ".join(
        f"a{i}: {SELECTION[f]}" if alias else SELECTION[f]
        for i, (f, alias) in enumerate(zip(fields, aliased, strict=True))
    )
    return {
        "one": f"query($id: ID!) {{ customer(id: $id) {{ id {body} }} }}",
        "list": f"{{ customers(first: 5) {{ edges {{ node {{ id {body} }} }} }} }}",
        "node": f"query($id: ID!) {{ node(id: $id) {{ id ... on Customer {{ {body} }} }} }}",
        "fragment": f"query($id: ID!) {{ customer(id: $id) {{ ...F }} }} "
        f"fragment F on Customer {{ id {body} }}",
        "audit": f"query($id: ID!) {{ customer(id: $id) {{ id {body} }} auditLog(filter: "
        f"{{entityId: $id}}) {{ edges {{ node {{ changes {{ field before after }} }} }} }} }}",
    }[kind]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    readable=st.sets(st.sampled_from(sorted(SECRETS))),
    scope=st.sampled_from(["OWN", "ALL"]),
    selected=st.lists(st.sampled_from(sorted(SECRETS)), min_size=1, max_size=5, unique=True),
    aliases=st.lists(st.booleans(), min_size=5, max_size=5),
    kind=st.sampled_from(["one", "list", "node", "fragment", "audit"]),
)
async def test_no_denied_value_ever_appears(
    gql: GraphQLClient,
    services: Services,
    secret_customer: str,
    readable: set[str],
    scope: str,
    selected: list[str],
    aliases: list[bool],
    kind: str,
) -> None:
    n = next(_roles)
    role, user = f"prop_role_{n}", f"prop.user{n}"
    grants = [(f"Customer.{f}", "read") for f in sorted(readable)] + [
        ("Customer", f"scope:{scope}"),
        ("Query.customer", "call"),
        ("Query.customers", "call"),
        ("Query.node", "call"),
        ("Query.auditLog", "call"),
        ("AuditEntry.*", "read"),
    ]
    for obj, action in grants:
        await services.policies.grant(Actor.system(), role, obj, action)
    await services.users.create(Actor.system(), user, user, roles=[role])

    body = await gql.execute(
        user, shape(kind, selected, aliases[: len(selected)]), {"id": secret_customer}
    )
    text = json.dumps(body)
    for field in set(SECRETS) - readable:
        assert SECRETS[field] not in text, f"{field} leaked through {kind}"
    visible = scope == "ALL"
    denied_errors = {
        e["extensions"]["object"]
        for e in body.get("errors", [])
        if e["extensions"]["code"] == "FORBIDDEN_FIELD"
    }
    if visible:
        assert denied_errors == {f"Customer.{f}" for f in selected if f not in readable}
        for field in set(selected) & readable:
            assert SECRETS[field] in text, f"{field} missing"
    else:
        assert denied_errors == set()  # out of scope: nothing to deny, nothing shown


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "*",
                    "Customer.*",
                    "Customer.name",
                    "Customer.annualRevenue",
                    "User.*",
                    "Query.customers",
                    "Cust*",
                ]
            ),
            st.sampled_from(["read", "write", "call"]),
        ),
        max_size=6,
    ),
    obj=st.sampled_from(
        [
            "Customer.name",
            "Customer.annualRevenue",
            "User.name",
            "Query.customers",
            "Mutation.createCustomer",
        ]
    ),
    action=st.sampled_from(["read", "write", "call"]),
)
def test_view_decisions_equal_casbin_enforce(
    lines: list[tuple[str, str]], obj: str, action: str
) -> None:
    """The compiled view answers exactly as Casbin's own enforcer does."""
    enforcer = casbin.Enforcer(casbin_model())
    enforcer.add_grouping_policy("someone", "role")
    for line in lines:
        enforcer.add_policy("role", *line)
    view = PermissionView.compile(["role"], lines)
    assert view.allows(obj, action) == enforcer.enforce("someone", obj, action)
