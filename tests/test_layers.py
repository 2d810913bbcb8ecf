"""The layers stay clean: a module imports only from its own layer or the layers below.

domain → db/sdk → authz/plugins → services → api → app → cli (ARCHITECTURE.md). Services are
free of GraphQL, and authorisation never reaches up into the API that it protects.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Rank of each room (a package or a top-level module of core/, or sdk/plugins): an import may
# go to an equal or lower rank only.
RANKS = {
    "core": 0,
    "core.errors": 0,
    "core.ids": 0,
    "core.lru": 0,
    "core.clock": 0,
    "core.calendar": 0,
    "core.config": 0,
    "core.logs": 0,
    "core.metrics": 0,
    "core.domain": 0,
    "core.db": 1,
    "sdk": 1,
    "core.authz": 2,
    "core.plugins": 2,
    "plugins": 2,
    "core.services": 3,
    "core.insight": 3,
    "core.notify": 3,
    # Below the faces: the address guard, the health sweep, the connection leases.
    "core.notify.addresses": 3,
    "core.notify.risk": 3,
    "core.notify.connections": 3,
    # The notify room's faces: GraphQL types, the WebSocket transport, CLI commands.
    "core.notify.subscriptions_api": 4,
    "core.notify.webhooks_api": 4,
    "core.notify.subscriptions_ws": 5,
    "core.notify.webhooks_cli": 6,
    "core.demo": 4,
    "core.scaffold": 4,
    "core.api": 4,
    "core.identity": 4,  # tokens → users: reads and provisions users through the services
    "core.http_security": 4,
    "core.web": 5,
    "core.web.pages": 4,  # static pages only: /graphql serves GraphiQL's from it
    "core.schema_compat": 5,  # the published-schema check: builds the whole schema
    "core.app": 5,
    "core.cli": 6,
    "core.cli_imports": 6,
    "core.cli_insight": 6,
    "core.cli_access": 6,
    "core.cli_records": 6,
    "core.cli_support": 6,
    "core.serving": 6,  # `baton serve --workers`: uvicorn's supervisor, a socket per worker
    "sdk.testing": 6,  # partners' pytest plugin: runs the whole app
}
# Libraries that belong to the API layer only.
GRAPHQL = ("strawberry", "graphql")


def room(module: str) -> str | None:
    """The room of a dotted module name, e.g. ``core.api.guard`` → ``core.api``."""
    parts = module.split(".")
    for size in (3, 2, 1):
        name = ".".join(parts[:size])
        if name in RANKS and (name != "core" or module == "core"):
            return name
    return None


def modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("core", "sdk", "plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # migrations stand alone and must not import the live code
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((dotted.removesuffix(".__init__"), path))
    return found


def imports(path: Path, module: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level]
                names.append(".".join([*base, node.module or ""]).rstrip("."))
            elif node.module:
                names.append(node.module)
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=lambda v: str(v))
def test_imports_go_down_the_layers(module: str, path: Path) -> None:
    own = room(module)
    assert own is not None, f"{module}: add its room to RANKS in {Path(__file__).name}"
    upward = [
        name
        for name in imports(path, module)
        if (target := room(name)) is not None and RANKS[target] > RANKS[own]
    ]
    assert upward == [], f"{module} imports from a higher layer"


@pytest.mark.parametrize(
    ("module", "path"),
    [m for m in modules() if room(m[0]) in ("core.services", "core.insight")],
    ids=str,
)
def test_services_are_free_of_graphql(module: str, path: Path) -> None:
    assert [n for n in imports(path, module) if n.split(".")[0] in GRAPHQL] == []
