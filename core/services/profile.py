"""A customer's profile fields: their checks, their GraphQL and audit names, their snapshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import Customer, User
from core.errors import BadUserInput, FieldError
from core.services import validation as v
from core.services.audit import to_camel

CONTACT_FIELDS = ("name", "title", "role", "email", "phone")


def _contacts(values: list[dict[str, Any]] | None) -> str | None:
    if values is None:
        return None
    if len(values) > 50:
        return "must have at most 50 contacts"
    for i, contact in enumerate(values):
        if reason := v.text(contact.get("name"), max_length=200, required=True):
            return f"contact {i}: name {reason}"
        if reason := v.email(contact.get("email")):
            return f"contact {i}: email {reason}"
        for key in ("title", "role", "phone"):
            if reason := v.text(contact.get(key), max_length=200):
                return f"contact {i}: {key} {reason}"
    return None


# Every writable profile field and its check. Reference fields (``*_id``) are checked
# against the users table separately.
PROFILE_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "name": lambda x: v.text(x, max_length=200, required=True),
    "kind": lambda x: "is required" if x is None else None,
    "industry": v.industry,
    "territory": v.territory,
    "product_lines": lambda x: v.string_list(x, max_items=50, max_length=100),
    "lifecycle_stage": lambda x: "is required" if x is None else None,
    "first_contact_id": lambda x: None,
    "first_contact_at": lambda x: None,
    "backup_owner_id": lambda x: None,
    "value_tier": lambda x: None,
    "needs_tier": lambda x: None,
    "loyalty_tier": lambda x: None,
    "annual_revenue": lambda x: v.money(x) or v.non_negative(x),
    "profit_contribution": v.money,
    "growth_potential": lambda x: v.int_range(x, 0, 100),
    "strategic_fit": lambda x: v.int_range(x, 0, 100),
    "payment_terms_days": lambda x: v.int_range(x, 0, 365),
    "payment_method": lambda x: None,
    "invoice_requirements": lambda x: v.text(x, max_length=2000),
    "communication_preference": lambda x: None,
    "contacts": _contacts,
}
USER_REFERENCES = ("first_contact_id", "backup_owner_id")
# A change to one of these can change what the assignment rules decide.
RULE_DIMENSIONS = ("lifecycle_stage", "value_tier", "territory", "industry", "product_lines")
LIST_FIELDS = ("product_lines", "contacts")


def stored(attr: str, value: Any) -> Any:
    """A profile value as its column keeps it; an explicit null clears a list to empty."""
    return list(value or ()) if attr in LIST_FIELDS else value


def field_name(attr: str) -> str:
    """The GraphQL (and audit) name of an attribute: ``backup_owner_id`` → ``backupOwner``."""
    return to_camel(attr.removesuffix("_id"))


def snapshot(customer: Customer) -> dict[str, Any]:
    """The customer's profile keyed by GraphQL field name, for audit diffs."""
    return {field_name(attr): getattr(customer, attr) for attr in PROFILE_FIELDS}


async def check_users_active(session: AsyncSession, refs: dict[str, str | None]) -> None:
    """Each given ``field → user id`` must name an active user (one query for all)."""
    wanted = {uid for uid in refs.values() if uid is not None}
    if not wanted:
        return
    found = set(await session.scalars(select(User.id).where(User.id.in_(wanted), User.active)))
    errors = [
        FieldError(to_camel(name), "no active user has this id")
        for name, uid in refs.items()
        if uid is not None and uid not in found
    ]
    if errors:
        raise BadUserInput(errors)


def validate_profile(data: dict[str, Any]) -> None:
    """Raise BAD_USER_INPUT listing every invalid field of ``data``."""
    errors = []
    for attr, value in data.items():
        check = PROFILE_FIELDS.get(attr)
        if check is None:
            errors.append(FieldError(to_camel(attr), "is not a customer field"))
        elif reason := check(value):
            errors.append(FieldError(to_camel(attr), reason))
    if errors:
        raise BadUserInput(errors)
