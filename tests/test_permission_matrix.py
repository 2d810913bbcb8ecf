"""The golden matrix: every (default role x field x read/write) and (role x operation x call)
decision of the running system equals the table documented in docs/admin/permissions.md."""

from __future__ import annotations

import re
from pathlib import Path

from core.api.guard import guarded_fields, operations, policy_objects
from core.api.schema import build_schema
from core.authz.defaults import ASSIGNABLE_ROLES
from core.authz.matrix import default_views, matrix_markdown
from core.plugins import builtin_plugins
from core.services import Actor, Services

BUILTINS = builtin_plugins()

GUIDE = Path(__file__).parents[1] / "docs" / "admin" / "permissions.md"
SCHEMA = build_schema(BUILTINS)._schema


def documented() -> tuple[str, dict[str, dict[str, str]]]:
    """The generated block of the guide, and its cells: object → role → cell."""
    text = GUIDE.read_text()
    block = text.split("<!-- matrix:start -->\n", 1)[1].split("<!-- matrix:end -->", 1)[0]
    cells: dict[str, dict[str, str]] = {}
    roles: list[str] = []
    for line in block.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if line.startswith("| |"):
            roles = [p.strip("`") for p in parts[1:]]
        elif (m := re.fullmatch(r"`(.+)`", parts[0])) and roles:
            cells[m.group(1)] = dict(zip(roles, parts[1:], strict=True))
    return block, cells


def test_the_guide_shows_the_table_the_code_generates() -> None:
    block, _ = documented()
    assert block == matrix_markdown(*policy_objects(SCHEMA), default_views(BUILTINS.plugins)), (
        "run `baton policy matrix`"
    )


def test_the_table_covers_every_guarded_field_and_operation() -> None:
    _, cells = documented()
    expected = {f"{t}.{f}" for t, f, _ in guarded_fields(SCHEMA)} | set(operations(SCHEMA))
    assert set(cells) == expected
    assert all(set(row) == set(ASSIGNABLE_ROLES) for row in cells.values())


async def test_running_system_decides_as_documented(services: Services) -> None:
    """Views come from the real policy store: default lines in the database, Casbin roles."""
    _, cells = documented()
    views = {}
    for role in ASSIGNABLE_ROLES:
        await services.users.create(
            Actor.system(), f"u.{role.replace('_', '-')}", role, roles=[role]
        )
        views[role] = await services.authz.view_for(f"u.{role.replace('_', '-')}")
    operation_names = set(operations(SCHEMA))
    mismatches = []
    for obj, row in cells.items():
        for role, documented_cell in row.items():
            view = views[role]
            if obj in operation_names:
                actual = "call" if view.allows(obj, "call") else "-"
            else:
                actual = ("R" if view.allows(obj, "read") else "") + (
                    "W" if view.allows(obj, "write") else ""
                ) or "-"
            if actual != documented_cell:
                mismatches.append((role, obj, documented_cell, actual))
    assert mismatches == []


def test_contract_minimums_hold() -> None:
    views = default_views(BUILTINS.plugins)
    finance, manager, auditor = views["finance"], views["account_manager"], views["auditor"]
    for field in (
        "name",
        "kind",
        "industry",
        "territory",
        "paymentTermsDays",
        "paymentMethod",
        "invoiceRequirements",
    ):
        assert finance.can_read("Customer", field), field
    for field in ("annualRevenue", "profitContribution", "contacts", "owner", "valueTier"):
        assert not finance.can_read("Customer", field), field
    customer_fields = [f for t, f, _ in guarded_fields(SCHEMA) if t == "Customer"]
    assert all(
        manager.allows(f"Customer.{f}", "read") and manager.allows(f"Customer.{f}", "write")
        for f in customer_fields
    )
    assert auditor.allows("Query.auditLog", "call") and auditor.allows("AuditEntry.at", "read")
    assert {f for f in customer_fields if auditor.can_read("Customer", f)} == {
        "name",
        "kind",
        "industry",
        "territory",
    }
    assert (finance.scope.name, manager.scope.name, views["team_manager"].scope.name) == (
        "ALL",
        "OWN",
        "TEAM",
    )
