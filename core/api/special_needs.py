"""Typed GraphQL for plugin special needs, built once per schema from the plugins' field specs.

``Customer.specialNeeds.<plugin>`` is an object type ``<Plugin>SpecialNeeds`` with one typed,
nullable field per ``FieldSpec``; ``specialNeeds: { <plugin>: {...} }`` on the customer inputs
is a matching input type. Input types are real strawberry inputs (``create_type(is_input=True)``)
so their values reach the resolver.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date
from enum import Enum
from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.annotation import StrawberryAnnotation
from strawberry.tools import create_type
from strawberry.types.field import StrawberryField

from core.plugins import Plugin, camel, pascal, special_needs_type
from core.services.special_needs import SpecialNeeds, from_json
from sdk.specs import FieldSpec

SCALARS: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "date": date}


@dataclasses.dataclass(frozen=True)
class SpecialNeedsTypes:
    """The container types of one schema: ``SpecialNeeds`` and ``SpecialNeedsInput``."""

    output: type
    input: type
    plugins: tuple[Plugin, ...]

    def value(self, stored: SpecialNeeds) -> Any:
        """The ``SpecialNeeds`` object for a customer's stored special needs."""
        return self.output(
            **{p.name: _plugin_object(self.output, p, stored.get(p.name, {})) for p in self.plugins}
        )


def build_types(plugins: Sequence[Plugin]) -> SpecialNeedsTypes | None:
    """The special-needs types for the plugins that declare fields (None if none does)."""
    with_fields = tuple(p for p in plugins if p.fields)
    if not with_fields:
        return None
    outputs, inputs = [], []
    for plugin in with_fields:
        enums = {f.name: _enum(plugin, f) for f in plugin.fields if f.choices}
        outputs.append(_plugin_type(plugin, enums, is_input=False))
        inputs.append(_plugin_type(plugin, enums, is_input=True))
    output = create_type(
        "SpecialNeeds",
        [
            _field(p.name, t, f"Special needs from the {p.name} plugin.", default=None)
            for p, t in zip(with_fields, outputs, strict=True)
        ],
        description="Typed special needs, one object per plugin; each field is authorised.",
    )
    output.authz_exempt = True  # type: ignore[attr-defined]  # carries the plugin objects
    output.plugin_types = dict(  # type: ignore[attr-defined]
        zip((p.name for p in with_fields), outputs, strict=True)
    )
    input_ = create_type(
        "SpecialNeedsInput",
        [
            _field(
                p.name,
                t | None,
                f"Set {p.name} fields; omitted ones stay, null clears (null here clears all).",
                default=UNSET,
            )
            for p, t in zip(with_fields, inputs, strict=True)
        ],
        is_input=True,
        description="Plugin special needs to change.",
    )
    input_.plugin_inputs = dict(  # type: ignore[attr-defined]
        zip((p.name for p in with_fields), inputs, strict=True)
    )
    return SpecialNeedsTypes(output, input_, with_fields)


def _enum(plugin: Plugin, spec: FieldSpec) -> type[Enum]:
    values = Enum(  # type: ignore[misc]  # a functional Enum with a computed name
        f"{pascal(plugin.name)}{pascal(spec.name)}", {c: c for c in spec.choices}
    )
    return strawberry.enum(values, description=spec.description)


def _plugin_type(plugin: Plugin, enums: dict[str, type[Enum]], *, is_input: bool) -> type:
    fields = []
    for spec in plugin.fields:
        if spec.type == "list[str]":
            annotation: Any = list[enums.get(spec.name, str)]  # type: ignore[misc]
        else:
            annotation = enums.get(spec.name) or SCALARS[spec.type]
        fields.append(
            _field(
                spec.name,
                annotation | None,
                _describe(spec, plugin),
                default=UNSET if is_input else None,
            )
        )
    name = special_needs_type(plugin.name) + ("Input" if is_input else "")
    cls = create_type(name, fields, is_input=is_input, description=f"{plugin.name} special needs.")
    cls.enums = enums  # type: ignore[attr-defined]
    return cls


def _describe(spec: FieldSpec, plugin: Plugin) -> str:
    notes = [spec.description]
    if spec.required:
        notes.append("Required once any of this plugin's fields is set.")
    if spec.sensitive:
        notes.append(f"Sensitive: readable only where {plugin.type_name}.{camel(spec.name)} is.")
    return " ".join(notes)


def _field(name: str, annotation: Any, description: str, *, default: Any) -> StrawberryField:
    return StrawberryField(
        python_name=name,
        graphql_name=None,  # camelCased by the schema's name converter
        type_annotation=StrawberryAnnotation(annotation),
        description=description,
        default=default,
    )


def _plugin_object(container: Any, plugin: Plugin, stored: Mapping[str, Any]) -> Any:
    cls = container.plugin_types[plugin.name]
    values = {}
    for spec in plugin.fields:
        value = from_json(spec, stored.get(spec.name))
        enum = cls.enums.get(spec.name)
        if enum is not None and value is not None:
            value = [enum(v) for v in value] if spec.type == "list[str]" else enum(value)
        elif isinstance(value, tuple):
            value = list(value)
        values[spec.name] = value
    return cls(**values)


def given_needs(special_needs: Any) -> dict[str, dict[str, Any]]:
    """What a ``SpecialNeedsInput`` sets, as plugin → field → plain value."""
    if special_needs is UNSET or special_needs is None:
        return {}
    result: dict[str, dict[str, Any]] = {}
    for plugin_field in dataclasses.fields(special_needs):
        values = getattr(special_needs, plugin_field.name)
        if values is UNSET:
            continue
        if values is None:  # clear every field of the plugin
            plugin_input = type(special_needs).plugin_inputs[plugin_field.name]
            result[plugin_field.name] = {f.name: None for f in dataclasses.fields(plugin_input)}
            continue
        result[plugin_field.name] = {
            f.name: _plain(getattr(values, f.name))
            for f in dataclasses.fields(values)
            if getattr(values, f.name) is not UNSET
        }
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def needs_writes(needs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The policy objects a write of ``needs`` touches: type → GraphQL field names."""
    return {
        special_needs_type(plugin): [camel(f) for f in fields] for plugin, fields in needs.items()
    }


def with_special_needs(base: type, types: SpecialNeedsTypes) -> type:
    """``base`` (a customer input) with a typed ``specialNeeds`` field, under the same name."""
    graphql_name = base.__strawberry_definition__.name  # type: ignore[attr-defined]
    namespace = {
        "__annotations__": {"special_needs": types.input | None},
        "special_needs": strawberry.field(
            default=UNSET, description="Plugin special needs (partial per field)."
        ),
    }
    cls = type(base.__name__, (base,), namespace)
    cls.__module__ = base.__module__
    return strawberry.input(cls, name=graphql_name)
