"""The account hierarchy: groups of customers (a top-level account and its decision units).

Each customer keeps its parent, its group's top-level account (``root_id``, itself for a
top-level account), its depth and a materialised path of ids from the root (``root/…/self/``).
Moving a unit rewrites its subtree's paths in one UPDATE inside the move's transaction, so a
subtree, an ancestor chain or a roll-up is one statement whatever the size of the group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.domain import Activity, ActivityKind, Customer, Ownership, TeamMember
from core.errors import BadUserInput, FieldError
from core.services.pagination import SortKey

# At most this many levels, the top-level account included (a group, its divisions, their
# plants or branches, ...). Deep enough for real groups, shallow enough for every walk.
MAX_DEPTH = 8
# ``orderValue`` of a roll-up sums the orders of the last year.
ORDER_WINDOW = timedelta(days=365)
# ``Customer.children`` lists an account's direct units by name.
UNIT_ORDER = SortKey(Customer.name, Customer.id)


def top_level(customer: Customer) -> None:
    """Make ``customer`` (new, or already moved) a top-level account of its own group."""
    customer.parent_id = None
    customer.root_id = customer.id
    customer.path = customer.id + "/"
    customer.depth = 0


def within(path: Any, node_path: Any) -> ColumnElement[bool]:
    """``path`` is ``node_path`` or below it (an exact prefix test: ids may hold ``_``)."""
    return func.substr(path, 1, func.length(node_path)) == node_path


def ancestor_ids(path: str) -> list[str]:
    """The ids above the customer at ``path``, from its top-level account down to its
    parent."""
    return path.rstrip("/").split("/")[:-1]


def children_of(customer_id: str) -> ColumnElement[bool]:
    """For ``Customer`` rows: the direct units of ``customer_id``."""
    return Customer.parent_id == customer_id


def has_children() -> ColumnElement[bool]:
    """For ``Customer`` rows: accounts with at least one unit."""
    child = aliased(Customer)
    return exists().where(child.parent_id == Customer.id).correlate(Customer)


# Both are uncorrelated IN subqueries: evaluated once per statement, not once per row, so a
# roll-up over a large group under a narrow scope stays a scan.
def directed_by(members: frozenset[str]) -> ColumnElement[bool]:
    """For ``Customer`` rows: accounts of groups whose group director is one of ``members``."""
    root = aliased(Customer)
    return Customer.root_id.in_(select(root.id).where(root.group_director_id.in_(members)))


def on_team(members: frozenset[str]) -> ColumnElement[bool]:
    """For ``Customer`` rows: accounts on whose team one of ``members`` is."""
    return Customer.id.in_(select(TeamMember.customer_id).where(TeamMember.user_id.in_(members)))


async def place(
    session: AsyncSession,
    customer: Customer,
    parent_id: str | None,
    visible: ColumnElement[bool] | None,
) -> None:
    """Put ``customer`` (flushed) under ``parent_id`` (None: make it top-level), its units
    moving along. ``visible`` limits the parents the writer may name (None: any).

    Refused with BAD_USER_INPUT on ``parentId``: an unknown or invisible parent, a cycle (the
    parent is the customer or one of its units), a tree deeper than ``MAX_DEPTH``, or a group
    with a group director becoming a unit.
    """
    old_path, old_depth = customer.path, customer.depth
    if parent_id is None:
        top_level(customer)
    else:
        stmt = select(Customer.id, Customer.path, Customer.depth, Customer.root_id).where(
            Customer.id == parent_id
        )
        if visible is not None:
            stmt = stmt.outerjoin(
                Ownership,
                and_(Ownership.customer_id == Customer.id, Ownership.valid_to.is_(None)),
            ).where(visible)
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=Customer)  # two crossing moves queue, never cross
        parent = (await session.execute(stmt)).one_or_none()
        if parent is None:
            raise BadUserInput([FieldError("parentId", "no customer you can see has this id")])
        if old_path and parent.path.startswith(old_path):
            raise BadUserInput(
                [
                    FieldError(
                        "parentId", "would make a cycle: it is this customer or one of its units"
                    )
                ]
            )
        if customer.group_director_id is not None:
            raise BadUserInput(
                [
                    FieldError(
                        "parentId",
                        "a group with a group director cannot become a unit; "
                        "clear the director first",
                    )
                ]
            )
        height = 0
        if old_path:
            deepest = await session.scalar(
                select(func.max(Customer.depth)).where(
                    Customer.root_id == customer.root_id, within(Customer.path, old_path)
                )
            )
            height = (deepest or old_depth) - old_depth
        if parent.depth + 1 + height >= MAX_DEPTH:
            raise BadUserInput(
                [FieldError("parentId", f"would make the hierarchy deeper than {MAX_DEPTH} levels")]
            )
        customer.parent_id = parent.id
        customer.root_id = parent.root_id
        customer.path = parent.path + customer.id + "/"
        customer.depth = parent.depth + 1
    if old_path and old_path != customer.path:
        await session.execute(
            update(Customer)
            .where(
                within(Customer.path, old_path),
                Customer.id != customer.id,
            )
            .values(
                path=literal(customer.path) + func.substr(Customer.path, len(old_path) + 1),
                root_id=customer.root_id,
                depth=Customer.depth + (customer.depth - old_depth),
            )
            .execution_options(synchronize_session=False)
        )


async def subtree_ids(session: AsyncSession, customer: Customer) -> list[str]:
    """``customer`` and every unit below it (one statement)."""
    return list(
        await session.scalars(
            select(Customer.id).where(
                Customer.root_id == customer.root_id, within(Customer.path, customer.path)
            )
        )
    )


@dataclass
class Totals:
    """A roll-up over an account and its units, counting only the units a viewer sees."""

    units: int = 0
    annual_revenue: Decimal | None = None
    order_value: Decimal = Decimal(0)
    owners: Counter[str] = field(default_factory=Counter)


def _members(node_ids: Sequence[str], visible: ColumnElement[bool] | None) -> tuple[Any, Any]:
    """``(node id, member)`` pairs: each node with every account of its subtree (itself
    included) that ``visible`` admits, as a select over ``Customer`` (the members) joined to
    their active ownership, so that the one scope clause applies to the members."""
    node = aliased(Customer)
    stmt = (
        select(node.id.label("node_id"))
        .join(
            Customer,
            and_(
                Customer.root_id == node.root_id,
                # a top-level node's subtree is its whole group: no path test per row
                or_(node.parent_id.is_(None), within(Customer.path, node.path)),
            ),
        )
        .outerjoin(
            Ownership, and_(Ownership.customer_id == Customer.id, Ownership.valid_to.is_(None))
        )
        .where(node.id.in_(node_ids))
    )
    return (stmt if visible is None else stmt.where(visible)), node


async def totals(
    session: AsyncSession,
    node_ids: Sequence[str],
    visible: ColumnElement[bool] | None,
    now: datetime,
) -> dict[str, Totals]:
    """Each node's roll-up (three statements for any number of nodes and units): its units
    (below it), and the revenue, last year's orders and owners of it and its units."""
    found = {i: Totals() for i in node_ids}
    members, node = _members(node_ids, visible)
    counts = members.add_columns(
        func.count(case((Customer.id != node.id, 1))), func.sum(Customer.annual_revenue)
    ).group_by(node.id)
    for node_id, n, revenue in await session.execute(counts):
        found[node_id].units = int(n)
        found[node_id].annual_revenue = revenue
    owners = members.add_columns(Ownership.owner_id, func.count()).where(
        Ownership.owner_id.is_not(None)
    )
    owners = owners.group_by(node.id, Ownership.owner_id)
    for node_id, owner_id, n in await session.execute(owners):
        found[node_id].owners[owner_id] = int(n)
    orders = (
        members.join(
            Activity,
            and_(
                Activity.customer_id == Customer.id,
                Activity.kind == ActivityKind.ORDER,
                Activity.at >= now - ORDER_WINDOW,
            ),
        )
        .add_columns(func.sum(Activity.amount))
        .group_by(node.id)
    )
    for node_id, amount in await session.execute(orders):
        found[node_id].order_value = amount or Decimal(0)
    return found


async def member_customers(
    session: AsyncSession, node_ids: Sequence[str], visible: ColumnElement[bool] | None
) -> dict[str, list[Customer]]:
    """Each node's visible accounts (itself included), for roll-ups computed per account
    (health); one statement."""
    members, _ = _members(node_ids, visible)
    stmt = members.add_columns(Customer)
    found: dict[str, list[Customer]] = {i: [] for i in node_ids}
    for node_id, customer in await session.execute(stmt):
        found[node_id].append(customer)
    return found
