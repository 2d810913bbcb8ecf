"""The schema break check: the served schema against the schema as last released.

What we compare with: ``schema/released.graphql``, the SDL of the last release, which only the
release step changes (copy ``schema/schema.graphql`` over it when the ``## Unreleased`` section
of CHANGELOG.md gets its version number). ``schema/schema.graphql`` is no use here: a test
already keeps it equal to what the code builds, so anyone who re-exports it moves the baseline
along with the break.

A breaking change (graphql-core's ``find_breaking_changes``: a field removed or changed in
kind, a required argument added, …) fails the check unless it is listed in the coming
version's section of CHANGELOG.md (the first ``## `` section) under ``### Breaking``, as its
description in backticks, followed by what clients should do::

    ### Breaking
    - `Field Query.assignmentRules changed type from [AssignmentRule!] to
      AssignmentRuleConnection.` Read `assignmentRules { edges { node { … } } }`.

Dangerous changes (``find_dangerous_changes``: an enum value or optional argument added, a
default changed) are reported, never fatal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from graphql import (
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
)

RELEASED = Path("schema/released.graphql")
CHANGELOG = Path("CHANGELOG.md")
BREAKING_HEADING = "### Breaking"


@dataclass(frozen=True)
class CompatReport:
    """Breaking changes, those CHANGELOG.md does not list, and the dangerous changes."""

    breaking: list[str]
    unlisted: list[str]
    dangerous: list[str]

    @property
    def ok(self) -> bool:
        return not self.unlisted

    def message(self) -> str:
        """What to tell the developer: each unlisted break, and the exact lines to add."""
        lines = []
        if self.unlisted:
            lines += [
                f"The served schema breaks the released one ({RELEASED}) in "
                f"{len(self.unlisted)} way(s) that {CHANGELOG} does not list.",
                "If a break is intended, add these lines to the first section of "
                f"{CHANGELOG} (## Unreleased), under '{BREAKING_HEADING}', each followed by "
                "what clients should do instead:",
                "",
                BREAKING_HEADING,
                *(f"- `{change}`" for change in self.unlisted),
                "",
                "If it is not intended, keep the old field or argument (deprecate it with "
                "`deprecation_reason`) and add the new one beside it.",
            ]
        if self.dangerous:
            lines += ["Dangerous (allowed) changes:", *(f"  {d}" for d in self.dangerous)]
        return "\n".join(lines) if lines else "no breaking or dangerous schema changes"


def listed_breaks(changelog: str) -> set[str]:
    """The backticked descriptions under ``### Breaking`` in the first ``## `` section."""
    sections = re.split(r"^## ", changelog, flags=re.M)
    if len(sections) < 2:
        return set()
    coming = sections[1]
    breaking = coming.split(f"\n{BREAKING_HEADING}\n", 1)
    if len(breaking) < 2:
        return set()
    body = re.split(r"^### ", breaking[1], maxsplit=1, flags=re.M)[0]
    # A description may wrap over lines in the Markdown source.
    return {" ".join(text.split()) for text in re.findall(r"`([^`]+)`", body)}


def check(released_sdl: str, served: GraphQLSchema, changelog: str) -> CompatReport:
    """Compare ``served`` with the released SDL; a break is fine once CHANGELOG lists it."""
    released = build_schema(released_sdl)
    breaking = [c.description for c in find_breaking_changes(released, served)]
    dangerous = [c.description for c in find_dangerous_changes(released, served)]
    listed = listed_breaks(changelog)
    unlisted = [d for d in breaking if " ".join(d.split()) not in listed]
    return CompatReport(breaking, unlisted, dangerous)


def check_repository(root: Path = Path()) -> CompatReport:
    """The check over this checkout: the schema the code serves (built-in plugins, as
    exported), ``schema/released.graphql`` and ``CHANGELOG.md``."""
    from core.api.schema import build_schema as build_served
    from core.plugins import builtin_plugins

    served = build_served(builtin_plugins())._schema
    return check((root / RELEASED).read_text(), served, (root / CHANGELOG).read_text())


if __name__ == "__main__":  # python -m core.schema_compat
    report = check_repository()
    print(report.message())
    raise SystemExit(0 if report.ok else 1)
