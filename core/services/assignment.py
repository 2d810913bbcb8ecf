"""Assignment use cases over the one evaluation function (``core.services.rules``).

Facts are read in bulk: one query for the customers, one for the rules, two for the
workforce, whatever the number of customers. Writes are one transaction with their audit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import String, and_, func, insert, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.clock import Clock
from core.db import Database
from core.domain import (
    AssignedBy,
    AssignmentRule,
    Customer,
    LifecycleStage,
    Ownership,
    ReassignmentRequest,
    ReassignmentTrigger,
    RequestStatus,
    Strategy,
    User,
    ValueTier,
)
from core.errors import BadUserInput, Conflict, FieldError, NotFound
from core.ids import new_id
from core.plugins import Dimension
from core.services import validation as v
from core.services.audit import (
    Actor,
    AuditWriter,
    audit_value,
    diff,
    to_camel,
)
from core.services.customers import EVERYTHING, CustomerScope
from core.services.rules import (
    NO_EXTRA,
    NO_GROUP,
    Conditions,
    CustomerFacts,
    Decision,
    Evaluator,
    Group,
    Rule,
    RuleWarning,
    Workforce,
    evaluate,
    lint,
    uses_group,
)

CONDITION_LISTS = ("territories", "industries", "valueTiers", "productLines", "lifecycleStages")

NO_DIMENSIONS: Mapping[str, Dimension] = MappingProxyType({})


def conditions_of(c: Mapping[str, Any]) -> Conditions:
    """The engine's view of conditions as a rule stores them (GraphQL names)."""
    return Conditions(
        territories=tuple(c.get("territories", ())),
        industries=tuple(c.get("industries", ())),
        value_tiers=tuple(c.get("valueTiers", ())),
        product_lines=tuple(c.get("productLines", ())),
        lifecycle_stages=tuple(c.get("lifecycleStages", ())),
        extra={k: tuple(vs) for k, vs in (c.get("extra") or {}).items()},
        root_territories=tuple(c.get("rootTerritories", ())),
        root_industries=tuple(c.get("rootIndustries", ())),
        root_value_tiers=tuple(c.get("rootValueTiers", ())),
    )


def to_rule(m: AssignmentRule) -> Rule:
    """The engine's view of a stored rule."""
    return Rule(
        id=m.id,
        version=m.version,
        name=m.name,
        priority=m.priority,
        conditions=conditions_of(m.conditions),
        strategy=m.strategy,
        owner_id=m.owner_id,
        pool=tuple(m.pool),
    )


async def load_rules(session: AsyncSession, *, lock: bool = False) -> list[AssignmentRule]:
    """Enabled rules by ascending priority; ``lock`` serialises round-robin cursors."""
    stmt = select(AssignmentRule).where(AssignmentRule.enabled).order_by(AssignmentRule.priority)
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return list(await session.scalars(stmt))


async def load_workforce(session: AsyncSession, rules: Sequence[AssignmentRule]) -> Workforce:
    """Active users, their capacity and current number of customers, and rule cursors."""
    users = (await session.execute(select(User.id, User.capacity).where(User.active))).all()
    loads = await session.execute(
        select(Ownership.owner_id, func.count())
        .where(Ownership.valid_to.is_(None))
        .group_by(Ownership.owner_id)
    )
    return Workforce(
        active={u.id for u in users},
        capacity={u.id: u.capacity for u in users},
        load={owner: int(n) for owner, n in loads},
        cursors={r.id: r.cursor for r in rules},
    )


def _facts_and_owner(
    row: Sequence[Any], dimensions: Mapping[str, Dimension], grouped: bool
) -> tuple[CustomerFacts, str | None]:
    # Positional unpacking: by-name access on each of 100k rows costs more than the scan.
    cid, territory, industry, value_tier, product_lines, stage, contact, owner, *rest = row
    group = NO_GROUP
    if grouped:
        group = Group(*rest[:6])
        rest = rest[6:]
    extra = NO_EXTRA
    if dimensions and rest and rest[0]:
        read = {name: d.read(rest[0]) for name, d in dimensions.items()}
        extra = {name: value for name, value in read.items() if value is not None}
    facts = CustomerFacts(
        cid,
        territory,
        industry,
        value_tier,
        tuple(product_lines or ()),
        stage,
        contact,
        extra,
        group,
    )
    return facts, owner


