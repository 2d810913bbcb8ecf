"""Every error code the server can send is documented in the frontend guide's error table.

The emitted codes come from the code itself: ``core.errors.ErrorCode`` is the one registry
(``BatonError.code`` and ``http_error`` are typed with it, so mypy holds every raise site to
it), and a scan of ``core/`` finds any code written as a bare string instead.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from core.errors import BatonError, ErrorCode

ROOT = Path(__file__).parents[1]
GUIDE = ROOT / "docs" / "frontend" / "graphql.md"


def documented_codes(text: str) -> set[str]:
    """The codes in the first column of the table under ``## Errors``."""
    section = text.split("\n## Errors", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, re.M))


def bare_codes(source: str) -> list[tuple[int, str]]:
    """Error codes written as string literals where an ``ErrorCode`` belongs: a ``"code"`` key
    of a dict, a ``code = …`` assignment, or the code argument of ``http_error`` /
    ``error_response``."""
    found = []

    def check(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code":
                    check(value)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name | ast.Attribute) and _name(t) == "code" for t in targets):
                check(node.value)
        elif isinstance(node, ast.Call) and _name(node.func) in ("http_error", "error_response"):
            if len(node.args) > 1:
                check(node.args[1])
            for keyword in node.keywords:
                if keyword.arg == "code":
                    check(keyword.value)
    return found


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def test_every_code_the_server_sends_is_in_the_error_table() -> None:
    documented = documented_codes(GUIDE.read_text())
    missing = sorted(set(ErrorCode) - documented)
    assert not missing, (
        f"add these codes to the error table of {GUIDE.relative_to(ROOT)}: {missing}"
    )
    stale = sorted(documented - set(ErrorCode))
    assert not stale, f"the error table lists codes the server never sends: {stale}"


def test_codes_are_named_through_the_registry_only() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for line, value in bare_codes(path.read_text())
    ]
    assert not bare, "use core.errors.ErrorCode (and document the code) instead of: " + str(bare)


def test_every_domain_error_carries_a_registered_code() -> None:
    def subclasses(cls: type[BatonError]) -> list[type[BatonError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    import core.app  # noqa: F401  (imports every module that defines an error)

    assert all(isinstance(cls.code, ErrorCode) for cls in subclasses(BatonError))


def test_the_scan_finds_a_bare_code() -> None:
    """The scan itself: a new code written as a string is caught wherever it is written."""
    source = (
        "class Gone(BatonError):\n    code = 'GONE'\n"
        "body = {'errors': [{'extensions': {'code': 'TEAPOT'}}]}\n"
        "error_response('no', 'NOPE', 418, None)\n"
        "ok = {'code': ErrorCode.CONFLICT}\n"
    )
    assert sorted(bare_codes(source)) == [(2, "GONE"), (3, "TEAPOT"), (4, "NOPE")]


def test_the_table_reader_sees_an_undocumented_code() -> None:
    text = "# Guide\n\n## Errors\n\n| code | when |\n|---|---|\n| `NOT_FOUND` | gone |\n\n## Next\n"
    assert documented_codes(text) == {"NOT_FOUND"}
    assert set(ErrorCode) - documented_codes(text)
