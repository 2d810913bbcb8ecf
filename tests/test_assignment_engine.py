"""The evaluation function itself: dimensions, strategies, priority, fall-through, determinism."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from core.services.rules import (
    Conditions,
    CustomerFacts,
    Rule,
    Strategy,
    Workforce,
    evaluate,
    evaluate_many,
)


def customer(**overrides: object) -> CustomerFacts:
    base: dict[str, object] = {
        "id": "cus_1",
        "territory": "CN/East/Shanghai",
        "industry": "manufacturing.automotive",
        "value_tier": "HIGH",
        "product_lines": ("erp",),
        "lifecycle_stage": "ACTIVE",
        "first_contact_id": "am.first",
        "extra": {},
    }
    return CustomerFacts(**{**base, **overrides})  # type: ignore[arg-type]


def rule(
    rid: str,
    priority: int,
    strategy: Strategy = Strategy.FIXED_OWNER,
    *,
    owner: str | None = None,
    pool: tuple[str, ...] = (),
    **conditions: object,
) -> Rule:
    return Rule(rid, 1, rid, priority, Conditions(**conditions), strategy, owner, pool)  # type: ignore[arg-type]


def staff(
    *users: str, capacity: dict[str, int] | None = None, load: dict[str, int] | None = None
) -> Workforce:
    return Workforce(active=set(users), capacity=dict(capacity or {}), load=dict(load or {}))


EVERYONE = ("am.a", "am.b", "am.c", "am.first", "am.fixed")


def test_territory_matches_the_path_and_below_only() -> None:
    rules = [rule("r", 1, owner="am.fixed", territories=("CN/East",))]
    assert evaluate(customer(), rules, staff(*EVERYONE)).owner_id == "am.fixed"
    decision = evaluate(customer(territory="CN/Eastern"), rules, staff(*EVERYONE))
    assert decision.owner_id is None
    assert [r.text for r in decision.steps[0].reasons] == [
        "territory 'CN/Eastern' is not under CN/East"
    ]


def test_each_dimension_must_match() -> None:
    cases = [
        ({"industries": ("manufacturing",)}, {"industry": "banking.retail"}),
        ({"value_tiers": ("STRATEGIC",)}, {}),
        ({"product_lines": ("iot", "payments")}, {}),
        ({"lifecycle_stages": ("LEAD", "PROSPECT")}, {}),
        ({"extra": {"aum_band": ("A", "B")}}, {"extra": {"aum_band": "C"}}),
    ]
    for conditions, facts in cases:
        rules = [rule("r", 1, owner="am.fixed", **conditions)]
        assert evaluate(customer(**facts), rules, staff(*EVERYONE)).owner_id is None, conditions
    matching = rule(
        "r",
        1,
        owner="am.fixed",
        industries=("manufacturing",),
        product_lines=("erp", "iot"),
        lifecycle_stages=("ACTIVE",),
        extra={"aum_band": ("A",)},
    )
    assert (
        evaluate(customer(extra={"aum_band": "A"}), [matching], staff(*EVERYONE)).owner_id
        == "am.fixed"
    )


def test_first_matching_rule_by_priority_decides() -> None:
    rules = [rule("first", 1, owner="am.a"), rule("second", 2, owner="am.b")]
    decision = evaluate(customer(), rules, staff(*EVERYONE))
    assert (decision.owner_id, decision.rule and decision.rule.id) == ("am.a", "first")


def test_rule_without_eligible_owner_falls_through() -> None:
    rules = [
        rule("inactive", 1, owner="am.gone"),
        rule("full", 2, owner="am.a"),
        rule("fallback", 3, owner="am.b"),
    ]
    decision = evaluate(
        customer(), rules, staff("am.a", "am.b", capacity={"am.a": 1}, load={"am.a": 1})
    )
    assert decision.owner_id == "am.b"
    assert [s.matched for s in decision.steps] == [True, True, True]
    assert "inactive or at capacity" in decision.steps[0].reasons[0].text


def test_first_contact_strategy() -> None:
    rules = [rule("fc", 1, Strategy.FIRST_CONTACT)]
    assert evaluate(customer(), rules, staff(*EVERYONE)).owner_id == "am.first"
    assert evaluate(customer(first_contact_id=None), rules, staff(*EVERYONE)).owner_id is None


def test_round_robin_rotates_and_skips_ineligible_members() -> None:
    rules = [rule("rr", 1, Strategy.ROUND_ROBIN, pool=("am.a", "am.b", "am.c"))]
    workforce = staff("am.a", "am.c")  # am.b is inactive
    owners = [evaluate(customer(id=f"c{i}"), rules, workforce).owner_id for i in range(4)]
    assert owners == ["am.a", "am.c", "am.a", "am.c"]


def test_least_loaded_breaks_ties_by_user_id() -> None:
    rules = [rule("ll", 1, Strategy.LEAST_LOADED, pool=("am.c", "am.b", "am.a"))]
    workforce = staff("am.a", "am.b", "am.c", load={"am.a": 2})
    owners = [evaluate(customer(id=f"c{i}"), rules, workforce).owner_id for i in range(3)]
    assert owners == ["am.b", "am.c", "am.b"]


def test_same_facts_same_decision() -> None:
    rules = [rule("rr", 1, Strategy.ROUND_ROBIN, pool=("am.a", "am.b"))]
    first = evaluate(customer(), rules, staff(*EVERYONE), commit=False)
    second = evaluate(customer(), rules, staff(*EVERYONE), commit=False)
    assert first == second


# Random rule sets and customers over small value sets, so that rules often overlap.
_territory = st.sampled_from(["CN", "CN/East", "CN/East/Shanghai", "CN/North", "US"])
_industry = st.sampled_from(["manufacturing", "manufacturing.automotive", "banking", "retail"])
_tier = st.sampled_from(["STRATEGIC", "HIGH", "MEDIUM", "LOW"])
_stage = st.sampled_from(["LEAD", "PROSPECT", "ACTIVE", "DORMANT", "CHURNED"])
_line = st.sampled_from(["erp", "iot", "payments"])
_user = st.sampled_from(EVERYONE)

_facts = st.builds(
    CustomerFacts,
    id=st.uuids().map(str),
    territory=st.none() | _territory,
    industry=st.none() | _industry,
    value_tier=st.none() | _tier,
    product_lines=st.lists(_line, max_size=2, unique=True).map(tuple),
    lifecycle_stage=_stage,
    first_contact_id=st.none() | _user,
    extra=st.just({}),
)
_conditions = st.builds(
    Conditions,
    territories=st.lists(_territory, max_size=2).map(tuple),
    industries=st.lists(_industry, max_size=2).map(tuple),
    value_tiers=st.lists(_tier, max_size=2).map(tuple),
    product_lines=st.lists(_line, max_size=2).map(tuple),
    lifecycle_stages=st.lists(_stage, max_size=2).map(tuple),
)


@st.composite
def _rules(draw: st.DrawFn) -> list[Rule]:
    count = draw(st.integers(1, 6))
    priorities = draw(st.lists(st.integers(1, 100), min_size=count, max_size=count, unique=True))
    return sorted(
        (
            Rule(
                f"r{i}",
                1,
                f"r{i}",
                p,
                draw(_conditions),
                draw(st.sampled_from(list(Strategy))),
                draw(_user),
                tuple(draw(st.lists(_user, min_size=1, max_size=3, unique=True))),
            )
            for i, p in enumerate(priorities)
        ),
        key=lambda r: r.priority,
    )


_workforce = st.builds(
    Workforce,
    active=st.sets(_user, min_size=1),
    capacity=st.dictionaries(_user, st.integers(0, 3)),
    load=st.dictionaries(_user, st.integers(0, 3)),
)


@settings(max_examples=300, deadline=None)
@given(customers=st.lists(_facts, max_size=12), rules=_rules(), workforce=_workforce)
def test_batch_and_single_evaluation_agree(
    customers: list[CustomerFacts], rules: list[Rule], workforce: Workforce
) -> None:
    """The set-based path decides exactly like evaluating one customer after another."""
    single_staff = copy.deepcopy(workforce)
    one_by_one = [evaluate(c, rules, single_staff) for c in customers]
    batch = evaluate_many(customers, rules, workforce)
    assert [(d.owner_id, d.rule) for d in batch] == [(d.owner_id, d.rule) for d in one_by_one]
    assert workforce == single_staff


def test_lint_finds_shadowed_overlapping_and_ownerless_rules() -> None:
    from core.services.rules import lint

    rules = [
        rule("east", 1, owner="am.a", territories=("CN/East",)),
        rule("shanghai", 2, owner="am.b", territories=("CN/East/Shanghai",)),
        rule("high", 3, owner="am.c", value_tiers=("HIGH",)),
        rule("gone", 4, owner="am.gone", territories=("US",)),
        rule("pool", 5, Strategy.ROUND_ROBIN, pool=("am.gone", "am.left"), territories=("EU",)),
        rule("north-high", 6, owner="am.a", territories=("CN/North",), value_tiers=("HIGH",)),
    ]
    found = {
        (w.code, w.rule.id, w.other.id if w.other else None)
        for w in lint(rules, {"am.a", "am.b", "am.c"})
    }
    assert found == {
        ("SHADOWED", "shanghai", "east"),
        ("OVERLAP", "high", "east"),  # a HIGH customer in CN/East goes to east
        ("OVERLAP", "high", "shanghai"),
        ("INACTIVE_OWNER", "gone", None),
        ("OVERLAP", "gone", "high"),
        ("EMPTY_POOL", "pool", None),
        ("OVERLAP", "pool", "high"),
        ("SHADOWED", "north-high", "high"),  # high has no territory condition: it covers all
    }


@settings(max_examples=500, deadline=None)
@given(a=_conditions, b=_conditions, c=_facts)
def test_cover_and_overlap_agree_with_matching(
    a: Conditions, b: Conditions, c: CustomerFacts
) -> None:
    """What the lint claims about two rules holds for every customer."""
    from core.services.rules import covers, mismatches, overlaps

    rule_a = Rule("a", 1, "a", 1, a, Strategy.FIRST_CONTACT)
    rule_b = Rule("b", 1, "b", 2, b, Strategy.FIRST_CONTACT)
    matches_a, matches_b = not mismatches(rule_a, c), not mismatches(rule_b, c)
    if covers(a, b) and matches_b:
        assert matches_a
    if matches_a and matches_b:
        assert overlaps(a, b)
