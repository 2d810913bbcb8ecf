"""Plugin loading: the built-ins and the ``baton.plugins`` entry points, through one pluggy manager.

Plugins are loaded once at start-up and checked before the app serves: a misspelled hook, a
hook that returns the wrong thing, an invalid field spec, two plugins with one name or an
incompatible core version all stop start-up with ``plugin '<name>': <reason>``.
"""

from __future__ import annotations

import importlib
import keyword
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

import core
from sdk import hookspecs
from sdk.specs import (
    AssignmentDimension,
    EmailTemplate,
    FieldSpec,
    HealthIndicator,
    HealthSignal,
    PolicyGrant,
    TierCriterion,
    WorkflowEvent,
)

log = logging.getLogger("baton.plugins")

ENTRY_POINT_GROUP = "baton.plugins"
# The built-in plugins take the partner path: modules written against ``sdk`` only.
BUILTIN_PLUGINS = {"banking": "plugins.banking", "manufacturing": "plugins.manufacturing"}

PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CHOICE = re.compile(r"^[A-Z][A-Z0-9_]*$")
DIMENSION_NAME = re.compile(r"^[a-z][A-Za-z0-9]{0,63}$")
FIELD_TYPES = ("str", "int", "float", "bool", "date", "enum", "list[str]")
TIER_KINDS = ("value", "needs", "loyalty")
ACTIONS = ("read", "write")
HOOK_NAMES = frozenset(hookspecs.HOOKS)


class PluginError(Exception):
    """A plugin cannot be loaded; the message names the plugin and the reason."""

    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(f"plugin {plugin!r}: {reason}")
        self.plugin = plugin
        self.reason = reason


def camel(snake: str) -> str:
    """``risk_tolerance`` → ``riskTolerance`` (the GraphQL name of a plugin field)."""
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def pascal(snake: str) -> str:
    """``green_energy`` → ``GreenEnergy``."""
    return "".join(part.capitalize() for part in snake.split("_"))


def indicator_name(plugin: str, name: str) -> str:
    """A plugin indicator's name on the dashboard: ``banking`` + ``aum_flow`` →
    ``banking_aum_flow``."""
    return f"{plugin}_{name}"


def indicator_object(plugin: str, name: str) -> str:
    """Its policy object: ``HealthIndicator.bankingAumFlow``."""
    return f"HealthIndicator.{camel(indicator_name(plugin, name))}"


def special_needs_type(plugin: str) -> str:
    """The GraphQL type of a plugin's fields and the first part of their policy objects."""
    return f"{pascal(plugin)}SpecialNeeds"


@dataclass(frozen=True)
class Plugin:
    """One loaded plugin and everything it contributes, validated."""

    name: str
    version: str
    hooks: tuple[str, ...]
    fields: tuple[FieldSpec, ...] = ()
    tier_criteria: tuple[TierCriterion, ...] = ()
    dimensions: tuple[AssignmentDimension, ...] = ()
    health_signals: tuple[HealthSignal, ...] = ()
    health_indicators: tuple[HealthIndicator, ...] = ()
    policies: tuple[PolicyGrant, ...] = ()
    holidays: tuple[date, ...] = ()
    email_templates: tuple[EmailTemplate, ...] = ()

    @property
    def type_name(self) -> str:
        return special_needs_type(self.name)

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def policy_lines(self) -> list[tuple[str, str, str, str]]:
        """The plugin's default policies as ``casbin_rule`` rows."""
        return [("p", g.role, g.object, g.action) for g in self.policies]


@dataclass(frozen=True)
class Dimension:
    """A plugin assignment dimension: rules name it in ``conditions.extra``."""

    name: str
    plugin: str
    field: str

    def read(self, special_needs: Mapping[str, Mapping[str, Any]]) -> str | None:
        value = special_needs.get(self.plugin, {}).get(self.field)
        return None if value is None else str(value)


@dataclass
class PluginRegistry:
    """The loaded plugins of one app, in load order."""

    plugins: tuple[Plugin, ...] = ()
    manager: pluggy.PluginManager = field(default_factory=lambda: _manager())

    @property
    def dimensions(self) -> dict[str, Dimension]:
        return {
            d.name: Dimension(d.name, p.name, d.field) for p in self.plugins for d in p.dimensions
        }

    @property
    def tier_criteria(self) -> list[tuple[str, TierCriterion]]:
        return [(p.name, c) for p in self.plugins for c in p.tier_criteria]

    @property
    def health_signals(self) -> list[tuple[str, HealthSignal]]:
        return [(p.name, s) for p in self.plugins for s in p.health_signals]

    @property
    def health_indicators(self) -> list[tuple[str, HealthIndicator]]:
        return [(p.name, i) for p in self.plugins for i in p.health_indicators]

    @property
    def holidays(self) -> tuple[date, ...]:
        return tuple(sorted({d for p in self.plugins for d in p.holidays}))

    def get(self, name: str) -> Plugin | None:
        return next((p for p in self.plugins if p.name == name), None)

    def notify(self, event: WorkflowEvent) -> None:
        """Deliver a workflow event to every plugin; one plugin's failure does not stop others."""
        for impl in self.manager.hook.baton_workflow_event.get_hookimpls():
            try:
                impl.function(**{a: event for a in impl.argnames})
            except Exception:  # a plugin's bug must not undo a committed step
                log.exception("plugin %r failed on workflow event %s", impl.plugin_name, event.id)


