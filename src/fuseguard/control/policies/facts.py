"""What one cycle knows about one plug, as the per-plug policies see it (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample


@dataclass(slots=True)
class PlugFacts:
    """One plug at one instant (read-only: the policies read it, nothing writes it; not frozen
    only because a frozen dataclass costs 4x to build, and the loop builds one per plug per
    cycle).

    ``sample`` is the newest good sample, ``fresh`` whether it is from the current or the
    previous poll (a measurement of now), ``grid_a`` its draw on grid phases (through the wiring
    rotation); ``written_a`` the setpoint last written to the charger (None: never),
    ``changed_at`` when that written value last changed (monotonic seconds).
    """

    now: float
    sample: ChargerSample | None
    fresh: bool
    grid_a: Phases
    written_a: int | None
    changed_at: float


__all__ = ["PlugFacts"]
