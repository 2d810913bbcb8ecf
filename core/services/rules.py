"""The assignment engine's one evaluation function, shared by assign, explain, preview and run.

Everything here is pure: facts in, decision out. Callers load the facts in bulk (one query
for customers, one for rules, one for users), so evaluating many customers costs no query
per customer, and the same facts always give the same decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from core.domain.enums import Strategy

NO_EXTRA: Mapping[str, str] = MappingProxyType({})  # shared: most customers have no extras


@dataclass(frozen=True)
class Conditions:
    """Every non-empty condition must match; within one, any listed value matches."""

    territories: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    value_tiers: tuple[str, ...] = ()
    product_lines: tuple[str, ...] = ()
    lifecycle_stages: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Conditions on the customer's group: its top-level account's territory, industry, tier.
    root_territories: tuple[str, ...] = ()
    root_industries: tuple[str, ...] = ()
    root_value_tiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """A rule as the engine sees it (enabled rules only)."""

    id: str
    version: int
    name: str
    priority: int
    conditions: Conditions
    strategy: Strategy
    owner_id: str | None = None
    pool: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Group:
    """What rules can look at of a customer's group: its parent's owner and its top-level
    account's territory, industry and value tier (a top-level account is its own root);
    and its parent and depth."""

    parent_owner_id: str | None = None
    territory: str | None = None
    industry: str | None = None
    value_tier: str | None = None
    # Where the customer sits, so that a batch decides parents before their units.
    parent_id: str | None = None
    depth: int = 0


NO_GROUP = Group()


@dataclass(slots=True)
class CustomerFacts:
    """The customer attributes rules can look at."""

    id: str
    territory: str | None
    industry: str | None
    value_tier: str | None
    product_lines: tuple[str, ...]
    lifecycle_stage: str
    first_contact_id: str | None
    extra: Mapping[str, str] = field(default_factory=dict)
    group: Group = NO_GROUP


@dataclass
class Workforce:
    """Who can take one more customer: active users, their capacity and current load.

    ``load`` and the round-robin ``cursors`` change as a batch assigns, so one batch sees
    the consequences of its own earlier decisions (a preview is exact).
    """

    active: set[str]
    capacity: dict[str, int | None]
    load: dict[str, int]
    cursors: dict[str, int] = field(default_factory=dict)

    def eligible(self, user_id: str | None) -> bool:
        if user_id is None or user_id not in self.active:
            return False
        cap = self.capacity.get(user_id)
        return cap is None or self.load.get(user_id, 0) < cap

    def take(self, user_id: str) -> None:
        self.load[user_id] = self.load.get(user_id, 0) + 1

    def release(self, user_id: str) -> None:
        self.load[user_id] = self.load.get(user_id, 0) - 1

    def commit(self, decision: Decision) -> None:
        """Count a decision: the owner's load, and the round-robin position after it."""
        if decision.owner_id is None or decision.rule is None:
            return
        self.take(decision.owner_id)
        rule = decision.rule
        if rule.strategy is Strategy.ROUND_ROBIN:
            self.cursors[rule.id] = (rule.pool.index(decision.owner_id) + 1) % len(rule.pool)

    def keeps(self, decision: Decision, current: str | None) -> bool:
        """Whether an owned customer's current owner is already a valid outcome: the owner
        decided, or an eligible member of the deciding rule's pool (any member would do)."""
        if current is None or decision.rule is None:
            return False
        if decision.owner_id == current:
            return True
        pooled = decision.rule.strategy in (Strategy.ROUND_ROBIN, Strategy.LEAST_LOADED)
        return pooled and current in decision.rule.pool and self.eligible(current)


@dataclass(slots=True)
class Step:
    """Why one rule did or did not decide."""

    rule: Rule
    matched: bool
    reasons: tuple[Reason, ...]


@dataclass(slots=True)
class Decision:
    """The deciding rule and owner (both None when no rule decides), and every step taken."""

    owner_id: str | None
    rule: Rule | None
    steps: tuple[Step, ...]


def _under(value: str | None, prefixes: Iterable[str], separator: str) -> bool:
    if value is None:
        return False
    return any(value == p or value.startswith(p + separator) for p in prefixes)


@dataclass(slots=True)
class Reason:
    """Why a step went as it did, and which customer field it speaks about (for redaction)."""

    field: str
    text: str