def _manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("baton")
    manager.add_hookspecs(hookspecs)
    return manager


@dataclass(frozen=True)
class Source:
    """Where a plugin comes from: how to import it, and its distribution's version."""

    load: Callable[[], ModuleType]
    version: str | None = None


def available_plugins() -> dict[str, Source]:
    """Every plugin this installation could load: the built-ins, then the entry points."""
    found = {
        name: Source(partial(importlib.import_module, path), core.__version__)
        for name, path in BUILTIN_PLUGINS.items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN_PLUGINS:
            if ep.value == BUILTIN_PLUGINS[ep.name]:
                continue
            raise PluginError(ep.name, f"{ep.value} takes the name of a built-in plugin")
        if ep.name in found:
            raise PluginError(ep.name, "two installed distributions provide a plugin of this name")
        found[ep.name] = Source(ep.load, ep.dist.version if ep.dist else None)
    return found


def load_plugins(allow: Sequence[str] | None = None) -> PluginRegistry:
    """Load the allowed plugins (all available ones when ``allow`` is None), or raise."""
    available = available_plugins()
    names = list(available) if allow is None else list(dict.fromkeys(allow))
    modules: list[tuple[str, ModuleType, str | None]] = []
    for name in names:
        if name not in available:
            raise PluginError(name, "is not installed (BATON_PLUGINS names it)")
        try:
            modules.append((name, available[name].load(), available[name].version))
        except Exception as exc:
            raise PluginError(name, f"cannot be imported: {exc!r}") from exc
    return register(modules)


def builtin_plugins() -> PluginRegistry:
    """Only the built-in plugins: what the committed schema and permission matrix show."""
    return load_plugins(list(BUILTIN_PLUGINS))


def register(modules: Iterable[tuple[str, ModuleType, str | None]]) -> PluginRegistry:
    """Check and register ``(name, module, version)`` plugins (names are entry-point names)."""
    manager = _manager()
    plugins: list[tuple[str, str | None]] = []
    for name, module, version in modules:
        if not PLUGIN_NAME.match(name):
            raise PluginError(name, "a plugin name is 1-40 lower-case letters, digits or '_'")
        if manager.has_plugin(name) or manager.is_registered(module):
            raise PluginError(name, "is registered twice")
        _check_core_version(name, module)
        try:
            manager.register(module, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(name, str(exc)) from exc
        plugins.append((name, version))
    for name, _ in plugins:
        _check_hook_names(name, _module(manager, name))
    manager.check_pending()  # what the check above let through is pluggy's to refuse
    loaded = tuple(_collect(manager, name, version) for name, version in plugins)
    _check_across(loaded)
    return PluginRegistry(loaded, manager)


def _check_hook_names(name: str, module: ModuleType) -> None:
    """A misspelled hook, or one without ``@hookimpl``, would be silently ignored: refuse it."""
    for attr in dir(module):
        if not attr.startswith("baton_") or not callable(getattr(module, attr)):
            continue
        if attr not in HOOK_NAMES:
            raise PluginError(
                name, f"unknown hook {attr!r}; the hooks are {', '.join(sorted(HOOK_NAMES))}"
            )
        if not hasattr(getattr(module, attr), "baton_impl"):
            raise PluginError(name, f"{attr} is not marked with @hookimpl")


def _check_core_version(name: str, module: ModuleType) -> None:
    requires = getattr(module, "BATON_REQUIRES", None)
    if requires is None:
        return
    try:
        spec = SpecifierSet(str(requires))
    except InvalidSpecifier as exc:
        raise PluginError(name, f"BATON_REQUIRES {requires!r} is not a version range") from exc
    if Version(core.__version__) not in spec:
        raise PluginError(name, f"needs Baton {requires}, this is {core.__version__}")


def _results(manager: pluggy.PluginManager, plugin: str, hook: str, kind: type) -> list[Any]:
    """What one plugin's implementation of a collecting hook returned, checked for type."""
    impls = [i for i in getattr(manager.hook, hook).get_hookimpls() if i.plugin_name == plugin]
    if not impls:
        return []
    (impl,) = impls
    try:
        result = impl.function()  # the collecting hooks take no arguments
    except Exception as exc:
        raise PluginError(plugin, f"{hook} raised {exc!r}") from exc
    if not isinstance(result, list | tuple) or not all(isinstance(r, kind) for r in result):
        raise PluginError(plugin, f"{hook} must return a list of {kind.__name__}")
    return list(result)


def _module(manager: pluggy.PluginManager, name: str) -> ModuleType:
    module = manager.get_plugin(name)
    assert isinstance(module, ModuleType)
    return module


def _collect(manager: pluggy.PluginManager, name: str, version: str | None) -> Plugin:
    module = _module(manager, name)
    fields = tuple(_results(manager, name, "baton_special_needs_fields", FieldSpec))
    plugin = Plugin(
        name=name,
        version=version or str(getattr(module, "__version__", "unknown")),
        hooks=tuple(
            sorted(h.name for h in manager.get_hookcallers(module) or [] if h.name in HOOK_NAMES)
        ),
        fields=fields,
        tier_criteria=tuple(_results(manager, name, "baton_tier_criteria", TierCriterion)),
        dimensions=tuple(
            _results(manager, name, "baton_assignment_dimensions", AssignmentDimension)
        ),
        health_signals=tuple(_results(manager, name, "baton_health_signals", HealthSignal)),
        health_indicators=tuple(
            _results(manager, name, "baton_health_indicators", HealthIndicator)
        ),
        policies=tuple(_results(manager, name, "baton_default_policies", PolicyGrant)),
        holidays=tuple(_results(manager, name, "baton_holidays", date)),
        email_templates=tuple(_results(manager, name, "baton_email_templates", EmailTemplate)),
    )
    for reason in _problems(plugin):
        raise PluginError(name, reason)
    return plugin


def _problems(p: Plugin) -> Iterable[str]:
    seen: set[str] = set()
    for f in p.fields:
        where = f"special-needs field {f.name!r}"
        if not FIELD_NAME.match(f.name) or keyword.iskeyword(f.name):
            yield f"{where}: a field name is snake_case, starting with a letter"
        if f.name in seen:
            yield f"{where}: declared twice"
        seen.add(f.name)
        if f.type not in FIELD_TYPES:
            yield f"{where}: type {f.type!r} is not one of {', '.join(FIELD_TYPES)}"
        if f.type == "enum" and not f.choices:
            yield f"{where}: an enum needs choices"
        if bad := [c for c in f.choices if not CHOICE.match(c)]:
            yield f"{where}: choices must be SCREAMING_SNAKE ({', '.join(bad)})"
        if f.choices and f.type not in ("enum", "list[str]"):
            yield f"{where}: choices apply to enum and list[str] only"
        if f.min is not None and f.max is not None and f.min > f.max:
            yield f"{where}: min is above max"
        if f.pattern is not None:
            try:
                re.compile(f.pattern)
            except re.error as exc:
                yield f"{where}: pattern does not compile ({exc})"
        if not f.description.strip():
            yield f"{where}: needs a description"
    for d in p.dimensions:
        if not DIMENSION_NAME.match(d.name):
            yield f"assignment dimension {d.name!r}: a dimension name is camelCase"
        spec = p.field(d.field)
        if spec is None:
            yield f"assignment dimension {d.name!r}: names no special-needs field of the plugin"
        elif spec.type not in ("enum", "str", "bool", "int"):
            yield f"assignment dimension {d.name!r}: field {d.field!r} is {spec.type}, not scalar"
    for c in p.tier_criteria:
        if c.tier not in TIER_KINDS:
            yield f"tier criterion {c.name!r}: tier {c.tier!r} is not one of {TIER_KINDS}"
        if not callable(c.evaluate):
            yield f"tier criterion {c.name!r}: evaluate is not callable"
    for s in p.health_signals:
        if not callable(s.evaluate):
            yield f"health signal {s.name!r}: evaluate is not callable"
    names: set[str] = set()
    for i in p.health_indicators:
        where = f"health indicator {i.name!r}"
        if not FIELD_NAME.match(i.name):
            yield f"{where}: an indicator name is snake_case, starting with a letter"
        if i.name in names:
            yield f"{where}: declared twice"
        names.add(i.name)
        if not callable(i.evaluate):
            yield f"{where}: evaluate is not callable"
        if (i.green < i.yellow) if i.higher_is_better else (i.green > i.yellow):
            yield f"{where}: green must be {'at least' if i.higher_is_better else 'at most'} yellow"
        if not 0 <= i.weight <= 100:
            yield f"{where}: weight must be 0-100"
    readable = {camel(f.name) for f in p.fields} | {"*"}
    indicators = {indicator_object(p.name, i.name) for i in p.health_indicators}
    for g in p.policies:
        owner, _, field_name = g.object.partition(".")
        if g.object in indicators and g.action == "read":
            continue
        if owner != p.type_name or field_name not in readable:
            yield (
                f"default policy on {g.object!r}: a plugin grants only its own fields "
                f"({p.type_name}.<field> or {p.type_name}.*)"
            )
        if g.action not in ACTIONS:
            yield f"default policy on {g.object!r}: action {g.action!r} is not read or write"


def _check_across(plugins: Sequence[Plugin]) -> None:
    type_names: dict[str, str] = {}
    dimensions: dict[str, str] = {}
    for p in plugins:
        if (other := type_names.setdefault(p.type_name, p.name)) != p.name:
            raise PluginError(p.name, f"its type {p.type_name} collides with plugin {other!r}")
        for d in p.dimensions:
            if (other := dimensions.setdefault(d.name, p.name)) != p.name:
                raise PluginError(p.name, f"dimension {d.name!r} is provided by {other!r} too")
