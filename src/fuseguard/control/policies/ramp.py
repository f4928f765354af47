"""Ramp: decreases at once, increases held and ramped.

Owns: since when a running car has been allowed a higher setpoint and the lowest value allowed
since then. A running car is raised only when the higher value has held for ``raise_after_s`` (no
1 A up-and-down with every flicker of the building load), to the lowest value of that time and by
at most ``ramp_up_a_per_s`` per second since the last change; a paused car starts at its minimum.
"""

from __future__ import annotations

from fuseguard.control.types import ChargerSpec


class Ramp:
    """One plug's ramp."""

    def __init__(
        self, spec: ChargerSpec, *, raise_after_s: float, up_a_per_s: float, period_s: float
    ) -> None:
        self._spec = spec
        self._raise_after_s = raise_after_s
        self._up_a_per_s = up_a_per_s
        self._period_s = period_s
        self._raise_since: float | None = None
        self._raise_floor = 0

    @property
    def raising_since(self) -> float | None:
        """Since when a higher setpoint has been allowed (None: no raise pending)."""
        return self._raise_since

    def update(self, target: int, *, written_a: int | None, changed_at: float, now: float) -> int:
        """The setpoint to write now on the way to ``target``."""
        prev = written_a or 0
        if target <= prev:
            self._raise_since = None
            return target
        if prev > 0:
            if self._raise_since is None or target < self._raise_floor:
                self._raise_floor = target
            if self._raise_since is None:
                self._raise_since = now
            if now - self._raise_since < self._raise_after_s:
                return prev
            target = self._raise_floor
            self._raise_since = None
        min_a = self._spec.min_a
        if prev == 0:
            return max(min_a, min(target, min_a))
        step = self._up_a_per_s * max(now - changed_at, self._period_s)
        return min(target, prev + max(1, int(step)))


__all__ = ["Ramp"]
