"""Identities: EVSE and plug uuids as CLEMAP writes them (32 lowercase hex characters)."""

from __future__ import annotations

import re
import uuid

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def is_hex_uuid(value: str) -> bool:
    """True for 32 lowercase hex characters without dashes."""
    return bool(_HEX32.fullmatch(value))


def check_hex_uuid(value: str) -> str:
    """Return ``value`` if it is a 32-lowercase-hex uuid, else raise ValueError."""
    if not is_hex_uuid(value):
        msg = f"{value!r} is not a uuid of 32 lowercase hex characters"
        raise ValueError(msg)
    return value


def new_hex_uuid() -> str:
    """A fresh random uuid in the CLEMAP form."""
    return uuid.uuid4().hex