# The columns the rules look at, enums read as their stored names (no per-row conversion),
# in the order ``_facts_and_owner`` unpacks them.
FACT_COLUMNS = (
    Customer.id,
    Customer.territory,
    Customer.industry,
    type_coerce(Customer.value_tier, String).label("value_tier"),
    Customer.product_lines,
    type_coerce(Customer.lifecycle_stage, String).label("lifecycle_stage"),
    Customer.first_contact_id,
    Ownership.owner_id,
)


_ROOT = aliased(Customer, name="root_account")
_PARENT_OWNERSHIP = aliased(Ownership, name="parent_ownership")
# The group facts (``rules.Group``), joined only when some rule looks at groups.
GROUP_COLUMNS = (
    _PARENT_OWNERSHIP.owner_id,
    _ROOT.territory,
    _ROOT.industry,
    type_coerce(_ROOT.value_tier, String).label("root_value_tier"),
    Customer.parent_id,
    Customer.depth,
)


async def load_facts(
    session: AsyncSession,
    customer_ids: Sequence[str] | None,
    scope: CustomerScope,
    dimensions: Mapping[str, Dimension] = NO_DIMENSIONS,
    *,
    grouped: bool = True,
) -> list[tuple[CustomerFacts, str | None]]:
    """Each customer's facts and current owner, by id (one query); plugin ``dimensions`` are
    read from the special needs, which are only loaded when some plugin provides one, and
    the group facts only when ``grouped`` (some rule looks at groups)."""
    columns = (*FACT_COLUMNS, *GROUP_COLUMNS) if grouped else FACT_COLUMNS
    if dimensions:
        columns = (*columns, Customer.special_needs)
    stmt = (
        select(*columns)
        .outerjoin(
            Ownership, and_(Ownership.customer_id == Customer.id, Ownership.valid_to.is_(None))
        )
        .order_by(Customer.id)
    )
    if grouped:
        stmt = stmt.outerjoin(
            _PARENT_OWNERSHIP,
            and_(
                _PARENT_OWNERSHIP.customer_id == Customer.parent_id,
                _PARENT_OWNERSHIP.valid_to.is_(None),
            ),
        ).join(_ROOT, _ROOT.id == Customer.root_id)
    if (in_scope := scope.clause()) is not None:
        stmt = stmt.where(in_scope)
    if customer_ids is not None:
        stmt = stmt.where(Customer.id.in_(customer_ids))
    return [_facts_and_owner(row, dimensions, grouped) for row in await session.execute(stmt)]


@dataclass(slots=True)
class Move:
    customer_id: str
    from_owner_id: str | None
    to_owner_id: str
    rule: Rule

    def reason(self, why: str) -> str:
        """``why`` the move is made, with the deciding rule, as ownerships and audit keep it."""
        return f"{why}: rule {self.rule.name!r}"


@dataclass
class Plan:
    """What the rules would change for a set of customers; computing it writes nothing."""

    moves: list[Move] = field(default_factory=list)
    unchanged: int = 0
    unassigned: int = 0
    load_before: dict[str, int] = field(default_factory=dict)
    load_after: dict[str, int] = field(default_factory=dict)


def plan(
    facts: list[tuple[CustomerFacts, str | None]], rules: Sequence[Rule], staff: Workforce
) -> Plan:
    """Decide every customer in the given order, counting each decision in ``staff``.

    A customer's current owner is released just before the customer is decided (its account
    is in play) and taken back when it stays: no rule decides, or it is a valid outcome of the
    deciding rule (see ``Workforce.keeps``).
    """
    result = Plan(load_before=dict(staff.load))
    evaluator = Evaluator(rules)
    # A unit inheriting its parent's owner follows the owner its parent is given in this same
    # batch (assigned, or requested), not the one stored: parents are decided first.
    inherits = any(r.strategy is Strategy.INHERIT_PARENT_OWNER for r in rules)
    decided: dict[str, str | None] = {}
    if inherits:
        facts = sorted(facts, key=lambda fact: fact[0].group.depth)
    for c, current in facts:
        if c.group.parent_id in decided:
            c.group = replace(c.group, parent_owner_id=decided[c.group.parent_id])
        if current is not None:
            staff.release(current)
        decision = evaluator.decide(c, staff, commit=False)
        if current is not None and (decision.rule is None or staff.keeps(decision, current)):
            staff.take(current)
            result.unchanged += 1
        elif decision.owner_id is None or decision.rule is None:
            result.unassigned += 1
        else:
            staff.commit(decision)
            result.moves.append(Move(c.id, current, decision.owner_id, decision.rule))
            current = decision.owner_id
        if inherits:
            decided[c.id] = current
    result.load_after = dict(staff.load)
    return result


