"""Customer use cases: create, update (optimistic), read and list with keyset pagination."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    CompoundSelect,
    Select,
    and_,
    false,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager
from sqlalchemy.sql.util import find_tables

from core.authz.defaults import Scope
from core.clock import Clock
from core.db import Database, one_of
from core.domain import (
    Customer,
    CustomerKind,
    Handover,
    LifecycleStage,
    Ownership,
    ValueTier,
)
from core.errors import Conflict, Forbidden, NotFound
from core.ids import new_id
from core.insight import materialised
from core.plugins import Plugin
from core.services import hierarchy, parties, special_needs
from core.services.audit import Actor, AuditWriter, diff
from core.services.ownership import open_ownership
from core.services.profile import (
    RULE_DIMENSIONS,
    USER_REFERENCES,
    check_users_active,
    field_name,
    snapshot,
    stored,
    validate_profile,
)


@dataclass(frozen=True)
class CustomerFilter:
    """The ``customers`` filter; every part optional and combined with AND."""

    owner_id: str | None = None
    territory: str | None = None
    industry: str | None = None
    value_tiers: tuple[ValueTier, ...] = ()
    lifecycle_stages: tuple[LifecycleStage, ...] = ()
    unassigned: bool | None = None
    search: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    has_children: bool | None = None


# A customer row's join to its active ownership, which the scope's branches read.
ACTIVE_OWNERSHIP = and_(Ownership.customer_id == Customer.id, Ownership.valid_to.is_(None))


@dataclass(frozen=True)
class CustomerScope:
    """Which customers a viewer reaches: all, or those of ``members`` (the viewer, plus the
    viewer's reports for TEAM). A member's customers are those they own or back up, and
    unowned ones they first contacted.

    ``viewer`` widens what the viewer sees through the handovers they take part in
    (``core.services.parties``): every such handover, and, for a ``reading`` scope only, the
    customers they are receiving. A ``reading`` scope also reaches every account of a group
    whose group director is a member, and the accounts on whose team a member is
    (``core.services.hierarchy``). Writes use the scope without ``reading``.
    """

    level: Scope
    members: frozenset[str] = frozenset()
    viewer: str | None = None
    reading: bool = False
    # Written scope first (``clause``): for pages of a scope narrow against the table.
    first: bool = False

    @classmethod
    def everything(cls) -> CustomerScope:
        return cls(Scope.ALL)

    def for_reading(self) -> CustomerScope:
        """This scope plus the customers the viewer is receiving, for reads."""
        return replace(self, reading=True)

    def scope_first(self) -> CustomerScope:
        """The same scope, its ``clause`` written scope first (see there)."""
        return replace(self, first=True)

    def branches(self) -> list[ColumnElement[bool]]:
        """Conditions on a customer row outer-joined to its active ownership
        (``ACTIVE_OWNERSHIP``); the row is in scope when any holds. Each is answered by an
        index of its own (owner, backup, first contact, group director, team, handover)."""
        branches: list[ColumnElement[bool]] = []
        if self.level != Scope.NONE and self.members:
            branches += [
                one_of(Ownership.owner_id, self.members),
                one_of(Customer.backup_owner_id, self.members),
                and_(Ownership.id.is_(None), one_of(Customer.first_contact_id, self.members)),
            ]
        if self.reading:
            branches += [hierarchy.directed_by(self.members), hierarchy.on_team(self.members)]
            if self.viewer is not None:
                branches.append(parties.receiving(self.viewer))
        return branches

    def ids(self) -> CompoundSelect:
        """The ids of the customers in scope, one SELECT per branch (none for ALL), united."""
        rows = select(Customer.id).outerjoin(Ownership, ACTIVE_OWNERSHIP).correlate(None)
        # A branch on the active ownership alone takes its ids there, rather than join back to
        # every customer it names.
        owned = select(Ownership.customer_id).where(Ownership.valid_to.is_(None)).correlate(None)
        return union(
            *(
                (rows if Customer.__table__ in find_tables(b, check_columns=True) else owned).where(
                    b
                )
                for b in self.branches() or [false()]
            )
        )

    def clause(self) -> ColumnElement[bool] | None:
        """The SQL condition for customers in scope (None: no restriction), on a customer row
        outer-joined to its active ownership.

        Two forms with the same rows. By default, the OR of the branches, checked on each row
        a list walks in its sort order: best while the scope holds a good share of the
        customers, since a page is found after a few rows. Written ``first``, the customer is
        among ``ids()``: the scope's customers are read by their indexes, then sorted, which
        costs what the scope holds rather than what the walk must skip.
        """
        if self.level == Scope.ALL:
            return None
        if self.first:
            return Customer.id.in_(self.ids())
        branches = self.branches()
        return or_(*branches) if branches else false()

    def _covers(self, customer_id: ColumnExpressionArgument[str]) -> ColumnElement[bool]:
        """The SQL condition that the customer ``customer_id`` names (a column of the
        enclosing statement, e.g. ``Handover.customer_id``) is in this scope, without
        ``reading`` (whose subqueries of handovers would correlate to the enclosing one).

        Correlated, for a statement that reads rows by id: the scope is checked for each row's
        customer alone, through the customers' primary key and the active-ownership index. An
        uncorrelated ``IN`` over the scope's customers would make PostgreSQL hash every
        customer in scope first, a cost that grows with them.
        """
        # The outer column is also the join's key to the active ownership: an EXISTS whose
        # outer reference sits only in its WHERE, PostgreSQL may turn into a hash of every
        # customer in scope (its planner's choice while they are few, but a choice); one that
        # joins on it, it must probe for each row, by the keys.
        active = and_(Ownership.customer_id == customer_id, Ownership.valid_to.is_(None))
        row = select(Customer.id).outerjoin(Ownership, active).where(Customer.id == customer_id)
        if (in_scope := replace(self, reading=False).clause()) is not None:
            row = row.where(in_scope)
        return row.exists()

    def handovers(self, *, by_id: bool = False) -> ColumnElement[bool] | None:
        """The SQL condition for visible handovers (None: no restriction): those of customers
        in the scope (without ``reading``), and those the viewer takes part in.

        ``by_id``: for a statement that reads handovers by id (one, or a page's). Every
        condition is then correlated to each row read (``_covers``, ``parties.party``), so its
        cost does not depend on how many customers or handovers the viewer reaches; lists keep
        the uncorrelated form, whose subqueries run once per statement rather than per row.
        """
        if self.level == Scope.ALL:
            return None
        owned = replace(self, reading=False)
        in_scope: ColumnElement[bool]
        if by_id:
            in_scope = owned._covers(Handover.customer_id)
        else:
            ids = customers_query(CustomerFilter(), owned).with_only_columns(Customer.id)
            in_scope = Handover.customer_id.in_(ids.correlate(None))
        if self.viewer is None:
            return in_scope
        return or_(in_scope, parties.party(self.viewer, by_id=by_id))


EVERYTHING = CustomerScope.everything()


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix(column: Any, value: str, separator: str) -> Any:
    """``value`` itself or anything below it in a hierarchical code."""
    value = value.rstrip(separator)
    return or_(column == value, column.like(_escape_like(value + separator) + "%", escape="\\"))


@lru_cache(maxsize=1024)
def customers_query(f: CustomerFilter, scope: CustomerScope = EVERYTHING) -> Select[Customer]:
    """Customers in ``scope`` matching ``f``, each with its active ownership (one statement).

    Built once per (filter, scope) and shared: statements are immutable (callers derive new
    ones), and building the scope's clauses costs a list request more than running them.
    """
    stmt = (
        select(Customer)
        .outerjoin(Ownership, ACTIVE_OWNERSHIP)
        .options(contains_eager(Customer.active_ownership))
    )
    if (in_scope := scope.clause()) is not None:
        stmt = stmt.where(in_scope)
    if f.owner_id is not None:
        stmt = stmt.where(Ownership.owner_id == f.owner_id)
    if f.unassigned is not None:
        stmt = stmt.where(Ownership.id.is_(None) if f.unassigned else Ownership.id.is_not(None))
    if f.territory:
        stmt = stmt.where(_prefix(Customer.territory, f.territory, "/"))
    if f.industry:
        stmt = stmt.where(_prefix(Customer.industry, f.industry, "."))
    if f.value_tiers:
        stmt = stmt.where(Customer.value_tier.in_(f.value_tiers))
    if f.lifecycle_stages:
        stmt = stmt.where(Customer.lifecycle_stage.in_(f.lifecycle_stages))
    if f.parent_id is not None:
        stmt = stmt.where(hierarchy.children_of(f.parent_id))
    if f.root_id is not None:
        stmt = stmt.where(Customer.root_id == f.root_id)
    if f.has_children is not None:
        units = hierarchy.has_children()
        stmt = stmt.where(units if f.has_children else ~units)
    if f.search:
        pattern = "%" + _escape_like(f.search.lower()) + "%"
        stmt = stmt.where(func.lower(Customer.name).like(pattern, escape="\\"))
    return stmt


async def load_customer(
    session: AsyncSession,
    customer_id: str,
    scope: CustomerScope = EVERYTHING,
    *,
    lock: bool = False,
) -> Customer:
    """The customer with its active ownership; NOT_FOUND if absent or out of scope alike.

    Under a scope for writing, a customer the viewer only reads (one they are receiving
    through a handover) is FORBIDDEN rather than NOT_FOUND: they can see it.
    """
    stmt = customers_query(CustomerFilter(), scope).where(Customer.id == customer_id)
    stmt = stmt.execution_options(populate_existing=True)
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Customer)
    customer = (await session.scalars(stmt)).unique().one_or_none()
    if customer is None:
        if not scope.reading and scope.viewer is not None:
            readable = customers_query(CustomerFilter(), scope.for_reading())
            readable = readable.where(Customer.id == customer_id)
            if await session.scalar(readable.with_only_columns(Customer.id)) is not None:
                raise Forbidden(
                    f"Customer {customer_id!r} is yours to read (you receive it, direct its "
                    "group or are on its team), not to change"
                )
        raise NotFound("Customer", customer_id)
    return customer


def check_version(customer: Customer, expected_version: int) -> None:
    """A stale ``expected_version`` is a CONFLICT naming the current one."""
    if customer.version != expected_version:
        raise Conflict(
            f"Customer {customer.id!r} is at version {customer.version}, "
            f"not {expected_version}; reload and retry",
            currentVersion=customer.version,
        )


# Applies the live assignment rules inside a customer's transaction:
# (session, audit changes to extend, customer, now, actor).
Reevaluate = Callable[
    [AsyncSession, list[dict[str, Any]], Customer, datetime, Actor], Awaitable[None]
]


class CustomerService:
    """Writes to customers, each one transaction with its audit entries."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        reevaluate: Reevaluate,
        plugins: Sequence[Plugin] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.reevaluate = reevaluate
        self.plugins = tuple(plugins)
        # Audit names whose change can change what the assignment rules decide.
        self.rule_fields = {field_name(a) for a in RULE_DIMENSIONS} | {
            special_needs.audit_name(p.name, d.field) for p in self.plugins for d in p.dimensions
        }

    def _snapshot(self, customer: Customer) -> dict[str, Any]:
        return snapshot(customer) | special_needs.flat(self.plugins, customer.special_needs)

    async def create(
        self,
        actor: Actor,
        data: dict[str, Any],
        *,
        needs: special_needs.SpecialNeeds | None = None,
        owner_id: str | None = None,
        reason: str | None = None,
        auto_assign: bool = True,
        parent_id: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Create a customer and, in the same transaction, give it its owner: ``owner_id`` (a
        manual assignment) or else, unless ``auto_assign`` is off, the live rules' choice.
        ``needs`` are plugin special needs (plugin → field → value); ``parent_id`` makes it a
        unit of that account, which must be in the (reading) ``scope``."""
        data = {"kind": CustomerKind.ENTERPRISE, "lifecycle_stage": LifecycleStage.LEAD, **data}
        data.setdefault("first_contact_id", actor.user_id)
        validate_profile(data)
        stored_needs = special_needs.merge(self.plugins, {}, needs or {})
        now = self.clock.now()
        if data.get("first_contact_id") is not None:
            data.setdefault("first_contact_at", now)
        async with self.db.transaction() as session:
            await check_users_active(session, {k: data.get(k) for k in USER_REFERENCES})
            customer = Customer(
                id=new_id("Customer"),
                created_at=now,
                updated_at=now,
                product_lines=[],
                contacts=[],
                special_needs=stored_needs,
            )
            for attr, value in data.items():
                setattr(customer, attr, stored(attr, value))
            hierarchy.top_level(customer)
            session.add(customer)
            await session.flush()
            await materialised.mark(session, [customer.id], now)  # its first insight row
            changes = diff({}, self._snapshot(customer))
            if parent_id is not None:
                await hierarchy.place(session, customer, parent_id, scope.for_reading().clause())
                changes.append({"field": "parent", "before": None, "after": parent_id})
            if owner_id is not None:
                changes.append(
                    await open_ownership(
                        session, customer, owner_id, now=now, actor_id=actor.user_id, reason=reason
                    )
                )
            elif auto_assign:
                await self.reevaluate(session, changes, customer, now, actor)
            AuditWriter(session, actor, now).record(
                "createCustomer", "Customer", customer.id, changes, reason
            )
            return await load_customer(session, customer.id)

    async def assign_owner(
        self,
        actor: Actor,
        customer_id: str,
        owner_id: str,
        *,
        backup_owner_id: str | None = None,
        reason: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Manually assign a customer that has no owner (and optionally its backup)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            before = snapshot(customer)
            if backup_owner_id is not None:
                await check_users_active(session, {"backup_owner_id": backup_owner_id})
                customer.backup_owner_id = backup_owner_id
            owner_change = await open_ownership(
                session, customer, owner_id, now=now, actor_id=actor.user_id, reason=reason
            )
            AuditWriter(session, actor, now).record(
                "assignOwner",
                "Customer",
                customer.id,
                [owner_change, *diff(before, snapshot(customer))],
                reason,
            )
            return await load_customer(session, customer_id)

    async def update(
        self,
        actor: Actor,
        customer_id: str,
        expected_version: int,
        data: dict[str, Any],
        *,
        needs: special_needs.SpecialNeeds | None = None,
        reason: str | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Customer:
        """Apply a partial update (``needs``: plugin special needs, partial per field);
        a stale ``expected_version`` is a CONFLICT."""
        validate_profile(data)
        async with self.db.transaction() as session:
            customer = await load_customer(session, customer_id, scope, lock=True)
            check_version(customer, expected_version)
            await check_users_active(session, {k: data[k] for k in USER_REFERENCES if k in data})
            before = self._snapshot(customer)
            for attr, value in data.items():
                setattr(customer, attr, stored(attr, value))
            if needs:
                customer.special_needs = special_needs.merge(
                    self.plugins, customer.special_needs, needs
                )
            changes = diff(before, self._snapshot(customer))
            if changes:
                now = customer.updated_at = self.clock.now()
                await session.flush()
                reassigned = bool(self.rule_fields & {c["field"] for c in changes})
                if reassigned:
                    await self.reevaluate(session, changes, customer, now, actor)
                AuditWriter(session, actor, now).record(
                    "updateCustomer", "Customer", customer.id, changes, reason
                )
                if reassigned:  # the rules may have changed its ownership: read it again
                    return await load_customer(session, customer.id)
            # Otherwise the flush left it current (the new version included): nothing to read.
            return customer
