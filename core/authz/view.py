"""The per-request permission view: every field check is an O(1) lookup, never a Casbin call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from casbin.util.builtin_operators import key_match

from core.authz.defaults import SCOPE_ACTION_PREFIX, Scope
from core.errors import Forbidden


@dataclass(frozen=True)
class Permission:
    """One effective permission: an object pattern and an action."""

    object: str
    action: str


@dataclass
class PermissionView:
    """What a set of roles may do, compiled once and shared by every request with those roles.

    Decisions use Casbin's own ``keyMatch``, so they agree with ``enforce`` line for line.
    """

    roles: tuple[str, ...]
    permissions: frozenset[Permission]
    scope: Scope
    read_only: bool = False
    _memo: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    @classmethod
    def compile(cls, roles: Iterable[str], lines: Iterable[tuple[str, str]]) -> PermissionView:
        """Build the view from the effective ``(object, action)`` lines of the roles."""
        permissions = set()
        scope = Scope.NONE
        for obj, act in lines:
            if act.startswith(SCOPE_ACTION_PREFIX):
                scope = max(scope, Scope[act.removeprefix(SCOPE_ACTION_PREFIX)])
            else:
                permissions.add(Permission(obj, act))
        return cls(tuple(sorted(roles)), frozenset(permissions), scope)

    @classmethod
    def allow_all(cls) -> PermissionView:
        """Everything allowed: the system actor, and the benchmark's authorisation-off baseline."""
        everything = frozenset(Permission("*", a) for a in ("read", "write", "call"))
        return cls(("system",), everything, Scope.ALL)

    def as_read_only(self) -> PermissionView:
        """The same reads, without any write or mutation: what "see as" runs under."""
        return PermissionView(self.roles, self.permissions, self.scope, read_only=True)

    def allows(self, obj: str, action: str) -> bool:
        key = (obj, action)
        decision = self._memo.get(key)
        if decision is None:
            writes = action == "write" or (action == "call" and not obj.startswith("Query."))
            decision = not (self.read_only and writes) and any(
                p.action == action and key_match(obj, p.object) for p in self.permissions
            )
            self._memo[key] = decision
        return decision

    def can_read(self, type_name: str, field_name: str) -> bool:
        return self.allows(f"{type_name}.{field_name}", "read")

    def require_call(self, operation: str) -> None:
        """Raise FORBIDDEN unless the operation (``Mutation.createCustomer``) may be called."""
        if not self.allows(operation, "call"):
            raise Forbidden(f"Not allowed to call {operation}", object=operation)

    def require_write(self, type_name: str, fields: Iterable[str]) -> None:
        """Raise FORBIDDEN naming every field of ``type_name`` that may not be written."""
        denied = sorted(
            f"{type_name}.{f}" for f in fields if not self.allows(f"{type_name}.{f}", "write")
        )
        if denied:
            raise Forbidden(f"Not allowed to write {', '.join(denied)}", objects=denied)

    def require_read(self, type_name: str, fields: Iterable[str], purpose: str) -> None:
        """Raise FORBIDDEN when filtering, ordering or counting by fields the viewer cannot read."""
        denied = sorted(f"{type_name}.{f}" for f in fields if not self.can_read(type_name, f))
        if denied:
            raise Forbidden(f"Not allowed to {purpose} by {', '.join(denied)}", objects=denied)
