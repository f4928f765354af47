"""Idle car: a car that takes no current although offered (full, or not ready).

Owns: since when a connected car has taken (almost) nothing although offered at least its
minimum, and until when it is paused. After ``idle_after_s`` (counted from the end of the
decrease grace after the last setpoint change) it is paused, so the current offered to it goes
to others; every ``idle_reprobe_s`` it is offered current again to see whether it wants to
charge now.
"""

from __future__ import annotations

import structlog

from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.types import ChargerSpec

log = structlog.get_logger(__name__)


class IdleCar:
    """One plug's idle/full-car pause."""

    def __init__(
        self, spec: ChargerSpec, *, grace_s: float, after_s: float, reprobe_s: float
    ) -> None:
        self._spec = spec
        self._grace_s = grace_s
        self._after_s = after_s
        self._reprobe_s = reprobe_s
        self._since: float | None = None
        self._until: float | None = None

    @property
    def paused_until(self) -> float | None:
        """Until when the car is paused as idle (None: it is not)."""
        return self._until

    def reason(self, now: float) -> str | None:
        """Why the plug gets nothing while paused as idle (None: it is not)."""
        if self._until is None:
            return None
        minutes = (self._until - now) / 60.0
        return f"car takes no current (full?): offered again in {minutes:.0f} min"

    def update(self, f: PlugFacts) -> bool:
        """Judge this cycle's facts; returns whether the car is paused as idle now."""
        sample = f.sample
        if sample is None or not sample.cp_state.vehicle_connected:
            self._since = self._until = None
            return False
        if self._until is not None:
            if f.now < self._until:
                return True
            self._until = self._since = None  # probe: offer current again
            log.info("car_probe", charger=self._spec.id, reason="offering current again")
        offered = f.written_a or 0
        if not f.settled:
            return False  # measured before its offer was in force: nothing to judge yet
        if f.fresh and offered >= self._spec.min_a and f.grid_a.max < 1.0:
            if self._since is None:
                self._since = max(f.now, f.settled_at + self._grace_s)
            elif f.now - self._since >= self._after_s:
                self._until = f.now + self._reprobe_s
                log.info(
                    "car_not_charging",
                    charger=self._spec.id,
                    offered_a=offered,
                    reason="takes no current: paused, offered again later",
                )
                return True
        else:
            self._since = None
        return False


__all__ = ["IdleCar"]
