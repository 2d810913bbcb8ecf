"""The wording of e-mail notices, in Chinese and English, and plugins' replacements for it.

Templates are ``string.Template`` text: ``$name`` placeholders only, no attribute access or
code, so a plugin's wording cannot reach anything but the values it is handed. Those values
are already cut to what the recipient may read (``core.notify.email_plan``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from core.domain import LOCALES
from core.plugins import Plugin, PluginError

# Every notice gets these; each notice adds its own (PLACEHOLDERS).
COMMON = ("recipient_name", "customer_name", "customer_id", "customer_facts")
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "handbook_submitted": (*COMMON, "handover_id", "from_owner_name", "to_owner_name", "due_at"),
    "step_due_soon": (*COMMON, "handover_id", "step", "due_at"),
    "step_overdue": (*COMMON, "handover_id", "step", "due_at"),
    "customer_notice_draft": (
        *COMMON,
        "handover_id",
        "from_owner_name",
        "to_owner_name",
        "to_owner_email",
        "contact_names",
        "notice_rule",
    ),
    "health_red": (*COMMON, "owner_name", "health_score", "warnings"),
}

TEMPLATES = Path(__file__).with_name("templates")


def _load(name: str, locale: str) -> tuple[str, str]:
    """``templates/<name>.<locale>.txt``: a ``Subject:`` line, a blank line, the body."""
    head, _, body = (TEMPLATES / f"{name}.{locale}.txt").read_text("utf-8").partition("\n\n")
    return head.removeprefix("Subject:").strip(), body


@dataclass(frozen=True)
class Labels:
    """The words a template's values are made of, per locale (``templates/labels.*.json``):
    handover steps, customer fields, and the rule for telling the customer."""

    steps: dict[str, str]
    facts: dict[str, str]
    notice_rule: dict[str, str]


LABELS = {
    locale: Labels(**json.loads((TEMPLATES / f"labels.{locale}.json").read_text("utf-8")))
    for locale in LOCALES
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class EmailTemplates:
    """Baton's templates with the plugins' replacements applied (the last plugin wins)."""

    def __init__(self, plugins: Iterable[Plugin] = ()) -> None:
        self.templates: dict[tuple[str, str], tuple[Template, Template]] = {
            (name, locale): (Template(subject), Template(body))
            for name in PLACEHOLDERS
            for locale in LOCALES
            for subject, body in [_load(name, locale)]
        }
        for plugin in plugins:
            for t in plugin.email_templates:
                self.templates[(t.name, t.locale)] = _checked(plugin.name, t.name, t.locale, t)

    def render(self, name: str, locale: str, values: Mapping[str, str]) -> Rendered:
        """The notice ``name`` in ``locale`` with ``values`` (every placeholder given)."""
        subject, body = self.templates[(name, locale)]
        # A subject is one line: a value with a line break must not add mail headers.
        return Rendered(" ".join(subject.substitute(values).split()), body.substitute(values))


def _checked(plugin: str, name: str, locale: str, t: object) -> tuple[Template, Template]:
    """A plugin's template, refused at start-up when it names an unknown notice, locale or
    placeholder (instead of failing on the first e-mail)."""
    where = f"e-mail template {name!r} ({locale})"
    if name not in PLACEHOLDERS:
        raise PluginError(plugin, f"{where}: no such notice (one of {', '.join(PLACEHOLDERS)})")
    if locale not in LOCALES:
        raise PluginError(plugin, f"{where}: locale must be one of {', '.join(LOCALES)}")
    pair = (Template(getattr(t, "subject", "")), Template(getattr(t, "body", "")))
    for part in pair:
        if not part.is_valid():
            raise PluginError(plugin, f"{where}: a `$` not followed by a placeholder name")
        unknown = sorted(set(part.get_identifiers()) - set(PLACEHOLDERS[name]))
        if unknown:
            raise PluginError(
                plugin,
                f"{where}: unknown placeholder(s) {', '.join(unknown)}; "
                f"use {', '.join(PLACEHOLDERS[name])}",
            )
    return pair
