"""The schema cannot break by accident: a break of the released schema needs its CHANGELOG line."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import build_schema

from core.api.schema import build_schema as build_served
from core.plugins import builtin_plugins
from core.schema_compat import CHANGELOG, RELEASED, check, check_repository

ROOT = Path(__file__).parents[1]
RELEASED_SDL = "type Query { a: String, b(first: Int = 5): Int, c: [String] }"
SERVED = build_schema("type Query { a: String, b(first: Int = 20): Int, c: String }")
BREAKS = [
    "Field Query.c changed type from [String] to String.",
]


def changelog(*sections: str) -> str:
    return "# Changelog\n\n" + "\n".join(sections)


def test_the_served_schema_breaks_the_release_only_as_the_changelog_says() -> None:
    report = check_repository(ROOT)
    assert report.ok, report.message()


def test_an_unlisted_break_fails_and_says_what_line_to_add() -> None:
    report = check(RELEASED_SDL, SERVED, changelog("## Unreleased\n\n### Added\n- `c` gets one.\n"))
    assert not report.ok
    assert report.unlisted == BREAKS
    message = report.message()
    assert "### Breaking\n- `Field Query.c changed type from [String] to String.`" in message
    assert str(CHANGELOG) in message
    assert "Query.b(first:) has changed defaultValue from 5 to 20." in message  # dangerous


def test_the_break_passes_once_listed_under_the_coming_version() -> None:
    listed = (
        "## Unreleased\n\n### Breaking\n- `Field Query.c changed type from [String] to\n"
        "  String.` Read the one value.\n\n### Added\n- more\n"
    )
    report = check(RELEASED_SDL, SERVED, changelog(listed))
    assert report.ok, report.message()
    assert report.breaking == BREAKS


def test_a_break_listed_under_an_older_version_or_section_does_not_count() -> None:
    entry = "- `Field Query.c changed type from [String] to String.`\n"
    older = changelog("## Unreleased\n\n### Added\n- x\n", "## 0.1.0\n\n### Breaking\n" + entry)
    assert not check(RELEASED_SDL, SERVED, older).ok
    elsewhere = changelog("## Unreleased\n\n### Changed\n" + entry)
    assert not check(RELEASED_SDL, SERVED, elsewhere).ok


def test_each_break_of_this_release_needs_its_own_entry() -> None:
    """Dropping any one real entry from CHANGELOG.md fails the real check, naming it."""
    text = (ROOT / CHANGELOG).read_text()
    served = build_served(builtin_plugins())._schema
    released = (ROOT / RELEASED).read_text()
    # Empty right after a release (released.graphql then equals the served schema).
    for change in check(released, served, text).breaking:
        # The entry as written, possibly wrapped over lines.
        entry = re.search(r"`" + r"\s+".join(map(re.escape, change.split())) + r"`", text)
        assert entry is not None, change
        report = check(released, served, text[: entry.start()] + text[entry.end() :])
        assert report.unlisted == [change]