@dataclass(frozen=True)
class RunResult:
    """What a run assigned and which requests it opened (or would have, in a dry run)."""

    assigned: list[Move]
    requests: list[tuple[str, Move]]
    at: datetime


def request_snapshot(row: dict[str, Any]) -> dict[str, Any]:
    """A reassignment request's fields keyed by GraphQL name, for audit diffs."""
    return {
        to_camel(k.removesuffix("_id")): audit_value(row[k])
        for k in ("customer_id", "from_owner_id", "to_owner_id", "trigger", "status")
    }


def rule_snapshot(m: AssignmentRule) -> dict[str, Any]:
    """A rule's fields keyed by GraphQL name, for audit diffs."""
    return {
        "name": m.name,
        "priority": m.priority,
        "enabled": m.enabled,
        "conditions": m.conditions,
        "strategy": m.strategy,
        "owner": m.owner_id,
        "pool": list(m.pool),
    }


def _condition_errors(
    conditions: dict[str, Any], dimensions: Mapping[str, Dimension]
) -> list[FieldError]:
    errors = []
    checks = {
        "territories": v.territory,
        "industries": v.industry,
        "rootTerritories": v.territory,
        "rootIndustries": v.industry,
        "valueTiers": lambda x: None if x in ValueTier.__members__ else "is not a value tier",
        "rootValueTiers": lambda x: None if x in ValueTier.__members__ else "is not a value tier",
        "lifecycleStages": lambda x: None if x in LifecycleStage.__members__ else "is not a stage",
        "productLines": lambda x: v.text(x, max_length=100, required=True),
    }
    for key, check in checks.items():
        for i, value in enumerate(conditions.get(key, [])):
            if reason := check(value):
                errors.append(FieldError(f"conditions.{key}.{i}", reason))
    extra = conditions.get("extra", {})
    if not isinstance(extra, dict):  # JSON in the schema: any value can arrive
        return [*errors, FieldError("conditions.extra", "must map dimensions to lists of values")]
    for dimension, values in extra.items():
        if dimension not in dimensions:
            errors.append(
                FieldError(f"conditions.extra.{dimension}", "no plugin provides this dimension")
            )
        elif (
            not isinstance(values, list | tuple)
            or not values
            or not all(isinstance(x, str) and x for x in values)
        ):
            errors.append(
                FieldError(f"conditions.extra.{dimension}", "must list one or more values")
            )
    return errors


