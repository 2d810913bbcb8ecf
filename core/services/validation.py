"""Small validators shared by the use cases; each returns a reason or None."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from core.domain.notices import LOCALES

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
INDUSTRY = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


def text(value: Any, *, max_length: int, required: bool = False) -> str | None:
    if value is None:
        return "is required" if required else None
    if required and not str(value).strip():
        return "must not be empty"
    if len(str(value)) > max_length:
        return f"must be at most {max_length} characters"
    return None


def int_range(value: Any, low: int, high: int) -> str | None:
    if value is None:
        return None
    if not low <= value <= high:
        return f"must be between {low} and {high}"
    return None


def non_negative(value: Decimal | None) -> str | None:
    if value is not None and value < 0:
        return "must not be negative"
    return None


def money(value: Decimal | None) -> str | None:
    if value is None:
        return None
    if not value.is_finite():
        return "must be a finite amount"
    if abs(value) >= Decimal("1e16"):
        return "is too large"
    return None


def locale(value: str | None) -> str | None:
    if value is None or value in LOCALES:
        return None
    return f"must be one of {', '.join(LOCALES)}"


def email(value: str | None) -> str | None:
    if value is None:
        return None
    return None if EMAIL.match(value) else "is not an e-mail address"


def user_id(value: str) -> str | None:
    if USER_ID.match(value):
        return None
    return "must be 1-64 lower-case letters, digits, '.' or '-', starting with a letter or digit"


def industry(value: str | None) -> str | None:
    if value is None:
        return None
    if INDUSTRY.match(value):
        return None
    return "must be a dotted lower-case code such as 'manufacturing.automotive'"


def territory(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.split("/")
    if len(value) > 200 or any(not p.strip() or p != p.strip() for p in parts):
        return "must be a '/'-separated path of non-empty parts such as 'CN/East/Shanghai'"
    return None


def string_list(values: list[str] | None, *, max_items: int, max_length: int) -> str | None:
    if values is None:
        return None
    if len(values) > max_items:
        return f"must have at most {max_items} entries"
    if any(not v.strip() or len(v) > max_length for v in values):
        return f"entries must be non-empty and at most {max_length} characters"
    if len(set(values)) != len(values):
        return "entries must be unique"
    return None