@dataclass(frozen=True)
class Dimension:
    """One customer attribute a rule can test: how to read it, the rule's accepted values,
    the test, and how to say why it failed."""

    field: str
    value: Callable[[CustomerFacts], Any]
    wanted: Callable[[Conditions], tuple[str, ...]]
    accepts: Callable[[Any, tuple[str, ...]], bool]
    describe: Callable[[Any, tuple[str, ...]], str]

    def passes(self, rule: Rule, value: Any) -> bool:
        wanted = self.wanted(rule.conditions)
        return not wanted or self.accepts(value, wanted)


CORE_DIMENSIONS = (
    Dimension(
        "territory",
        lambda c: c.territory,
        lambda k: k.territories,
        lambda v, w: _under(v, w, "/"),
        lambda v, w: f"territory {v!r} is not under {', '.join(w)}",
    ),
    Dimension(
        "industry",
        lambda c: c.industry,
        lambda k: k.industries,
        lambda v, w: _under(v, w, "."),
        lambda v, w: f"industry {v!r} is not under {', '.join(w)}",
    ),
    Dimension(
        "valueTier",
        lambda c: c.value_tier,
        lambda k: k.value_tiers,
        lambda v, w: v in w,
        lambda v, w: f"value tier {v} is not one of {', '.join(w)}",
    ),
    Dimension(
        "productLines",
        lambda c: c.product_lines,
        lambda k: k.product_lines,
        lambda v, w: bool(set(v) & set(w)),
        lambda v, w: f"no product line among {', '.join(w)}",
    ),
    Dimension(
        "lifecycleStage",
        lambda c: c.lifecycle_stage,
        lambda k: k.lifecycle_stages,
        lambda v, w: v in w,
        lambda v, w: f"lifecycle stage {v} is not one of {', '.join(w)}",
    ),
)
# The group's top-level account; reasons speak about ``Customer.root`` (for redaction). Only
# checked when some rule has such a condition, so that rule sets without cost nothing more.
GROUP_DIMENSIONS = (
    Dimension(
        "root",
        lambda c: c.group.territory,
        lambda k: k.root_territories,
        lambda v, w: _under(v, w, "/"),
        lambda v, w: f"group territory {v!r} is not under {', '.join(w)}",
    ),
    Dimension(
        "root",
        lambda c: c.group.industry,
        lambda k: k.root_industries,
        lambda v, w: _under(v, w, "."),
        lambda v, w: f"group industry {v!r} is not under {', '.join(w)}",
    ),
    Dimension(
        "root",
        lambda c: c.group.value_tier,
        lambda k: k.root_value_tiers,
        lambda v, w: v in w,
        lambda v, w: f"group value tier {v} is not one of {', '.join(w)}",
    ),
)


def uses_group(rules: Sequence[Rule]) -> bool:
    """Whether any rule looks at customers' groups (so facts must carry them)."""
    return any(
        r.strategy is Strategy.INHERIT_PARENT_OWNER
        or r.conditions.root_territories
        or r.conditions.root_industries
        or r.conditions.root_value_tiers
        for r in rules
    )


def _extra_dimension(name: str) -> Dimension:
    return Dimension(
        name,
        lambda c: c.extra.get(name),
        lambda k: k.extra.get(name, ()),
        lambda v, w: v in w,
        lambda v, w: f"{name} {v!r} is not one of {', '.join(w)}",
    )


def dimensions_of(rules: Sequence[Rule]) -> tuple[Dimension, ...]:
    """The core dimensions plus every group and plugin dimension the rules use."""
    extra = sorted({name for r in rules for name in r.conditions.extra})
    grouped = any(
        r.conditions.root_territories
        or r.conditions.root_industries
        or r.conditions.root_value_tiers
        for r in rules
    )
    return (
        CORE_DIMENSIONS
        + (GROUP_DIMENSIONS if grouped else ())
        + tuple(_extra_dimension(name) for name in extra)
    )


def mismatches(rule: Rule, c: CustomerFacts) -> list[Reason]:
    """The reasons ``rule``'s conditions do not match ``c`` (empty when they all match)."""
    return [
        Reason(d.field, d.describe(d.value(c), d.wanted(rule.conditions)))
        for d in dimensions_of([rule])
        if not d.passes(rule, d.value(c))
    ]


