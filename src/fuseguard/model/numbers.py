"""The one finite-number check: every value from a device, a file or the network passes here.

``NaN`` and infinities are never numbers to fuseguard: a NaN fuse would remove a limit, an
infinite timeout would switch off loss detection.
"""

from __future__ import annotations

import math


class NotFiniteError(ValueError):
    """A value is NaN, infinite, not a number, or out of its range; the message names it."""


def finite(value: object, what: str, *, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float within ``[lo, hi]``, or :class:`NotFiniteError` naming ``what``.

    Booleans are refused (``True`` is not 1 A); ints and floats are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{what}: expected a number, got {type(value).__name__}"
        raise NotFiniteError(msg)
    try:
        number = float(value)
    except OverflowError:
        msg = f"{what}: {value} is too large"
        raise NotFiniteError(msg) from None
    if not math.isfinite(number):
        msg = f"{what}: {number} is not a finite number"
        raise NotFiniteError(msg)
    if not lo <= number <= hi:
        msg = f"{what}: {number:g} is outside {lo:g}..{hi:g}"
        raise NotFiniteError(msg)
    return number


def is_finite_number(value: object) -> bool:
    """True for an int or float (not a bool) that is neither NaN nor infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


__all__ = ["NotFiniteError", "finite", "is_finite_number"]
