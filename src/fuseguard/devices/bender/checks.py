"""Plausibility of what a Bender charge controller reports: garbage never becomes a sample.

Every :class:`~fuseguard.model.samples.ChargerSample` the driver returns passes
:func:`check_sample`: each number finite (:func:`fuseguard.model.numbers.finite`) and within
what a charge point can physically report. A value outside is not a measurement; the driver
marks the device failed with the reason.
"""

from __future__ import annotations

from typing import Final

from fuseguard.model.numbers import finite
from fuseguard.model.samples import ChargerSample

#: Plausibility bound: a value above this in an ampere register is garbage, not a measurement.
MAX_PLAUSIBLE_CURRENT_A: Final = 1000.0
#: Three phases at the plausible current and 400 V line-to-neutral.
MAX_PLAUSIBLE_POWER_W: Final = 3 * MAX_PLAUSIBLE_CURRENT_A * 400.0
#: A phase carrying more than this counts as "in use".
PHASE_IN_USE_A: Final = 1.0


def check_sample(sample: ChargerSample) -> None:
    """Raise :class:`~fuseguard.model.numbers.NotFiniteError` naming the first implausible value."""
    amps = MAX_PLAUSIBLE_CURRENT_A
    for i, current in enumerate(sample.current_a, start=1):
        finite(current, f"current L{i} (A)", lo=0.0, hi=amps)
    finite(sample.power_w, "power (W)", lo=0.0, hi=MAX_PLAUSIBLE_POWER_W)
    optional = (
        ("energy (Wh)", sample.energy_wh, None),
        ("session energy (Wh)", sample.session_energy_wh, None),
        ("charging duration (s)", sample.charging_duration_s, None),
        ("signalled current (A)", sample.signalled_current_a, amps),
        ("current limit (A)", sample.limit_a, amps),
        ("maximum current (A)", sample.max_current_a, amps),
        ("cable rating (A)", sample.cable_rating_a, amps),
    )
    for what, value, hi in optional:
        if value is not None:
            finite(value, what, lo=0.0, hi=float("inf") if hi is None else hi)


__all__ = ["MAX_PLAUSIBLE_CURRENT_A", "MAX_PLAUSIBLE_POWER_W", "PHASE_IN_USE_A", "check_sample"]
