"""The default role matrix: what each default role may do with every guarded field and
operation of the schema. ``baton policy matrix`` prints it; the permissions guide embeds it.

The schema's objects are given by name (``core.api.guard.policy_objects`` lists them), so
authorisation does not depend on the API layer."""

from __future__ import annotations

from collections.abc import Sequence

import casbin

from core.authz.defaults import ASSIGNABLE_ROLES, DEFAULT_ROLES, default_policy_lines
from core.authz.model import casbin_model
from core.authz.view import PermissionView
from core.plugins import Plugin


def default_views(plugins: Sequence[Plugin] = ()) -> dict[str, PermissionView]:
    """Each assignable default role's view, computed by Casbin from the default lines (the
    core's and the ``plugins``')."""
    enforcer = casbin.Enforcer(casbin_model())
    lines = default_policy_lines() + [line for p in plugins for line in p.policy_lines()]
    for ptype, v0, v1, v2 in lines:
        if ptype == "g":
            enforcer.add_grouping_policy(v0, v1)
        else:
            enforcer.add_policy(v0, v1, v2)
    return {
        role: PermissionView.compile(
            [role], [(obj, act) for _, obj, act in enforcer.get_implicit_permissions_for_user(role)]
        )
        for role in ASSIGNABLE_ROLES
    }


def cell(view: PermissionView, obj: str, *, operation: bool) -> str:
    """``call``/``-`` for an operation; ``R``, ``W``, ``RW`` or ``-`` for a field."""
    if operation:
        return "call" if view.allows(obj, "call") else "-"
    access = ("R" if view.allows(obj, "read") else "") + ("W" if view.allows(obj, "write") else "")
    return access or "-"


def matrix_markdown(
    fields: Sequence[str], operations: Sequence[str], views: dict[str, PermissionView]
) -> str:
    """The role tables as Markdown: scopes and inheritance, then the ``operations``
    (``Query.customers``) and the guarded ``fields`` (``Customer.name``), each sorted."""
    roles = list(views)
    head = "| | " + " | ".join(f"`{r}`" for r in roles) + " |\n|---|" + "---|" * len(roles) + "\n"
    scopes = "| scope | " + " | ".join(views[r].scope.name for r in roles) + " |\n"
    inherits = (
        "| inherits | "
        + " | ".join(", ".join(f"`{p}`" for p in DEFAULT_ROLES[r][0]) or "-" for r in roles)
        + " |\n"
    )
    ops = "".join(
        f"| `{op}` | " + " | ".join(cell(views[r], op, operation=True) for r in roles) + " |\n"
        for op in sorted(operations)
    )
    rows = "".join(
        f"| `{obj}` | " + " | ".join(cell(views[r], obj, operation=False) for r in roles) + " |\n"
        for obj in sorted(fields)
    )
    return (
        f"### Roles\n\n{head}{scopes}{inherits}\n### Operations\n\n{head}{ops}\n"
        f"### Fields\n\n{head}{rows}"
    )
