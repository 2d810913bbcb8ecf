"""Property: for any handover between any two account managers, at any state, and any viewer, the
handover is visible exactly to those whose row scope reaches its customer and to its parties,
and the customer is readable exactly by those whose scope reaches it and by the incoming owner
from approval until completion or cancellation (CONTRACT.md, "Row scope")."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import FixedClock
from core.services import Actor, Services
from tests.conftest import GraphQLClient
from tests.test_handover_workflow import ADMIN, PATH, STATES

# The org chart, written out: who reports to whom (TEAM scope is transitive).
MANAGER = {
    "am.chen": "tm.li",
    "am.wu": "tm.li",
    "tm.deep": "tm.li",
    "am.deep": "tm.deep",
    "am.zhou": "tm.zhao",
    "am.lin": "tm.zhao",
}
OWNERS = sorted(u for u in MANAGER if u.startswith("am."))
VIEWERS = [*OWNERS, "tm.li", "tm.deep", "tm.zhao", "sd.wang"]
RECEIVING = {"HANDBOOK_PENDING", "HANDBOOK_SUBMITTED", "HANDBOOK_APPROVED", "CUSTOMER_NOTIFIED"}
_names = itertools.count()


def reaches(viewer: str, owner: str) -> bool:
    """Whether the viewer's row scope reaches a customer ``owner`` owns."""
    if viewer == "sd.wang":
        return True
    chain: str | None = owner
    while chain is not None:  # OWN: the owner; TEAM: also everyone up the chain
        if chain == viewer:
            return True
        chain = MANAGER.get(chain)
    return False


@pytest.fixture
async def org(services: Services, admin: str) -> None:
    system = Actor.system()
    await services.users.create(system, "sd.wang", "Wang", roles=["sales_director"])
    await services.users.create(system, "tm.zhao", "Zhao", roles=["team_manager"])
    await services.users.create(
        system, "tm.deep", "Deep", roles=["team_manager"], manager_id="tm.li"
    )
    for uid in ("am.deep", "am.zhou", "am.lin"):
        await services.users.create(
            system, uid, uid, roles=["account_manager"], manager_id=MANAGER[uid]
        )


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pair=st.permutations(OWNERS).map(lambda p: (p[0], p[1])),
    state=st.sampled_from(STATES),
    viewer=st.sampled_from(VIEWERS),
)
async def test_visibility_is_scope_or_party(
    gql: GraphQLClient,
    services: Services,
    org: None,
    clock: FixedClock,
    pair: tuple[str, str],
    state: str,
    viewer: str,
) -> None:
    outgoing, incoming = pair
    name = f"Prop-{next(_names):04d}-x"  # no name contains another
    customer = await services.customers.create(
        ADMIN, {"name": name, "value_tier": "MEDIUM"}, owner_id=outgoing
    )
    request = await services.reassignment.request(
        Actor(outgoing), customer.id, incoming, "NEEDS_CHANGE", None
    )
    _, h = await services.reassignment.review(Actor(MANAGER[outgoing]), request.id, True, None)
    assert h is not None
    if state == "CANCELLED":
        h = await services.handover.cancel(ADMIN, h.id, h.version, "stop")
    else:
        for advance in PATH[: STATES.index(state)]:
            h = await advance(services, h, clock)

    owner = incoming if state in {"COMPLETED", "FEEDBACK_RECEIVED", "CLOSED"} else outgoing
    party = viewer in {outgoing, incoming, MANAGER[outgoing]}
    sees_handover = reaches(viewer, owner) or party
    reads_customer = reaches(viewer, owner) or (viewer == incoming and state in RECEIVING)

    body = await gql.execute(viewer, "query($id: ID!) { node(id: $id) { id } }", {"id": h.id})
    assert (body["data"]["node"] is not None) == sees_handover, (viewer, pair, state, body)
    listed = await gql.data(
        viewer,
        "query($s: String) { customers(filter: {search: $s}) { totalCount } }",
        {"s": name},
    )
    assert listed["customers"]["totalCount"] == int(reads_customer), (viewer, pair, state)