def _candidate(rule: Rule, c: CustomerFacts, staff: Workforce) -> tuple[str | None, Reason]:
    """The owner the rule's strategy yields for ``c`` (None with a reason when nobody can)."""
    if rule.strategy is Strategy.FIXED_OWNER:
        if staff.eligible(rule.owner_id):
            return rule.owner_id, Reason("owner", f"fixed owner {rule.owner_id}")
        return None, Reason("owner", f"fixed owner {rule.owner_id} is inactive or at capacity")
    if rule.strategy is Strategy.FIRST_CONTACT:
        if staff.eligible(c.first_contact_id):
            return c.first_contact_id, Reason("firstContact", f"first contact {c.first_contact_id}")
        return None, Reason(
            "firstContact", "no first contact, or the first contact is inactive or at capacity"
        )
    if rule.strategy is Strategy.INHERIT_PARENT_OWNER:
        parent_owner = c.group.parent_owner_id
        if staff.eligible(parent_owner):
            return parent_owner, Reason("parent", f"the parent account's owner {parent_owner}")
        return None, Reason(
            "parent", "no parent account, or its owner is missing, inactive or at capacity"
        )
    if rule.strategy is Strategy.LEAST_LOADED:
        eligible = [u for u in rule.pool if staff.eligible(u)]
        if not eligible:
            return None, Reason("owner", "no pool member is active and below capacity")
        chosen = min(eligible, key=lambda u: (staff.load.get(u, 0), u))
        return chosen, Reason(
            "owner", f"least loaded in pool ({staff.load.get(chosen, 0)} accounts)"
        )
    # ROUND_ROBIN: the next eligible member after the rule's cursor, in pool order.
    start = staff.cursors.get(rule.id, 0)
    for offset in range(len(rule.pool)):
        member = rule.pool[(start + offset) % len(rule.pool)]
        if staff.eligible(member):
            return member, Reason(
                "owner", f"round robin, position {(start + offset) % len(rule.pool)}"
            )
    return None, Reason("owner", "no pool member is active and below capacity")


def evaluate(
    c: CustomerFacts, rules: Sequence[Rule], staff: Workforce, *, commit: bool = True
) -> Decision:
    """Walk ``rules`` (ascending priority); the first that matches and yields an owner decides.

    With ``commit`` the decision is counted in ``staff`` (load, round-robin cursor), so that the
    next customer of the same batch sees it. Every step is recorded (``explainAssignment``).
    """
    return _decide(c, [(rule, tuple(mismatches(rule, c))) for rule in rules], staff, commit)


