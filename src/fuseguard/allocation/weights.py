"""Phase weights of the max-min filling: a one-phase plug may get more current per phase.

Plain per-phase max-min fairness gives every plug on a bottleneck row the same current, so a car
on one phase charges at a third of the power of a car on three. Over an evening that leaves the
slow one-phase cars with a phase only they can use once the three-phase cars are full, while the
other phases stand idle (``bench/notes/quality.md``, round 14). With ``single_phase_weight`` ``w``
the filling raises a plug on ``k`` grid phases at ``w ** ((3 - k) / 2)`` times the common level
(``x = clamp(weight * t, lo, hi)``): ``w`` for one phase, its square root for two, 1 for three.

The filling itself is unchanged: it runs on the scaled variable ``y = x / weight`` (bounds
``lo / weight``, ``hi / weight``, row coefficients ``a * weight``: the same row loads), and the
caller scales the result back. Minimums, caps, admission, rounding and every limit are those of
the plain allocation; with ``w == 1`` nothing is scaled at all (bit for bit the plain path).
"""

from __future__ import annotations

from collections.abc import Sequence


def phase_weights(nph: Sequence[float], single_phase_weight: float) -> list[float] | None:
    """Each plug's weight from its number of grid phases; None when every weight is 1."""
    w = single_phase_weight
    if w == 1.0 or all(k >= 3.0 for k in nph):
        return None
    return [1.0 if k >= 3.0 else w ** ((3.0 - k) / 2.0) for k in nph]


__all__ = ["phase_weights"]
