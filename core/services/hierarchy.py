"""The account hierarchy: groups of customers (a top-level account and its decision units).

Each customer keeps its parent, its group's top-level account (``root_id``, itself for a
top-level account), its depth and a materialised path of ids from the root (``root/…/self/``).
Moving a unit rewrites its subtree's paths in one UPDATE inside the move's transaction, so a
subtree, an ancestor chain or a roll-up is one statement whatever the size of the group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    case,
    exists,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.db import one_of
from core.domain import (
    Activity,
    ActivityKind,
    Customer,
    CustomerHealthRow,
    Ownership,
    TeamMember,
)
from core.errors import BadUserInput, FieldError
from core.insight.kpis import readable_warnings
from core.services.pagination import SortKey

# The batch health API (``TieringService.health``): the customers, and their ids as a query
# (None: by the customers' ids), to one assessment each.
Assess = Callable[[AsyncSession, Sequence[Customer], Select[Any] | None], Awaitable[list[Any]]]

# At most this many levels, the top-level account included (a group, its divisions, their
# plants or branches, ...). Deep enough for real groups, shallow enough for every walk.
MAX_DEPTH = 8
# ``orderValue`` of a roll-up sums the orders of the last year.
ORDER_WINDOW = timedelta(days=365)
# An account a roll-up is asked of: its id and its materialised path.
Node = tuple[str, str]
# ``Customer.children`` lists an account's direct units by name.
UNIT_ORDER = SortKey(Customer.name, Customer.id)


def top_level(customer: Customer) -> None:
    """Make ``customer`` (new, or already moved) a top-level account of its own group."""
    customer.parent_id = None
    customer.root_id = customer.id
    customer.path = customer.id + "/"
    customer.depth = 0


def within(path: Any, node_path: Any) -> ColumnElement[bool]:
    """``path`` is ``node_path`` or below it: the range ``node/ <= path < node0`` (``0``
    follows ``/``), which the path index answers, compared byte by byte (the column's
    collation is "C" on PostgreSQL, SQLite's default is binary). ``node_path`` is a string or
    a column."""
    if isinstance(node_path, str):
        upper: Any = node_path[:-1] + "0"
    else:
        upper = func.substr(node_path, 1, func.length(node_path) - 1, type_=String) + "0"
    return and_(path >= node_path, path < upper)


def ancestor_ids(path: str) -> list[str]:
    """The ids above the customer at ``path``, from its top-level account down to its
    parent."""
    return path.rstrip("/").split("/")[:-1]


def children_of(customer_id: str) -> ColumnElement[bool]:
    """For ``Customer`` rows: the direct units of ``customer_id``."""
    return Customer.parent_id == customer_id


# Built once: an ORM alias of Customer proxies every column, which costs more per request
# than the rest of a list's statement.
_CHILD = aliased(Customer, name="child_account")
_ROOT = aliased(Customer, name="group_root")


def has_children() -> ColumnElement[bool]:
    """For ``Customer`` rows: accounts with at least one unit."""
    return exists().where(_CHILD.parent_id == Customer.id).correlate(Customer)


# Both are uncorrelated IN subqueries: evaluated once per statement, not once per row, so a
# roll-up over a large group under a narrow scope stays a scan.
def directed_by(members: frozenset[str]) -> ColumnElement[bool]:
    """For ``Customer`` rows: accounts of groups whose group director is one of ``members``."""
    return Customer.root_id.in_(select(_ROOT.id).where(one_of(_ROOT.group_director_id, members)))


def on_team(members: frozenset[str]) -> ColumnElement[bool]:
    """For ``Customer`` rows: accounts on whose team one of ``members`` is."""
    return Customer.id.in_(
        select(TeamMember.customer_id).where(one_of(TeamMember.user_id, members))
    )


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


def _members(
    nodes: Sequence[Node], visible: ColumnElement[bool] | None, *, owned: bool = True
) -> Select[Any] | CompoundSelect:
    """``(node_id, id, annual_revenue, owner_id)``: each node with every account of its
    subtree (itself included) that ``visible`` admits, and that account's active owner
    (without ``owned``: only ``(node_id, id)``, every account, no owner joined).

    One branch for the top-level nodes, whose subtree is their group (``root_id``, read in
    table order), and one per other node, whose subtree is a range of the path index given as
    constants, so that the planner sees how large each subtree is.
    """
    active = and_(Ownership.customer_id == Customer.id, Ownership.valid_to.is_(None))
    columns: tuple[Any, ...] = (Customer.id,)
    if owned:
        columns += (Customer.annual_revenue, Ownership.owner_id)
    paths = dict(nodes)
    tops = [i for i, path in paths.items() if path == i + "/"]
    branches = [
        select(literal(i, String).label("node_id"), *columns).where(within(Customer.path, path))
        for i, path in paths.items()
        if path != i + "/"
    ]
    if tops or not branches:
        group = select(Customer.root_id.label("node_id"), *columns)
        branches.append(group.where(Customer.root_id.in_(tops)))
    if owned:
        branches = [b.outerjoin(Ownership, active) for b in branches]
    if visible is not None:
        branches = [b.where(visible) for b in branches]
    return union_all(*branches) if len(branches) > 1 else branches[0]


async def totals(
    session: AsyncSession,
    nodes: Sequence[Node],
    visible: ColumnElement[bool] | None,
    now: datetime,
) -> dict[str, Totals]:
    """Each node's roll-up, in one aggregate statement for any number of nodes and units: its
    units (below it), and the revenue, last year's orders and owners of it and its units.

    The statement groups the members by node and owner; the figures of a node are the sums
    of its few owner rows. Orders are summed per member first, so that a customer with many
    orders still counts once in the other figures.
    """
    found = {i: Totals() for i, _ in nodes}
    members = _members(nodes, visible).cte("members")
    recent = and_(Activity.kind == ActivityKind.ORDER, Activity.at >= now - ORDER_WINDOW)
    figures = (
        members.c.node_id,
        members.c.owner_id,
        func.count(),
        func.count(case((members.c.id != members.c.node_id, 1))),
        func.sum(members.c.annual_revenue),
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # PostgreSQL hashes the subtrees' orders once and joins them.
        subtrees = _members(nodes, None, owned=False).subquery()
        orders = (
            select(Activity.customer_id, func.sum(Activity.amount).label("amount"))
            .where(recent, Activity.customer_id.in_(select(subtrees.c.id)))
            .group_by(Activity.customer_id)
            .subquery()
        )
        stmt = select(*figures, func.sum(orders.c.amount)).outerjoin(
            orders, orders.c.customer_id == members.c.id
        )
    else:
        # SQLite sums each member's orders from the (customer, at) index as it goes; a joined
        # derived table would be materialised with an automatic index first.
        amount = (
            select(func.sum(Activity.amount))
            .where(recent, Activity.customer_id == members.c.id)
            .scalar_subquery()
        )
        stmt = select(*figures, func.sum(amount))
    stmt = stmt.group_by(members.c.node_id, members.c.owner_id)
    for node_id, owner_id, accounts, units, revenue, amount in await session.execute(stmt):
        totals = found[node_id]
        totals.units += int(units)
        if revenue is not None:
            totals.annual_revenue = (totals.annual_revenue or Decimal(0)) + revenue
        totals.order_value += amount or Decimal(0)
        if owner_id is not None:
            totals.owners[owner_id] = int(accounts)
    return found


# Up to this many accounts to assess live are passed by id; more, as a query of their ids.
LIVE_IDS_AS_LIST = 1000
# Health bands from best to worst.
BANDS = ("GREEN", "YELLOW", "ORANGE", "RED")


@dataclass(frozen=True)
class MemberHealth:
    """The worst health band of an account's visible accounts (None: none) and their open
    warnings, for roll-ups."""

    level: str | None = None
    warnings: int = 0

    def __add__(self, other: MemberHealth) -> MemberHealth:
        levels = [x for x in (self.level, other.level) if x is not None]
        worst = max(levels, key=BANDS.index) if levels else None
        return MemberHealth(worst, self.warnings + other.warnings)


async def member_health(
    session: AsyncSession,
    nodes: Sequence[Node],
    visible: ColumnElement[bool] | None,
    assess: Assess,
    hidden: Sequence[str] = (),
) -> dict[str, MemberHealth]:
    """The worst band and open warnings of each node's visible accounts (itself included):
    as stored by the insight refresh (``customer_health``, what the portfolio counts too),
    added up in one aggregate statement (which also counts the accounts with none), and
    assessed now by ``assess`` (the batch health API,
    ``TieringService.health``) for the accounts with no stored health yet. The batch reads
    their activities through a query of their ids, not a list (a large group would pass the
    databases' limit on bound parameters). Warnings raised by the ``hidden`` signals (the
    indicators the viewer may not read) are not counted."""
    members = _members(nodes, visible).cte("members")
    stored = CustomerHealthRow
    rank = case(*((stored.level == band, i) for i, band in enumerate(BANDS)), else_=None)
    unstored_count = func.count(members.c.id) - func.count(stored.customer_id)
    warnings: Any = stored.warnings
    stmt = select(members.c.node_id).outerjoin(stored, stored.customer_id == members.c.id)
    if hidden:
        readable = readable_warnings(hidden).subquery("readable")
        shown = (
            select(readable.c.customer_id, func.count().label("n"))
            .where(readable.c.customer_id.in_(select(members.c.id)))
            .group_by(readable.c.customer_id)
            .subquery("shown")
        )
        warnings = shown.c.n
        stmt = stmt.outerjoin(shown, shown.c.customer_id == members.c.id)
    totals = await session.execute(
        stmt.add_columns(
            func.max(rank), func.coalesce(func.sum(warnings), 0), unstored_count
        ).group_by(members.c.node_id)
    )
    found = {i: MemberHealth() for i, _ in nodes}
    any_unstored = False
    for node_id, worst, warnings, unstored_here in totals:
        found[node_id] += MemberHealth(None if worst is None else BANDS[worst], int(warnings))
        any_unstored = any_unstored or unstored_here > 0
    unstored = (
        select(members.c.node_id, members.c.id)
        .outerjoin(stored, stored.customer_id == members.c.id)
        .where(stored.customer_id.is_(None))
    )
    # The members without stored health are read only when the aggregate counted some.
    missing = (await session.execute(unstored)).all() if any_unstored else []
    if missing:
        listed = sorted({c for _, c in missing})
        # Few: by id. Many: as a query of their ids (bound parameters are limited).
        among = None
        if len(listed) > LIVE_IDS_AS_LIST:
            among = unstored.with_only_columns(members.c.id).distinct()
        chosen = Customer.id.in_(listed) if among is None else Customer.id.in_(among)
        customers = list((await session.scalars(select(Customer).where(chosen))).unique())
        assessed = await assess(session, customers, among)
        live = {
            c.id: MemberHealth(h.level, sum(w.signal not in hidden for w in h.warnings))
            for c, h in zip(customers, assessed, strict=True)
        }
        for node_id, customer_id in missing:
            found[node_id] += live[customer_id]
    return found
