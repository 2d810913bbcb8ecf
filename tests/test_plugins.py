"""Plugin loading: broken and colliding plugins fail start-up naming the plugin and the reason."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest

from core.app import create_app
from core.config import Settings
from core.plugins import PluginError, load_plugins, register
from sdk import AssignmentDimension, FieldSpec, PolicyGrant, hookimpl


def plugin(name: str = "acme", **hooks: Callable[..., Any]) -> tuple[str, types.ModuleType, None]:
    """A plugin module as a partner would write it, with these hook implementations."""
    module = types.ModuleType(f"{name}_plugin")
    for hook, function in hooks.items():
        setattr(module, hook, function)
    return name, module, None


def fields(*specs: FieldSpec) -> Callable[[], list[FieldSpec]]:
    return hookimpl(lambda: list(specs))


GOOD = FieldSpec("carbon_budget", "int", "Tonnes of CO2 a year.", min=0)


def refused(*modules: tuple[str, types.ModuleType, None]) -> str:
    with pytest.raises(PluginError) as caught:
        register(modules)
    return str(caught.value)


def test_a_good_plugin_loads_with_its_hooks() -> None:
    registry = register([plugin(baton_special_needs_fields=fields(GOOD))])
    (acme,) = registry.plugins
    assert (acme.name, acme.hooks, acme.type_name) == (
        "acme",
        ("baton_special_needs_fields",),
        "AcmeSpecialNeeds",
    )


@pytest.mark.parametrize(
    ("hooks", "reason"),
    [
        ({"baton_special_need_fields": fields(GOOD)}, "unknown hook 'baton_special_need_fields'"),
        ({"baton_special_needs_fields": lambda: [GOOD]}, "is not marked with @hookimpl"),
        ({"baton_special_needs_fields": hookimpl(lambda: "x")}, "must return a list of FieldSpec"),
        (
            {"baton_special_needs_fields": hookimpl(lambda: 1 / 0)},
            "baton_special_needs_fields raised ZeroDivisionError",
        ),
        (
            {"baton_special_needs_fields": fields(FieldSpec("tier", "enum", "A tier."))},
            "special-needs field 'tier': an enum needs choices",
        ),
        (
            {"baton_special_needs_fields": fields(GOOD, GOOD)},
            "special-needs field 'carbon_budget': declared twice",
        ),
        (
            {"baton_special_needs_fields": fields(FieldSpec("Bad-Name", "str", "x"))},
            "a field name is snake_case",
        ),
        (
            {"baton_special_needs_fields": fields(FieldSpec("x", "decimal", "x"))},  # type: ignore[arg-type]
            "type 'decimal' is not one of",
        ),
        (
            {
                "baton_special_needs_fields": fields(GOOD),
                "baton_default_policies": hookimpl(
                    lambda: [PolicyGrant("finance", "Customer.annualRevenue")]
                ),
            },
            "a plugin grants only its own fields",
        ),
        (
            {
                "baton_assignment_dimensions": hookimpl(
                    lambda: [AssignmentDimension("budget", "missing", "x")]
                )
            },
            "names no special-needs field of the plugin",
        ),
        (
            {"baton_workflow_event": hookimpl(lambda evt: None)},
            "evt",  # pluggy: the argument is not in the hookspec
        ),
    ],
)
def test_a_broken_plugin_is_refused_with_its_name_and_reason(
    hooks: dict[str, Callable[..., Any]], reason: str
) -> None:
    message = refused(plugin(**hooks))
    assert message.startswith("plugin 'acme': ")
    assert reason in message


def test_an_incompatible_core_version_is_refused() -> None:
    name, module, _ = plugin(baton_special_needs_fields=fields(GOOD))
    module.BATON_REQUIRES = ">=2.0"  # type: ignore[attr-defined]
    assert "needs Baton >=2.0, this is 0.1.0" in refused((name, module, None))


def test_colliding_plugins_are_refused() -> None:
    dimension = hookimpl(lambda: [AssignmentDimension("budget", "carbon_budget", "x")])
    first = plugin(
        "acme", baton_special_needs_fields=fields(GOOD), baton_assignment_dimensions=dimension
    )
    second = plugin(
        "zenith", baton_special_needs_fields=fields(GOOD), baton_assignment_dimensions=dimension
    )
    assert refused(first, second) == "plugin 'zenith': dimension 'budget' is provided by 'acme' too"
    assert "is registered twice" in refused(first, plugin("acme"))
    # "green_energy" and "green_energy" in another spelling would share one GraphQL type.
    assert "collides with plugin" in refused(
        plugin("a_b", baton_special_needs_fields=fields(GOOD)),
        plugin("a__b", baton_special_needs_fields=fields(GOOD)),
    )


def test_the_allow_list_loads_only_what_it_names() -> None:
    assert [p.name for p in load_plugins(["manufacturing"]).plugins] == ["manufacturing"]
    assert load_plugins([]).plugins == ()
    with pytest.raises(PluginError, match="plugin 'acme': is not installed"):
        load_plugins(["banking", "acme"])


def test_start_up_fails_on_a_plugin_the_allow_list_names_but_is_missing(tmp_path: Any) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", plugins=("nope",))
    with pytest.raises(PluginError, match="plugin 'nope'"):
        create_app(settings)


def test_without_plugins_the_schema_has_no_special_needs() -> None:
    from core.api.schema import build_schema

    sdl = build_schema(load_plugins([])).as_str()
    assert "specialNeeds:" not in sdl and "SpecialNeedsInput" not in sdl
    assert "BankingSpecialNeeds" in build_schema(load_plugins(["banking"])).as_str()
