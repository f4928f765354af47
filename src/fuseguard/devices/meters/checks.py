"""Validation shared by the meter drivers: every decoded number is finite and plausible."""

from __future__ import annotations

import structlog

from fuseguard.control.ports import DeviceResponseError
from fuseguard.model.numbers import NotFiniteError, finite
from fuseguard.wire.meters import Quantity

log = structlog.get_logger(__name__)


def garbage(device: str, reason: str) -> DeviceResponseError:
    """The error for an answer that is not meter data (logged with device and reason)."""
    log.warning("meter answered garbage", device=device, reason=reason)
    return DeviceResponseError(f"{device}: garbage answer: {reason}")


def checked(device: str, quantity: Quantity, what: str, value: float | None) -> float | None:
    """``value`` if finite and within the quantity's plausibility bounds; None stays None."""
    if value is None:
        return None
    lo, hi = quantity.bounds
    try:
        return finite(value, what, lo=lo, hi=hi)
    except NotFiniteError as err:
        raise garbage(device, str(err)) from None


def required(device: str, quantity: Quantity, what: str, value: float | None) -> float:
    """Like :func:`checked`, but a missing value is an error too."""
    result = checked(device, quantity, what, value)
    if result is None:
        raise garbage(device, f"{what} is not available")
    return result


__all__ = ["checked", "garbage", "required"]