class Evaluator:
    """``evaluate`` for many customers, in order.

    The rules are compiled once: for each dimension and each distinct customer value, a
    bitmask of the rules that accept it (bit i = i-th rule by priority). A customer's matching
    rules are the AND of its dimensions' masks, so only the owner choice runs per customer.
    Steps list only the rules whose conditions matched.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = rules
        self._dimensions = dimensions_of(rules)
        self._masks: list[dict[Any, int]] = [{} for _ in self._dimensions]
        self._all = (1 << len(rules)) - 1

    def _mask(self, index: int, value: Any) -> int:
        dimension = self._dimensions[index]
        mask = sum(1 << i for i, r in enumerate(self.rules) if dimension.passes(r, value))
        self._masks[index][value] = mask
        return mask

    def matching(self, c: CustomerFacts) -> Iterator[Rule]:
        """The rules whose conditions all match ``c``, by priority, lazily (the first that
        yields an owner ends the walk)."""
        mask = self._all
        for index, (cache, dimension) in enumerate(zip(self._masks, self._dimensions, strict=True)):
            value = dimension.value(c)
            found = cache.get(value, -1)
            mask &= found if found >= 0 else self._mask(index, value)
            if not mask:
                return
        while mask:
            low = mask & -mask
            yield self.rules[low.bit_length() - 1]
            mask ^= low

    def decide(self, c: CustomerFacts, staff: Workforce, *, commit: bool = True) -> Decision:
        return _decide(c, ((r, ()) for r in self.matching(c)), staff, commit)


def evaluate_many(
    customers: Iterable[CustomerFacts], rules: Sequence[Rule], staff: Workforce
) -> list[Decision]:
    """``evaluate`` for a batch, in order, committing each decision (see ``Evaluator``)."""
    evaluator = Evaluator(rules)
    return [evaluator.decide(c, staff) for c in customers]


def _decide(
    c: CustomerFacts,
    checked: Iterable[tuple[Rule, tuple[Reason, ...]]],
    staff: Workforce,
    commit: bool,
) -> Decision:
    steps = []
    for rule, reasons in checked:
        if reasons:
            steps.append(Step(rule, False, reasons))
            continue
        owner, why = _candidate(rule, c, staff)
        steps.append(Step(rule, True, (why,)))
        if owner is not None:
            decision = Decision(owner, rule, tuple(steps))
            if commit:
                staff.commit(decision)
            return decision
    return Decision(None, None, tuple(steps))


@dataclass(frozen=True)
class RuleWarning:
    """Something about the rule set an admin should look at."""

    code: str  # SHADOWED, EMPTY_POOL, INACTIVE_OWNER, OVERLAP
    rule: Rule
    message: str
    other: Rule | None = None


def _paths_cover(broad: tuple[str, ...], narrow: tuple[str, ...], sep: str) -> bool:
    return not broad or (bool(narrow) and all(_under(n, broad, sep) for n in narrow))


def _set_covers(broad: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    return not broad or (bool(narrow) and set(narrow) <= set(broad))


def covers(a: Conditions, b: Conditions) -> bool:
    """Every customer ``b`` matches, ``a`` matches too."""
    return (
        _paths_cover(a.territories, b.territories, "/")
        and _paths_cover(a.industries, b.industries, ".")
        and _set_covers(a.value_tiers, b.value_tiers)
        and _set_covers(a.product_lines, b.product_lines)
        and _set_covers(a.lifecycle_stages, b.lifecycle_stages)
        and _paths_cover(a.root_territories, b.root_territories, "/")
        and _paths_cover(a.root_industries, b.root_industries, ".")
        and _set_covers(a.root_value_tiers, b.root_value_tiers)
        and all(_set_covers(values, b.extra.get(dim, ())) for dim, values in a.extra.items())
    )


def _paths_meet(a: tuple[str, ...], b: tuple[str, ...], sep: str) -> bool:
    return not a or not b or any(_under(x, b, sep) or _under(y, a, sep) for x in a for y in b)


def overlaps(a: Conditions, b: Conditions) -> bool:
    """Some customer could match both. (Product lines never rule it out: a customer may hold
    a line of each rule.)"""
    sets = (
        (a.value_tiers, b.value_tiers),
        (a.lifecycle_stages, b.lifecycle_stages),
        (a.root_value_tiers, b.root_value_tiers),
        *((a.extra.get(d, ()), b.extra.get(d, ())) for d in {*a.extra, *b.extra}),
    )
    return (
        _paths_meet(a.territories, b.territories, "/")
        and _paths_meet(a.industries, b.industries, ".")
        and _paths_meet(a.root_territories, b.root_territories, "/")
        and _paths_meet(a.root_industries, b.root_industries, ".")
        and all(not x or not y or bool(set(x) & set(y)) for x, y in sets)
    )


def _outcome(rule: Rule) -> tuple[object, ...]:
    if rule.strategy is Strategy.FIXED_OWNER:
        return (rule.strategy, rule.owner_id)
    if rule.strategy is Strategy.FIRST_CONTACT:
        return (rule.strategy,)
    return (rule.strategy, frozenset(rule.pool))


def lint(rules: Sequence[Rule], active: set[str]) -> list[RuleWarning]:
    """Warnings for enabled ``rules`` (ascending priority), given the active users."""
    warnings = []
    for i, rule in enumerate(rules):
        if rule.strategy is Strategy.FIXED_OWNER and rule.owner_id not in active:
            warnings.append(
                RuleWarning(
                    "INACTIVE_OWNER",
                    rule,
                    f"its owner {rule.owner_id} is inactive; the rule never decides",
                )
            )
        if rule.strategy in (Strategy.ROUND_ROBIN, Strategy.LEAST_LOADED):
            inactive = [u for u in rule.pool if u not in active]
            if len(inactive) == len(rule.pool):
                warnings.append(
                    RuleWarning(
                        "EMPTY_POOL", rule, "no active user in its pool; the rule never decides"
                    )
                )
            elif inactive:
                warnings.append(
                    RuleWarning(
                        "INACTIVE_OWNER",
                        rule,
                        f"inactive pool members are skipped: {', '.join(inactive)}",
                    )
                )
        for earlier in rules[:i]:
            if covers(earlier.conditions, rule.conditions):
                warnings.append(
                    RuleWarning(
                        "SHADOWED",
                        rule,
                        f"every customer it matches is matched first by {earlier.name!r} "
                        f"(priority {earlier.priority}); it decides only when that rule "
                        "has no eligible owner",
                        earlier,
                    )
                )
                break
            if overlaps(earlier.conditions, rule.conditions) and _outcome(earlier) != _outcome(
                rule
            ):
                warnings.append(
                    RuleWarning(
                        "OVERLAP",
                        rule,
                        f"customers matching both go to {earlier.name!r} "
                        f"(priority {earlier.priority}), which picks owners differently",
                        earlier,
                    )
                )
    return warnings
