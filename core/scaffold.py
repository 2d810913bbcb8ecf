"""``baton plugin new NAME``: an installable plugin package whose tests pass out of the box."""

from __future__ import annotations

import re
from pathlib import Path

from core.plugins import PLUGIN_NAME, camel, special_needs_type

PYPROJECT = """\
[build-system]
requires = ["setuptools>=70"]
build-backend = "setuptools.build_meta"

[project]
name = "baton-{dash}"
version = "0.1.0"
description = "Baton plugin: {name} special needs."
requires-python = ">=3.11"
dependencies = ["baton"]

[project.entry-points."baton.plugins"]
{name} = "baton_{name}"

[tool.setuptools]
packages = ["baton_{name}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

MODULE = '''\
"""{title}: the special needs, tier criteria and policies of the {name} industry."""

from __future__ import annotations

from sdk import CustomerSnapshot, FieldSpec, PolicyGrant, TierCriterion, TierVote, hookimpl

__version__ = "0.1.0"
BATON_REQUIRES = ">=0.1,<1"


@hookimpl
def baton_special_needs_fields() -> list[FieldSpec]:
    return [
        FieldSpec("contract_reference", "str", "The framework contract number.", max=40),
        FieldSpec("service_level", "enum", "Agreed service level.", choices=("GOLD", "SILVER")),
        FieldSpec("audit_due", "date", "When the next supplier audit is due.", sensitive=True),
    ]


@hookimpl
def baton_tier_criteria() -> list[TierCriterion]:
    def gold_service(c: CustomerSnapshot) -> TierVote | None:
        if c.special_needs.get("{name}", {{}}).get("service_level") == "GOLD":
            return TierVote("HIGH", "gold service level")
        return None

    return [TierCriterion("gold_service", "value", "Gold customers are high value.", gold_service)]


@hookimpl
def baton_default_policies() -> list[PolicyGrant]:
    return [
        PolicyGrant("account_manager", "{type_name}.*", "read"),
        PolicyGrant("account_manager", "{type_name}.*", "write"),
        PolicyGrant("finance", "{type_name}.contractReference", "read"),
    ]
'''

TESTS = '''\
"""The plugin contract from ``sdk.testing``: hooks, schema, permissions, round trip."""

from __future__ import annotations

from typing import Any, ClassVar

from sdk.testing import BatonHarness, PluginContract


class Test{title}Contract(PluginContract):
    plugin = "{name}"
    sample: ClassVar[dict[str, Any]] = {{
        "contractReference": "FC-2026-001",
        "serviceLevel": "GOLD",
        "auditDue": "2027-05-01",
    }}


def test_gold_service_lifts_the_value_tier_to_high(baton_harness: BatonHarness) -> None:
    created = baton_harness.data(
        "admin",
        """mutation {{ createCustomer(input: {{name: "Gold", lifecycleStage: ACTIVE,
          specialNeeds: {{{camel_name}: {{serviceLevel: GOLD}}}}}}) {{ customer {{ id }} }} }}""",
    )
    baton_harness.data("admin", "mutation {{ runTierReview(input: {{}}) {{ reviewed }} }}")
    data = baton_harness.data(
        "admin",
        "query($id: ID!) {{ customer(id: $id) {{ valueTier }} }}",
        {{"id": created["createCustomer"]["customer"]["id"]}},
    )
    assert data["customer"]["valueTier"] == "HIGH"
'''

README = """\
# baton-{dash}

A Baton plugin. Install it next to Baton (`pip install -e .`), restart Baton, and
`baton plugins` lists `{name}`; its fields appear as `Customer.specialNeeds.{camel_name}`.

Test it against the real Baton: `pytest` (the `sdk.testing` fixtures load automatically).
"""


def scaffold(name: str, directory: Path) -> Path:
    """Write the package ``baton-<name>`` under ``directory``; returns its root."""
    if not PLUGIN_NAME.match(name):
        raise ValueError("a plugin name is 1-40 lower-case letters, digits or '_'")
    root = directory / f"baton-{name.replace('_', '-')}"
    if root.exists():
        raise FileExistsError(f"{root} exists already")
    values = {
        "name": name,
        "dash": name.replace("_", "-"),
        "title": re.sub(r"(^|_)(\w)", lambda m: m.group(2).upper(), name),
        "type_name": special_needs_type(name),
        "camel_name": camel(name),
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"baton_{name}/__init__.py": MODULE,
        "tests/test_contract.py": TESTS,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
    return root
