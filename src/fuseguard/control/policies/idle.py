"""Idle car: a car that takes no current although offered (full, or not ready).

Owns: since when a connected car has taken (almost) nothing although offered at least its
minimum, and until when it is paused. After ``idle_after_s`` (counted from the end of the
decrease grace after the last setpoint change) it is paused, so the current offered to it goes
to others; after ``idle_reprobe_s`` it is offered current again to see whether it wants to
charge now. A re-probe offers only the plug's minimum (:attr:`IdleCar.probing`: the controller
caps the plug at its minimum until the car draws), and every further probe the car turns down
doubles the pause, up to ``MAX_BACKOFF`` times ``idle_reprobe_s`` (15, 30, 60, 60 ... min with
the defaults): a full car costs the others the current offered to it for ``idle_after_s`` per
probe (issue 18: in the 24 h office, full cars held 7 200 s of offers while others waited).
Drawing current or unplugging starts over.
"""

from __future__ import annotations

import structlog

from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.types import ChargerSpec

log = structlog.get_logger(__name__)

#: the longest pause of a car that keeps turning the probes down, in multiples of the reprobe time
MAX_BACKOFF = 4


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
        self._turned_down = 0  # idle verdicts since the car last drew current
        self._probing = False

    @property
    def paused_until(self) -> float | None:
        """Until when the car is paused as idle (None: it is not)."""
        return self._until

    @property
    def probing(self) -> bool:
        """Offered again after an idle pause and not drawing yet: offer only the minimum."""
        return self._probing

    @property
    def steady(self) -> bool:
        """Neither counting towards a pause nor paused: the next update on the same facts
        returns the same and changes nothing, whenever it runs."""
        return self._since is None and self._until is None

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
            self._turned_down = 0
            self._probing = False
            return False
        if self._until is not None:
            if f.now < self._until:
                return True
            self._until = self._since = None  # probe: offer current again
            self._probing = True
            log.info("car_probe", charger=self._spec.id, reason="offering current again")
        offered = f.written_a or 0
        if not f.settled:
            return False  # measured before its offer was in force: nothing to judge yet
        if f.fresh and offered >= self._spec.min_a and f.grid_a.max < 1.0:
            if self._since is None:
                self._since = max(f.now, f.settled_at + self._grace_s)
            elif f.now - self._since >= self._after_s:
                backoff = min(2**self._turned_down, MAX_BACKOFF)
                self._turned_down += 1
                self._probing = False
                self._until = f.now + self._reprobe_s * backoff
                log.info(
                    "car_not_charging",
                    charger=self._spec.id,
                    offered_a=offered,
                    reason="takes no current: paused, offered again later",
                )
                return True
        else:
            self._since = None
            if f.fresh and f.grid_a.max >= 1.0:  # it draws: a car that charges starts over
                self._turned_down = 0
                self._probing = False
        return False


__all__ = ["MAX_BACKOFF", "IdleCar"]
