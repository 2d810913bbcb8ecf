"""The default roles, what they may do, and their customer scope (installed on first start)."""

from __future__ import annotations

from enum import IntEnum


class Scope(IntEnum):
    """Which customers a role reaches; a user with several roles gets the widest."""

    NONE = 0
    OWN = 1
    TEAM = 2
    ALL = 3


# Scope is stored as a policy line too: ``p, account_manager, Customer, scope:OWN``.
SCOPE_OBJECT = "Customer"
SCOPE_ACTION_PREFIX = "scope:"

CUSTOMER_IDENTITY = ("name", "kind", "industry", "territory")
PAYMENT_FIELDS = ("paymentTermsDays", "paymentMethod", "invoiceRequirements")
SERVICE_FIELDS = (
    "contacts",
    "communicationPreference",
    "lifecycleStage",
    "needsTier",
    "owner",
    "backupOwner",
    "firstContact",
    "surveys",
)
USER_BASICS = ("name", "email", "team", "active", "manager")
CUSTOMER_QUERIES = ("Query.customer", "Query.customers")
HEALTH = [
    ("CustomerHealth.*", "read"),
    ("RiskWarning.*", "read"),
    ("HealthIndicator.*", "read"),
    ("Survey.*", "read"),
]
# Finance sees the payment indicator and nothing else of a customer's health.
FINANCE_HEALTH = [
    ("CustomerHealth.indicators", "read"),
    ("HealthIndicator.paymentPunctuality", "read"),
]


def _read(*objects: str) -> list[tuple[str, str]]:
    return [(o, "read") for o in objects]


def _call(*operations: str) -> list[tuple[str, str]]:
    return [(o, "call") for o in operations]


def _customer(fields: tuple[str, ...]) -> list[str]:
    return [f"Customer.{f}" for f in fields]


# role → (roles it inherits, its own permissions, its scope or None to inherit)
DEFAULT_ROLES: dict[str, tuple[tuple[str, ...], list[tuple[str, str]], Scope | None]] = {
    "staff": (
        (),
        _read(*[f"User.{f}" for f in USER_BASICS])
        + _call("Query.viewer", "Query.node", "Query.user", "Query.users", "Query.plugins"),
        None,
    ),
    "account_manager": (
        ("staff",),
        [
            ("Customer.*", "read"),
            ("Customer.*", "write"),
            ("Ownership.*", "read"),
            ("ReassignmentRequest.*", "read"),
            ("Handover.*", "read"),
            *HEALTH,
            *_call(
                *CUSTOMER_QUERIES,
                "Query.riskWarnings",
                "Mutation.recordActivity",
                "Query.healthIndicators",
                "Query.rfmSegments",
                "Mutation.recordSurveyAnswer",
                "Query.ownerAt",
                "Query.reassignmentRequests",
                "Query.handovers",
                "Mutation.createCustomer",
                "Mutation.updateCustomer",
                "Mutation.requestReassignment",
                "Mutation.submitHandbook",
                "Mutation.recordHandoverMeeting",
                "Mutation.notifyCustomer",
                "Mutation.submitHandoverFeedback",
                "Mutation.moveCustomer",
                "Query.groupReassignmentPreview",
                "Mutation.requestGroupReassignment",
                "Mutation.addTeamMember",
                "Mutation.removeTeamMember",
            ),
        ],
        Scope.OWN,
    ),
    "team_manager": (
        ("account_manager",),
        [
            ("User.*", "read"),
            ("AssignmentRule.*", "read"),
            ("WorkflowEvent.*", "read"),
            *_call(
                "Query.workflowEvents",
                "Mutation.assignOwner",
                "Mutation.reviewReassignment",
                "Mutation.reviewHandbook",
                "Mutation.completeHandover",
                "Mutation.recordSatisfaction",
                "Mutation.cancelHandover",
                "Query.explainAssignment",
                "Query.assignmentRules",
                "Query.lintAssignmentRules",
                "Query.npsReport",
                "Query.retentionKpis",
                "Query.portfolio",
                "Mutation.overrideTier",
                "Mutation.clearTierOverride",
            ),
        ],
        Scope.TEAM,
    ),
    "sales_director": (
        ("team_manager",),
        _call(
            "Query.previewAssignment",
            "Mutation.runAssignment",
            "Mutation.runTierReview",
            "Mutation.setGroupDirector",
        ),
        Scope.ALL,
    ),
    "finance": (
        ("staff",),
        _read(*_customer(CUSTOMER_IDENTITY + PAYMENT_FIELDS))
        + [(f, "write") for f in _customer(PAYMENT_FIELDS)]
        + FINANCE_HEALTH
        + _call(*CUSTOMER_QUERIES, "Mutation.updateCustomer", "Query.healthIndicators"),
        Scope.ALL,
    ),
    "customer_service": (
        ("staff",),
        _read(*_customer(CUSTOMER_IDENTITY + SERVICE_FIELDS))
        + HEALTH
        + [("Customer.surveys", "write")]
        + _call(
            *CUSTOMER_QUERIES,
            "Query.ownerAt",
            "Query.riskWarnings",
            "Mutation.recordActivity",
            "Query.healthIndicators",
            "Mutation.recordSurveyAnswer",
        ),
        Scope.ALL,
    ),
    "auditor": (
        ("staff",),
        _read(*_customer(CUSTOMER_IDENTITY), "AuditEntry.*", "User.*", "WorkflowEvent.*")
        + _call(*CUSTOMER_QUERIES, "Query.auditLog", "Query.workflowEvents"),
        Scope.ALL,
    ),
    "admin": (
        (),
        [("*", "read"), ("*", "write"), ("*", "call")],
        Scope.ALL,
    ),
}

# Roles a user can be given; ``staff`` is only inherited.
ASSIGNABLE_ROLES = tuple(r for r in DEFAULT_ROLES if r != "staff")


def default_policy_lines() -> list[tuple[str, str, str, str]]:
    """Every default policy as ``(ptype, v0, v1, v2)`` rows for ``casbin_rule``."""
    lines: list[tuple[str, str, str, str]] = []
    for role, (parents, permissions, scope) in DEFAULT_ROLES.items():
        lines += [("g", role, parent, "") for parent in parents]
        lines += [("p", role, obj, act) for obj, act in permissions]
        if scope is not None:
            lines.append(("p", role, SCOPE_OBJECT, f"{SCOPE_ACTION_PREFIX}{scope.name}"))
    return lines


# Default lines a release added after databases got their defaults: each set is installed once
# on a database that already had defaults, when that release first starts (and marked as done
# on a new one), so upgraded installations get them too.
RELEASE_OBJECTS = {
    "core-insight": (
        "HealthIndicator.",
        "Survey.",
        "CustomerHealth.indicators",
        "Customer.surveys",
        "Query.healthIndicators",
        "Query.rfmSegments",
        "Query.npsReport",
        "Query.retentionKpis",
        "Query.portfolio",
        "Mutation.recordSurveyAnswer",
        "Mutation.overrideTier",
        "Mutation.clearTierOverride",
    ),
}


def release_lines(release: str) -> list[tuple[str, str, str, str]]:
    """The default policy lines ``release`` added (objects named, or under a ``Type.`` prefix)."""
    objects = RELEASE_OBJECTS[release]

    def added(obj: str) -> bool:
        return any(obj == o or (o.endswith(".") and obj.startswith(o)) for o in objects)

    return [line for line in default_policy_lines() if line[0] == "p" and added(line[2])]
