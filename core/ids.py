"""Entity identifiers: a type prefix plus a time-ordered random part (ULID-like)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case

# Ids of generated entities carry a prefix so that ``node(id)`` can find the type;
# user ids are chosen by admins and may not use these prefixes.
PREFIXES = {
    "Customer": "cus",
    "AuditEntry": "aud",
    "AssignmentRule": "rule",
    "ReassignmentRequest": "req",
    "Handover": "hnd",
    "WorkflowEvent": "evt",
    "WebhookEndpoint": "whe",
    "WebhookDelivery": "whd",
    "Survey": "svy",
}


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(type_name: str) -> str:
    """A new id for an entity of ``type_name``: prefix, 48-bit milliseconds, 80 random bits."""
    millis = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{PREFIXES[type_name]}_{_base32(millis, 10)}{_base32(rand, 16)}"


def type_of_id(entity_id: str) -> str:
    """The GraphQL type an id belongs to (ids without a known prefix are users)."""
    prefix, sep, _ = entity_id.partition("_")
    if sep:
        for type_name, known in PREFIXES.items():
            if known == prefix:
                return type_name
    return "User"
