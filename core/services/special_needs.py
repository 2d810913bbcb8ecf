"""Plugin special needs: validated by their ``FieldSpec``, stored as JSON, audited field by field.

Stored shape: plugin name → field name → JSON value (dates as ISO strings). An update is
partial per field: omitted fields stay, an explicit None clears.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from core.errors import BadUserInput, FieldError
from core.plugins import Plugin, camel, special_needs_type
from sdk.specs import FieldSpec

SpecialNeeds = Mapping[str, Mapping[str, Any]]


def audit_name(plugin: str, spec_name: str) -> str:
    """The audit (and error) name of a plugin field: ``specialNeeds.banking.riskTolerance``."""
    return f"specialNeeds.{plugin}.{camel(spec_name)}"


def policy_object(entity_type: str, field: str) -> tuple[str, str]:
    """The ``(type, field)`` whose read permission guards an audited field's values: the
    inverse of ``audit_name`` for plugin fields, the field itself otherwise."""
    if field.startswith("specialNeeds."):
        _, plugin, name = field.split(".", 2)
        return special_needs_type(plugin), name
    return entity_type, field


def check(spec: FieldSpec, value: Any) -> str | None:
    """Why ``value`` does not fit ``spec``, or None."""
    if value is None:
        return None
    kind = spec.type
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return _bounds(spec, value, "")
    if kind == "float":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return "must be a finite number"
        return _bounds(spec, value, "")
    if kind == "date":
        return None if isinstance(value, date) else "must be a date (YYYY-MM-DD)"
    if kind == "enum":
        return None if value in spec.choices else f"must be one of {', '.join(spec.choices)}"
    if kind == "str":
        if not isinstance(value, str):
            return "must be text"
        return _bounds(spec, len(value), " characters") or _pattern(spec, value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be a list of text"
    if len(set(value)) != len(value):
        return "entries must be unique"
    if spec.choices and (bad := [v for v in value if v not in spec.choices]):
        return f"{', '.join(bad)} not among {', '.join(spec.choices)}"
    return _bounds(spec, len(value), " entries") or next(
        (r for v in value if (r := _pattern(spec, v))), None
    )


def _bounds(spec: FieldSpec, size: float, unit: str) -> str | None:
    if spec.min is not None and size < spec.min:
        return f"must be at least {_number(spec.min)}{unit}"
    if spec.max is not None and size > spec.max:
        return f"must be at most {_number(spec.max)}{unit}"
    return None


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _pattern(spec: FieldSpec, value: str) -> str | None:
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        return f"must match {spec.pattern}"
    return None


def to_json(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.type == "date":
        return value.isoformat()
    if spec.type == "list[str]":
        return list(value)
    return value


def from_json(spec: FieldSpec, value: Any) -> Any:
    """The typed value of a stored one (what plugins and resolvers see)."""
    if value is None:
        return None
    if spec.type == "date":
        return date.fromisoformat(value)
    if spec.type == "list[str]":
        return tuple(value)
    return value


def typed(plugins: Sequence[Plugin], stored: SpecialNeeds) -> dict[str, dict[str, Any]]:
    """Every plugin's fields as typed values (a plugin's unknown stored keys left out)."""
    return {
        p.name: {f.name: from_json(f, stored.get(p.name, {}).get(f.name)) for f in p.fields}
        for p in plugins
        if p.fields
    }


def flat(plugins: Sequence[Plugin], stored: SpecialNeeds) -> dict[str, Any]:
    """``specialNeeds.<plugin>.<field>`` → stored value, for audit diffs."""
    return {
        audit_name(p.name, name): value
        for p in plugins
        for name, value in stored.get(p.name, {}).items()
        if value is not None and p.field(name) is not None
    }


def merge(
    plugins: Sequence[Plugin], stored: SpecialNeeds, changes: SpecialNeeds
) -> dict[str, dict[str, Any]]:
    """The special needs after applying ``changes``; BAD_USER_INPUT names every bad field."""
    by_name = {p.name: p for p in plugins}
    result = {name: dict(values) for name, values in stored.items()}
    errors = []
    for plugin_name, values in changes.items():
        plugin = by_name.get(plugin_name)
        if plugin is None:
            errors.append(FieldError(f"specialNeeds.{plugin_name}", "no plugin has this name"))
            continue
        current = result.setdefault(plugin_name, {})
        for name, value in values.items():
            spec = plugin.field(name)
            if spec is None:
                errors.append(FieldError(audit_name(plugin_name, name), "is not a field"))
            elif reason := check(spec, value):
                errors.append(FieldError(audit_name(plugin_name, name), reason))
            elif value is None:
                current.pop(name, None)
            else:
                current[name] = to_json(spec, value)
        if current:
            errors += [
                FieldError(audit_name(plugin_name, f.name), "is required")
                for f in plugin.fields
                if f.required and current.get(f.name) is None
            ]
        else:
            result.pop(plugin_name)
    if errors:
        raise BadUserInput(errors)
    return result
