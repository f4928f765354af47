"""Demand cap: a car that draws clearly less than it is offered frees the rest for the others.

Owns: since when a charging car has drawn less than ``written - underuse_margin_a``, and the cap
set after ``underuse_after_s`` (its draw plus the margin, at least the plug's minimum; a cap only
ever moves down while it holds). The cap is lifted when the car takes what it gets again, when
it is unplugged, and after ``underuse_probe_s`` (probe again: the car may want more now).
:func:`max_current_a` combines the cap with the charger's, the cable's and the spec's limits.

Also owns the car's own current limit (``car_limit_a``): a car that draws 13 A at a 16 A offer
for ``underuse_after_s`` can take 13 A and no more (its on-board charger; the plug's ``max_a``
is the charger's and the cable's). Unlike the cap it is not probed away: it holds for the
session, the highest such draw (a car that tapers near full does not lower it), whole amps up,
at least the plug's minimum. It is forgotten when the car draws a whole amp more (it can
take more after all) and when it is seen unplugged (not on a missed reading); non-finite or
negative draws teach nothing. The allocator's least laxity uses it (``Plug.car_limit_a``,
``allocation/urgency.py``): a 16 A car on a 32 A plug must start its turn at the cap it really
has, not at 32 A.

And the most the car has been seen to draw this session (``seen_max_a``, per phase, whole amps
down): a car seen drawing 25 A can take at least 25 A, whatever its limit, so least laxity
need not judge it at the 16 A it assumes for a car whose limit is not learned
(``allocation/urgency.py``). Learned from every finite, non-negative reading while a car is
plugged in, it only ever rises; forgotten when the car is seen unplugged (not on a missed
reading); non-finite or negative draws teach nothing.
"""

from __future__ import annotations

import math

from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.types import ChargerSpec
from fuseguard.model.samples import ChargerSample


class DemandCap:
    """One plug's demand cap."""

    def __init__(
        self, spec: ChargerSpec, *, margin_a: float, after_s: float, probe_s: float
    ) -> None:
        self._spec = spec
        self._margin_a = margin_a
        self._after_s = after_s
        self._probe_s = probe_s
        self._under_since: float | None = None
        self._cap_a: float | None = None
        self._cap_at = 0.0
        self._car_limit_a: float | None = None
        self._seen_max_a: float | None = None

    @property
    def car_limit_a(self) -> float | None:
        """The car's own current limit learned this session (None: not known)."""
        return self._car_limit_a

    @property
    def seen_max_a(self) -> float | None:
        """The most the car has been seen to draw this session (A per phase, whole amps down;
        None: nothing seen yet)."""
        return self._seen_max_a

    @property
    def cap_a(self) -> float | None:
        """The cap in force after the last update (None: none)."""
        return self._cap_a

    @property
    def steady(self) -> bool:
        """No timer runs and no cap holds: the next update on the same facts returns the same
        and changes nothing, whenever it runs."""
        return self._under_since is None and self._cap_a is None

    def update(self, f: PlugFacts) -> float | None:
        """Judge this cycle's facts; returns the cap in force now (None: none)."""
        sample = f.sample
        if sample is not None and sample.cp_state.vehicle_connected:
            self._see(sample)
        charging = sample is not None and sample.cp_state.charging and bool(f.written_a)
        if charging and not f.settled:
            pass  # measured before its setpoint was in force: nothing to judge yet
        elif sample is not None and charging and not math.isfinite(max(sample.current_a)):
            pass  # a non-finite reading says nothing about the car (and has no whole amps)
        elif sample is not None and charging and f.written_a:
            drawn = max(sample.current_a)
            limit = self._car_limit_a
            if limit is not None and drawn >= limit + 1.0:
                self._car_limit_a = limit = None  # it takes more: not its limit after all
            if drawn < f.written_a - self._margin_a:
                if self._under_since is None:
                    self._under_since = f.now
                elif f.now - self._under_since >= self._after_s:
                    cap = max(float(self._spec.min_a), math.ceil(drawn + self._margin_a))
                    if self._cap_a is None or cap < self._cap_a:
                        self._cap_a = cap
                        self._cap_at = f.now
                    if drawn >= 0.0:  # not negative: the car's own limit
                        own = max(float(self._spec.min_a), float(math.ceil(drawn)))
                        if limit is None or own > limit:
                            self._car_limit_a = own
            else:
                self._under_since = None
                if self._cap_a is not None and drawn >= self._cap_a - 1.0:
                    self._cap_a = None  # it takes what it gets: lift the cap
        else:
            self._under_since = None
            if sample is None or not sample.cp_state.vehicle_connected:
                self._cap_a = None
            if sample is not None and not sample.cp_state.vehicle_connected:
                self._car_limit_a = None  # unplugged: the next car has its own
                self._seen_max_a = None
        if self._cap_a is not None and f.now - self._cap_at >= self._probe_s:
            self._cap_a = None  # probe again: the car may want more now
        return self._cap_a

    def _see(self, sample: ChargerSample) -> None:
        """Raise the most seen by this reading (a non-finite phase or all negative: nothing)."""
        if not all(math.isfinite(v) for v in sample.current_a):
            return
        drawn = max(sample.current_a)
        if drawn < 0.0:
            return
        seen = float(math.floor(drawn))
        if self._seen_max_a is None or seen > self._seen_max_a:
            self._seen_max_a = seen


def max_current_a(spec: ChargerSpec, sample: ChargerSample | None, cap_a: float | None) -> int:
    """The most a plug can take now: its spec, the charger's and the cable's limits (where they
    are at least the minimum) and the demand cap; never below the plug's minimum."""
    limit = spec.max_a
    if sample is not None:
        for v in (sample.max_current_a, sample.cable_rating_a):
            if v is not None and v >= spec.min_a:
                limit = min(limit, int(v))
    if cap_a is not None:
        limit = min(limit, int(cap_a))
    return max(limit, spec.min_a)


__all__ = ["DemandCap", "max_current_a"]
