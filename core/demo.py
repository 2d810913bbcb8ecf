"""A realistic demo data set: two sales teams, the supporting roles, ~200 customers, two
account groups with units in several territories and industries."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from core.domain import (
    ActivityKind,
    CommunicationChannel,
    CustomerKind,
    LifecycleStage,
    LoyaltyTier,
    NeedsTier,
    PaymentMethod,
    Strategy,
    SurveyKind,
    SurveyOccasion,
    TeamRole,
    User,
    ValueTier,
)
from core.insight.service import Answer
from core.services import Actor, Services
from core.services.tiering import ActivityRow

ADMIN_ID = "admin"


@dataclass(frozen=True)
class DemoUser:
    id: str
    name: str
    roles: tuple[str, ...]
    manager: str | None = None
    team: str | None = None
    capacity: int | None = None


TEAMS = {"east": ("CN/East", "tm.li"), "north": ("CN/North", "tm.zhao")}
USERS = [
    DemoUser(ADMIN_ID, "Ada Admin", ("admin",)),
    DemoUser("sd.wang", "Wang Fang", ("sales_director",)),
    DemoUser("tm.li", "Li Wei", ("team_manager",), "sd.wang", "east"),
    DemoUser("tm.zhao", "Zhao Min", ("team_manager",), "sd.wang", "north"),
    *[
        DemoUser(f"am.{n}", name, ("account_manager",), "tm.li", "east", 60)
        for n, name in (
            ("chen", "Chen Jie"),
            ("huang", "Huang Lei"),
            ("zhou", "Zhou Yan"),
            ("wu", "Wu Hao"),
        )
    ],
    *[
        DemoUser(f"am.{n}", name, ("account_manager",), "tm.zhao", "north", 60)
        for n, name in (("sun", "Sun Li"), ("ma", "Ma Tao"), ("guo", "Guo Jing"), ("lin", "Lin Yu"))
    ],
    DemoUser("fin.he", "He Xin", ("finance",)),
    DemoUser("cs.liu", "Liu Yang", ("customer_service",)),
    DemoUser("aud.xu", "Xu Ning", ("auditor",)),
]
CITIES = {
    "CN/East": ["Shanghai", "Hangzhou", "Nanjing", "Suzhou"],
    "CN/North": ["Beijing", "Tianjin", "Shijiazhuang"],
}
INDUSTRIES = [
    "manufacturing.automotive",
    "manufacturing.electronics",
    "manufacturing.chemicals",
    "banking.retail",
    "banking.private",
    "retail.grocery",
    "logistics",
    "healthcare",
]
PRODUCT_LINES = ["erp", "analytics", "payments", "support-plus", "iot", "training"]
NAME_PARTS = (
    [
        "Golden",
        "Eastern",
        "Silver",
        "Harbor",
        "Summit",
        "Jade",
        "Pacific",
        "Lotus",
        "Evergreen",
        "Phoenix",
        "Unity",
        "Bright",
        "Crown",
        "Delta",
        "Orient",
    ],
    [
        "Motors",
        "Electronics",
        "Bank",
        "Logistics",
        "Foods",
        "Chemicals",
        "Health",
        "Trading",
        "Systems",
        "Capital",
        "Textiles",
        "Materials",
    ],
)


# Two groups with units in several territories and industries (name, industry, territory,
# owner, parent's index or None), each group's director, and its team (user, role).
GROUPS: list[
    tuple[list[tuple[str, str, str, str, int | None]], str, list[tuple[str, TeamRole]]]
] = [
    (
        [
            (
                "Jade Automotive Group",
                "manufacturing.automotive",
                "CN/East/Shanghai",
                "am.chen",
                None,
            ),
            (
                "Jade Motors Hangzhou Plant",
                "manufacturing.automotive",
                "CN/East/Hangzhou",
                "am.chen",
                0,
            ),
            (
                "Jade Hangzhou Body Shop",
                "manufacturing.automotive",
                "CN/East/Hangzhou",
                "am.huang",
                1,
            ),
            (
                "Jade Electronics Tianjin",
                "manufacturing.electronics",
                "CN/North/Tianjin",
                "am.sun",
                0,
            ),
            ("Jade Auto Finance", "banking.retail", "CN/East/Suzhou", "am.zhou", 0),
        ],
        "tm.li",
        [("cs.liu", TeamRole.SERVICE), ("fin.he", TeamRole.FINANCE_CONTACT)],
    ),
    (
        [
            ("Orient Financial Holdings", "banking.private", "CN/North/Beijing", "am.ma", None),
            ("Orient Bank Shanghai Branch", "banking.retail", "CN/East/Shanghai", "am.wu", 0),
            ("Orient Logistics Tianjin", "logistics", "CN/North/Tianjin", "am.guo", 0),
        ],
        "tm.zhao",
        [("cs.liu", TeamRole.SERVICE), ("am.lin", TeamRole.PRE_SALES)],
    ),
]
GROUP_ACCOUNTS = sum(len(accounts) for accounts, _, _ in GROUPS)


async def seed_groups(services: Services) -> None:
    """The demo groups: accounts placed under their parents, a group director on each top-level
    account, and a team around it added by its owner."""
    for accounts, director, team in GROUPS:
        ids: list[str] = []
        for name, industry, territory, owner, parent in accounts:
            customer = await services.customers.create(
                Actor(ADMIN_ID),
                {
                    "name": name,
                    "industry": industry,
                    "territory": territory,
                    "lifecycle_stage": LifecycleStage.ACTIVE,
                    "annual_revenue": Decimal(5_000_000 // (len(ids) + 1)),
                },
                owner_id=owner,
                parent_id=ids[parent] if parent is not None else None,
                reason="demo data",
            )
            ids.append(customer.id)
        await services.groups.set_group_director(Actor(ADMIN_ID), ids[0], director)
        for user, role in team:
            await services.teams.add(Actor(accounts[0][3]), ids[0], user, role)


def _team(team: str) -> list[str]:
    return [u.id for u in USERS if u.team == team and "account_manager" in u.roles]


DEMO_RULES: list[dict[str, Any]] = [
    {
        "name": "Leads stay with their first contact",
        "priority": 10,
        "strategy": Strategy.FIRST_CONTACT,
        "conditions": {"lifecycleStages": ["LEAD"]},
    },
    {
        "name": "East: least-loaded account manager",
        "priority": 20,
        "strategy": Strategy.LEAST_LOADED,
        "conditions": {"territories": ["CN/East"]},
        "pool": _team("east"),
    },
    {
        "name": "North: round robin",
        "priority": 30,
        "strategy": Strategy.ROUND_ROBIN,
        "conditions": {"territories": ["CN/North"]},
        "pool": _team("north"),
    },
]


def demo_customer(rng: random.Random, index: int) -> tuple[dict[str, Any], str | None]:
    """The profile of demo customer ``index`` and the user who first contacted it."""
    team = rng.choice(list(TEAMS))
    region, _ = TEAMS[team]
    owners = [u.id for u in USERS if u.team == team and "account_manager" in u.roles]
    revenue = Decimal(int(rng.lognormvariate(13.5, 1.1))).quantize(Decimal("1"))
    tier = (
        ValueTier.STRATEGIC
        if revenue > 3_000_000
        else ValueTier.HIGH
        if revenue > 1_200_000
        else ValueTier.MEDIUM
        if revenue > 400_000
        else ValueTier.LOW
    )
    name = f"{rng.choice(NAME_PARTS[0])} {rng.choice(NAME_PARTS[1])} {index:03d}"
    profile = {
        "name": name,
        "kind": CustomerKind.INDIVIDUAL if rng.random() < 0.1 else CustomerKind.ENTERPRISE,
        "industry": rng.choice(INDUSTRIES),
        "territory": f"{region}/{rng.choice(CITIES[region])}",
        "product_lines": sorted(rng.sample(PRODUCT_LINES, rng.randint(1, 3))),
        "lifecycle_stage": rng.choices(list(LifecycleStage), weights=[15, 15, 55, 10, 5])[0],
        "value_tier": tier,
        "needs_tier": rng.choice(list(NeedsTier)),
        "loyalty_tier": rng.choices(list(LoyaltyTier), weights=[40, 50, 10])[0],
        "annual_revenue": revenue,
        "profit_contribution": (revenue * Decimal(rng.uniform(0.05, 0.3))).quantize(Decimal("1")),
        "growth_potential": rng.randint(0, 100),
        "strategic_fit": rng.randint(0, 100),
        "payment_terms_days": rng.choice([0, 15, 30, 45, 60, 90]),
        "payment_method": rng.choice(list(PaymentMethod)),
        "invoice_requirements": rng.choice(
            [None, "PO number on every invoice", "e-invoice (fapiao) within 5 days"]
        ),
        "communication_preference": rng.choice(list(CommunicationChannel)),
        "contacts": [
            {
                "name": f"Contact {index}-{i}",
                "title": rng.choice(["CFO", "CTO", "Buyer"]),
                "email": f"contact{index}.{i}@example.com",
            }
            for i in range(rng.randint(1, 2))
        ],
    }
    return profile, rng.choice(owners)


async def seed_demo(
    services: Services,
    customers: int = 200,
    *,
    progress: Callable[[int], None] | None = None,
) -> bool:
    """Create the demo users and customers unless users exist already; True if it seeded."""
    async with services.db.reader() as session:
        if await session.scalar(select(func.count()).select_from(User)):
            return False
    system = Actor.system()
    for u in USERS:
        await services.users.create(
            system,
            u.id,
            u.name,
            email=f"{u.id}@baton.example",
            roles=list(u.roles),
            manager_id=u.manager,
            team=u.team,
            capacity=u.capacity,
        )
    for rule in DEMO_RULES:
        await services.assignment.create_rule(system, rule)
    rng = random.Random(20261124)
    history: list[ActivityRow] = []
    answers: list[Answer] = []
    grouped = customers >= 50  # small data sets (tests) stay flat
    if grouped:
        await seed_groups(services)
        if progress:
            progress(GROUP_ACCOUNTS)
    for index in range(customers - (GROUP_ACCOUNTS if grouped else 0)):
        profile, contact = demo_customer(rng, index)
        # Most customers are assigned by the rules as they arrive; a few wait for a run.
        customer = await services.customers.create(
            Actor(contact),
            profile,
            needs=demo_needs(rng, profile["industry"], services),
            reason="demo data",
            auto_assign=rng.random() < 0.85,
        )
        history += demo_activities(rng, services.clock.now(), customer.id)
        answers += demo_answers(rng, services.clock.now(), customer.id)
        if progress:
            progress(1)
    await services.tiering.import_activities(system, history)
    await services.insight.import_answers(system, answers)
    await services.tiering.review(system)
    await services.insight.refresh(full=True)  # engagement and RFM rows for everyone
    return True


def demo_needs(rng: random.Random, industry: str, services: Services) -> dict[str, Any]:
    """Special needs of the built-in plugins that are loaded, for customers of their industry."""
    if industry.startswith("banking") and services.plugins.get("banking"):
        return {
            "banking": {
                "risk_tolerance": rng.choice(["C1", "C2", "C3", "C4", "C5"]),
                "aum_band": rng.choice(["BELOW_1M", "FROM_1M_TO_10M", "FROM_10M_TO_100M"]),
                "marketing_opt_out": rng.random() < 0.3,
            }
        }
    if industry.startswith("manufacturing") and services.plugins.get("manufacturing"):
        return {
            "manufacturing": {
                "delivery_sla_days": rng.choice([3, 7, 14]),
                "plant_region": rng.choice(["CN_EAST", "CN_NORTH", "EUROPE"]),
                "quality_certifications": rng.sample(["ISO_9001", "IATF_16949", "ISO_14001"], 1),
            }
        }
    return {}


def demo_activities(rng: random.Random, now: datetime, customer_id: str) -> list[ActivityRow]:
    """A few months of orders, interactions and payments back from now; some customers go
    quiet (dormant after 200 days), complain, pay late or refer someone."""
    quiet_since = rng.choice([0, 0, 0, 70, 100, 200])  # days without orders, for the warnings
    rows = [
        ActivityRow(
            customer_id,
            ActivityKind.ORDER,
            now
            - timedelta(days=rng.randint(quiet_since, quiet_since + 170), hours=rng.randint(0, 23)),
            amount=Decimal(rng.randint(5, 500) * 1000),
            category=rng.choice(["spare parts", "service", "licences", "hardware"]),
        )
        for _ in range(rng.randint(0, 6))
    ]
    rows += [
        ActivityRow(
            customer_id,
            ActivityKind.INTERACTION,
            now - timedelta(days=rng.randint(quiet_since, quiet_since + 170)),
        )
        for _ in range(rng.randint(0, 4))
    ]
    rows += [
        ActivityRow(
            customer_id,
            ActivityKind.PAYMENT,
            now - timedelta(days=rng.randint(quiet_since + 1, quiet_since + 170)),
            days_late=rng.choice([0, 0, 0, 0, 5, 30]),
        )
        for _ in range(rng.randint(0, 3))
    ]
    if rng.random() < 0.15:
        rows.append(
            ActivityRow(
                customer_id, ActivityKind.REFERRAL, now - timedelta(days=rng.randint(1, 300))
            )
        )
    if rng.random() < 0.1:
        rows += [
            ActivityRow(customer_id, ActivityKind.COMPLAINT, now - timedelta(days=d), note="late")
            for d in (3, 20)
        ]
    return rows


def demo_answers(rng: random.Random, now: datetime, customer_id: str) -> list[Answer]:
    """Quarterly NPS answers with a reason, and now and then a CES or satisfaction answer."""
    reasons = ["fast delivery", "slow answers", "good value", "too many errors", None]
    answers = [
        Answer(
            customer_id,
            SurveyKind.NPS,
            rng.choice([3, 6, 7, 8, 8, 9, 9, 10]),
            rng.choice(reasons),
            now - timedelta(days=days + rng.randint(0, 20)),
            occasion=SurveyOccasion.QUARTERLY,
        )
        for days in (10, 100)
        if rng.random() < 0.7
    ]
    for kind, chance, low, high, occasion in (
        (SurveyKind.SATISFACTION, 0.4, 2, 5, SurveyOccasion.POST_DELIVERY),
        (SurveyKind.CES, 0.3, 3, 7, SurveyOccasion.AD_HOC),
    ):
        if rng.random() < chance:
            at = now - timedelta(days=rng.randint(1, 80))
            answers.append(
                Answer(customer_id, kind, rng.randint(low, high), None, at, occasion=occasion)
            )
    return answers
