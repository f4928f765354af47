"""Charging session: since when a car is plugged in, its energy share and its energy so far.

Owns: the start of the current session (the first sample with a vehicle connected), the
per-phase ampere-seconds and the energy the car has drawn since (integrated from the newest sample
between cycles, left Riemann sum), and the end of the session (a sample without a vehicle). The
allocator's queue pre-step (``allocation/urgency.py``) reads two numbers from it:

* ``share_a``: the mean per-phase current since plug-in, the car's energy per hour plugged in
  (per phase, so a one-phase and a three-phase car compare in the amps the allocator shares);
* ``delivered_wh``: what the car drew this session (a departure need counts against it).

A plug whose charger is silent keeps its session; the newest sample stands for the gap (the
loop reserves its last setpoint as if it drew it, ``docs/safety.md``). Numbers come from samples
that passed the reading's finite checks; negative draws count as 0.
"""

from __future__ import annotations

import structlog

from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.types import ChargerSpec

log = structlog.get_logger(__name__)


class ChargeSession:
    """One plug's current charging session (see module docstring)."""

    def __init__(self, spec: ChargerSpec) -> None:
        self._spec = spec
        self._start: float | None = None
        self._last_t = 0.0
        self._last_a = 0.0
        self._last_w = 0.0
        self._amp_s = 0.0
        self._wh = 0.0

    @property
    def active(self) -> bool:
        """A car is plugged in (as far as the newest sample says)."""
        return self._start is not None

    @property
    def delivered_wh(self) -> float:
        """Energy the car drew this session (0 without a session)."""
        return self._wh

    def plugged_s(self, now: float) -> float:
        """Seconds since the car was plugged in (0 without a session)."""
        return 0.0 if self._start is None else max(0.0, now - self._start)

    def share_a(self, now: float) -> float | None:
        """Mean per-phase current since plug-in (A); None without a session."""
        if self._start is None:
            return None
        elapsed = now - self._start
        return self._amp_s / elapsed if elapsed > 0 else 0.0

    def update(self, f: PlugFacts) -> float | None:
        """Advance the session to ``f.now`` with the draw of the newest sample; returns the
        start (monotonic s) of a session that ended now, else None."""
        sample = f.sample
        if sample is None:
            return None
        if not sample.cp_state.vehicle_connected:
            ended = self._start
            if ended is not None:
                log.info(
                    "session_ended",
                    charger=self._spec.id,
                    energy_wh=round(self._wh, 1),
                    plugged_s=round(f.now - ended, 1),
                    reason="vehicle disconnected",
                )
            self._start = None
            self._amp_s = self._wh = 0.0
            return ended
        if self._start is None:
            self._start = f.now
            self._amp_s = self._wh = 0.0
        else:
            dt = max(0.0, f.now - self._last_t)
            self._amp_s += self._last_a * dt
            self._wh += self._last_w * dt / 3600.0
        self._last_t = f.now
        self._last_a = max(0.0, f.grid_a.max)
        self._last_w = max(0.0, sample.power_w)
        return None


__all__ = ["ChargeSession"]
