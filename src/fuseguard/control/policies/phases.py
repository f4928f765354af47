"""Phase learning: the grid phases a car really loads.

Owns: the phases learned from a charging car's measured currents (through the wiring rotation),
remembered while it stays plugged in. Before anything is learned: the phases the charger
reports, else all wired phases (the safe assumption). Forgotten when the car leaves.
"""

from __future__ import annotations

from fuseguard.control.types import ChargerSpec
from fuseguard.model.phases import Phase
from fuseguard.model.samples import ChargerSample


class PhaseLearning:
    """One plug's learned phases."""

    def __init__(self, spec: ChargerSpec, *, detect_a: float) -> None:
        self._spec = spec
        self._detect_a = detect_a
        self._learned: tuple[Phase, ...] | None = None
        self._known = False

    @property
    def learned(self) -> tuple[Phase, ...] | None:
        """The phases learned so far (None: nothing learned)."""
        return self._learned

    @property
    def known(self) -> bool:
        """Whether the phases the last :meth:`update` returned are known (learned, reported by
        the charger, or a 1-phase wiring), not the all-wired-phases assumption."""
        return self._known

    def update(self, sample: ChargerSample | None) -> tuple[Phase, ...]:
        """Learn from this sample; returns the grid phases to assume the car loads now."""
        phases = self._update(sample)
        self._known = self._learned is not None or len(phases) < self._spec.wired_phases
        if self._spec.wired_phases <= 1:
            self._known = True
        return phases

    def _update(self, sample: ChargerSample | None) -> tuple[Phase, ...]:
        spec = self._spec
        wired = spec.rotation.grid_phases(spec.wired_phases)
        if sample is None or not sample.cp_state.vehicle_connected:
            self._learned = None
            return wired
        if sample.cp_state.charging:
            used = tuple(
                spec.rotation.grid_order[i]
                for i in range(spec.wired_phases)
                if sample.current_a[i] >= self._detect_a
            )
            if used:
                self._learned = used
                return used
        if self._learned is not None:
            return self._learned
        if sample.phases_in_use in (1, 2, 3):
            return spec.rotation.grid_phases(min(sample.phases_in_use, spec.wired_phases))
        return wired


__all__ = ["PhaseLearning"]