class AssignmentService:
    """Rules, and the use cases that apply them."""

    def __init__(
        self, db: Database, clock: Clock, dimensions: Mapping[str, Dimension] = NO_DIMENSIONS
    ) -> None:
        self.db = db
        self.clock = clock
        self.dimensions = dimensions

    async def _validate(self, session: AsyncSession, m: AssignmentRule) -> None:
        errors = [
            FieldError(p, r)
            for p, r in (
                ("name", v.text(m.name, max_length=200, required=True)),
                ("priority", v.int_range(m.priority, 0, 1_000_000)),
            )
            if r
        ]
        errors += _condition_errors(m.conditions, self.dimensions)
        if m.strategy is Strategy.FIXED_OWNER and m.owner_id is None:
            errors.append(FieldError("ownerId", "FIXED_OWNER needs an owner"))
        if m.strategy in (Strategy.ROUND_ROBIN, Strategy.LEAST_LOADED) and not m.pool:
            errors.append(FieldError("poolIds", f"{m.strategy} needs a pool of users"))
        if len(set(m.pool)) != len(m.pool):
            errors.append(FieldError("poolIds", "lists a user twice"))
        referenced = {u for u in [m.owner_id, *m.pool] if u}
        known = set(await session.scalars(select(User.id).where(User.id.in_(referenced))))
        if m.owner_id and m.owner_id not in known:
            errors.append(FieldError("ownerId", "no user has this id"))
        if unknown := sorted(set(m.pool) - known):
            errors.append(FieldError("poolIds", f"no user has the id {', '.join(unknown)}"))
        if m.enabled:
            clash = await session.scalar(
                select(AssignmentRule.name).where(
                    AssignmentRule.enabled,
                    AssignmentRule.priority == m.priority,
                    AssignmentRule.id != m.id,
                )
            )
            if clash is not None:
                errors.append(FieldError("priority", f"the enabled rule {clash!r} has it already"))
        if errors:
            raise BadUserInput(errors)

    def check_conditions(self, conditions: dict[str, Any], root: str) -> None:
        """Raise BAD_USER_INPUT unless ``conditions`` (as a rule stores them) are well formed:
        ``previewAssignment`` evaluates proposed rules it never stores."""
        if errors := _condition_errors(conditions, self.dimensions):
            raise BadUserInput(errors, root=root)

    async def create_rule(self, actor: Actor, fields: dict[str, Any]) -> AssignmentRule:
        """Add a rule; enabled rules need a priority no other enabled rule has."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            rule = AssignmentRule(
                id=new_id("AssignmentRule"),
                created_at=now,
                updated_at=now,
                cursor=0,
                enabled=True,
                pool=[],
                conditions={},
                owner_id=None,
            )
            for name, value in fields.items():
                setattr(rule, name, value)
            await self._validate(session, rule)
            session.add(rule)
            await session.flush()
            AuditWriter(session, actor, now).record(
                "createAssignmentRule", "AssignmentRule", rule.id, diff({}, rule_snapshot(rule))
            )
            return rule

    async def update_rule(
        self, actor: Actor, rule_id: str, expected_version: int, fields: dict[str, Any]
    ) -> AssignmentRule:
        """Change a rule; a stale ``expected_version`` is a CONFLICT."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            rule = await self._load(session, rule_id, expected_version)
            before = rule_snapshot(rule)
            for name, value in fields.items():
                setattr(rule, name, value)
            await self._validate(session, rule)
            changes = diff(before, rule_snapshot(rule))
            if changes:
                rule.updated_at = now
                await session.flush()
                AuditWriter(session, actor, now).record(
                    "updateAssignmentRule", "AssignmentRule", rule.id, changes
                )
            return rule

    async def delete_rule(
        self, actor: Actor, rule_id: str, expected_version: int
    ) -> AssignmentRule:
        """Remove a rule; ownerships it decided keep their record of it."""
        async with self.db.transaction() as session:
            rule = await self._load(session, rule_id, expected_version)
            await session.delete(rule)
            AuditWriter(session, actor, self.clock.now()).record(
                "deleteAssignmentRule", "AssignmentRule", rule.id, diff(rule_snapshot(rule), {})
            )
            return rule

    @staticmethod
    async def _load(session: AsyncSession, rule_id: str, expected_version: int) -> AssignmentRule:
        rule = await session.get(AssignmentRule, rule_id)
        if rule is None:
            raise NotFound("AssignmentRule", rule_id)
        if rule.version != expected_version:
            raise Conflict(
                f"AssignmentRule {rule_id!r} is at version {rule.version}, not "
                f"{expected_version}; reload and retry",
                currentVersion=rule.version,
            )
        return rule

    async def lint(self, session: AsyncSession) -> list[RuleWarning]:
        """Warnings about the enabled rules (see ``core.services.rules.lint``)."""
        live = await load_rules(session)
        active = set(await session.scalars(select(User.id).where(User.active)))
        return lint([to_rule(r) for r in live], active)

    async def explain(
        self, session: AsyncSession, customer_id: str, scope: CustomerScope = EVERYTHING
    ) -> Decision:
        """Every enabled rule's verdict for the customer, up to the deciding one; no writes."""
        facts = await load_facts(session, [customer_id], scope, self.dimensions)
        if not facts:
            raise NotFound("Customer", customer_id)
        ((c, current),) = facts
        rules = await load_rules(session)
        staff = await load_workforce(session, rules)
        if current is not None:
            staff.release(current)
        return evaluate(c, [to_rule(r) for r in rules], staff, commit=False)

    async def preview(
        self,
        session: AsyncSession,
        customer_ids: Sequence[str] | None,
        rules: Sequence[Rule] | None = None,
        scope: CustomerScope = EVERYTHING,
    ) -> Plan:
        """What the live rules (or ``rules`` instead) would change; writes nothing."""
        live = await load_rules(session)
        staff = await load_workforce(session, live)
        rules = rules if rules is not None else [to_rule(r) for r in live]
        facts = await load_facts(
            session, customer_ids, scope, self.dimensions, grouped=uses_group(rules)
        )
        return plan(facts, rules, staff)

    async def run(
        self,
        actor: Actor,
        customer_ids: Sequence[str] | None,
        *,
        dry_run: bool,
        scope: CustomerScope = EVERYTHING,
        reason: str = "assignment run",
    ) -> RunResult:
        """Assign unowned customers; open a RULE_REALIGNMENT request for owned ones whose
        outcome differs (unless one is pending already). ``dry_run`` writes nothing.
        """
        now = self.clock.now()
        async with self.db.transaction(commit=not dry_run) as session:
            return await self.apply(
                session, actor, customer_ids, now, scope=scope, reason=reason, dry_run=dry_run
            )

    async def apply(
        self,
        session: AsyncSession,
        actor: Actor,
        customer_ids: Sequence[str] | None,
        now: datetime,
        *,
        reason: str,
        scope: CustomerScope = EVERYTHING,
        dry_run: bool = False,
        trigger: ReassignmentTrigger = ReassignmentTrigger.RULE_REALIGNMENT,
    ) -> RunResult:
        """``run`` inside the caller's transaction (a tier review applies the rules to the
        customers whose tiers it changed, a move to the units it moved, in its own
        transaction); requests carry ``trigger``."""
        live = await load_rules(session, lock=True)
        staff = await load_workforce(session, live)
        rules = [to_rule(r) for r in live]
        facts = await load_facts(
            session, customer_ids, scope, self.dimensions, grouped=uses_group(rules)
        )
        result = plan(facts, rules, staff)
        assigned = [m for m in result.moves if m.from_owner_id is None]
        realign = [m for m in result.moves if m.from_owner_id is not None]
        pending = set(
            await session.scalars(
                select(ReassignmentRequest.customer_id).where(
                    ReassignmentRequest.status == RequestStatus.PENDING,
                    ReassignmentRequest.customer_id.in_([m.customer_id for m in realign]),
                )
            )
        )
        realign = [m for m in realign if m.customer_id not in pending]
        outcome = RunResult(assigned, [(new_id("ReassignmentRequest"), m) for m in realign], now)
        if dry_run:
            return outcome
        await self._write_assignments(session, actor, assigned, now, reason)
        await self._write_requests(
            session, actor, realign, [rid for rid, _ in outcome.requests], now, reason, trigger
        )
        await self._store_cursors(session, live, staff)
        return outcome

    async def _write_assignments(
        self, session: AsyncSession, actor: Actor, moves: list[Move], now: datetime, reason: str
    ) -> None:
        """Set-based: one INSERT for ownerships, one UPDATE for customers, one for audit."""
        if not moves:
            return
        # Lock the customers in id order before touching ownerships, as assignOwner locks its
        # customer first: both then queue on the customer row instead of deadlocking.
        await session.execute(
            select(Customer.id)
            .where(Customer.id.in_([m.customer_id for m in moves]))
            .order_by(Customer.id)
            .with_for_update()
        )
        await session.execute(
            insert(Ownership),
            [
                {
                    "customer_id": m.customer_id,
                    "owner_id": m.to_owner_id,
                    "assigned_by": AssignedBy.RULE,
                    "rule_id": m.rule.id,
                    "rule_version": m.rule.version,
                    "reason": m.reason(reason),
                    "actor_id": actor.user_id,
                    "valid_from": now,
                }
                for m in moves
            ],
        )
        await session.execute(
            update(Customer)
            .where(Customer.id.in_([m.customer_id for m in moves]))
            .values(version=Customer.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        audit = AuditWriter(session, actor, now)
        for m in moves:
            audit.record(
                "runAssignment",
                "Customer",
                m.customer_id,
                [{"field": "owner", "before": None, "after": m.to_owner_id}],
                m.reason(reason),
            )

    async def _write_requests(
        self,
        session: AsyncSession,
        actor: Actor,
        moves: list[Move],
        ids: list[str],
        now: datetime,
        reason: str,
        trigger: ReassignmentTrigger = ReassignmentTrigger.RULE_REALIGNMENT,
    ) -> None:
        if not moves:
            return
        rows = [
            {
                "id": rid,
                "customer_id": m.customer_id,
                "from_owner_id": m.from_owner_id,
                "to_owner_id": m.to_owner_id,
                "trigger": trigger,
                "reason": m.reason(reason),
                "status": RequestStatus.PENDING,
                "rule_id": m.rule.id,
                "requested_by_id": actor.user_id,
                "created_at": now,
            }
            for rid, m in zip(ids, moves, strict=True)
        ]
        await session.execute(insert(ReassignmentRequest), rows)
        audit = AuditWriter(session, actor, now)
        for rid, m, row in zip(ids, moves, rows, strict=True):
            audit.record(
                "requestReassignment",
                "ReassignmentRequest",
                rid,
                diff({}, request_snapshot(row)),
                m.reason(reason),
            )

    @staticmethod
    async def _store_cursors(
        session: AsyncSession, rules: list[AssignmentRule], staff: Workforce
    ) -> None:
        # A bulk UPDATE: a moving cursor is not an edit of the rule (its version stays).
        for rule in rules:
            if staff.cursors.get(rule.id, rule.cursor) != rule.cursor:
                await session.execute(
                    update(AssignmentRule)
                    .where(AssignmentRule.id == rule.id)
                    .values(cursor=staff.cursors[rule.id])
                    .execution_options(synchronize_session=False)
                )

    async def reevaluate(
        self,
        session: AsyncSession,
        audit_changes: list[dict[str, Any]],
        customer: Customer,
        now: datetime,
        actor: Actor,
    ) -> None:
        """Inside a customer's create or update transaction: apply the live rules to it.

        An unowned customer gets the decided owner at once (its ``owner`` change joins the
        caller's audit entry); an owned one whose outcome differs gets a RULE_REALIGNMENT
        request, since ownership itself only moves through a handover.
        """
        live = await load_rules(session, lock=True)
        if not live:
            return
        staff = await load_workforce(session, live)
        ((facts, current),) = await load_facts(session, [customer.id], EVERYTHING, self.dimensions)
        if current is not None:
            staff.release(current)
        decision = evaluate(facts, [to_rule(r) for r in live], staff, commit=False)
        if decision.owner_id is None or decision.rule is None or staff.keeps(decision, current):
            return
        staff.commit(decision)
        reason = f"rule {decision.rule.name!r}: {decision.steps[-1].reasons[0].text}"
        if current is not None:
            pending = await session.scalar(
                select(ReassignmentRequest.id).where(
                    ReassignmentRequest.customer_id == customer.id,
                    ReassignmentRequest.status == RequestStatus.PENDING,
                )
            )
            if pending is None:
                move = Move(customer.id, current, decision.owner_id, decision.rule)
                await self._write_requests(
                    session, actor, [move], [new_id("ReassignmentRequest")], now, "profile change"
                )
            return
        session.add(
            Ownership(
                customer_id=customer.id,
                owner_id=decision.owner_id,
                assigned_by=AssignedBy.RULE,
                rule_id=decision.rule.id,
                rule_version=decision.rule.version,
                reason=reason,
                actor_id=actor.user_id,
                valid_from=now,
            )
        )
        await self._store_cursors(session, live, staff)
        audit_changes.append({"field": "owner", "before": None, "after": decision.owner_id})
