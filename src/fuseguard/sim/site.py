"""The physical site shared by all virtual devices: what a real building would be.

One :class:`SiteModel` holds the non-EV building load, PV and every simulated EV charger's draw.
The virtual meter (CEMM) reads the grid current from it; the virtual chargers add their vehicles'
draw to it. So one demo or scenario site is consistent end to end: the meter sees exactly what the
chargers draw.

Time: :meth:`SiteModel.run` ticks every ``period_s`` of the injected clock; each tick advances every
component (vehicles charge, meters integrate energy) by the elapsed time. Wire servers only read the
state of the last tick, like a real meter that publishes one telegram per period.

Sign convention: positive current/power = consumption from the grid; PV yields negative values.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock
from fuseguard.model.phases import ZERO, Phases


class SimComponent(Protocol):
    """Anything on the site that draws (or feeds) current."""

    circuit: str

    def tick(self, t_s: float, dt_s: float) -> None:
        """Advance internal state to site time ``t_s`` (``dt_s`` since the previous tick)."""

    def grid_current_a(self) -> Phases:
        """Current drawn from the grid, per grid phase (A), as of the last tick."""


@dataclass(slots=True)
class PiecewiseLinear:
    """A per-phase profile over site time, linear between points, constant outside them."""

    points: Sequence[tuple[float, Phases]]
    _times: list[float] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        if not self.points:
            msg = "a profile needs at least one point"
            raise ValueError(msg)
        times = [t for t, _ in self.points]
        if times != sorted(times):
            msg = "profile points must be sorted by time"
            raise ValueError(msg)
        self._times = times  # the breakpoints, once (called every site tick)

    def __call__(self, t_s: float) -> Phases:
        i = bisect.bisect_right(self._times, t_s)
        if i == 0:
            return self.points[0][1]
        if i >= len(self.points):
            return self.points[-1][1]
        (t0, v0), (t1, v1) = self.points[i - 1], self.points[i]
        frac = (t_s - t0) / (t1 - t0) if t1 > t0 else 1.0
        return v0 + (v1 - v0) * frac


@dataclass(slots=True)
class BaseLoad:
    """Non-EV building load following a profile (plus optional step overrides).

    ``shift_s``: the profile is read at ``t_s + shift_s`` (the scenario runner's jumps over
    quiet stretches move the world's time ahead of the site's, ``scenario/jump.py``)."""

    profile: Callable[[float], Phases]
    circuit: str = MAIN
    offset_a: Phases = ZERO
    shift_s: float = 0.0
    _now: Phases = ZERO

    def tick(self, t_s: float, dt_s: float) -> None:
        self._now = (self.profile(t_s + self.shift_s) + self.offset_a).maximum(0.0)

    def grid_current_a(self) -> Phases:
        return self._now


@dataclass(slots=True)
class PvPlant:
    """A PV inverter: half-sine between sunrise and sunset, optional cloud factor, balanced 3-phase.

    ``cloud`` maps site time to a factor in [0, 1] (1 = clear sky); ``shift_s`` as
    :class:`BaseLoad`'s.
    """

    peak_w: float
    sunrise_s: float
    sunset_s: float
    voltage_v: float = 230.0
    circuit: str = MAIN
    cloud: Callable[[float], float] | None = None
    power_w: float = 0.0
    shift_s: float = 0.0

    def tick(self, t_s: float, dt_s: float) -> None:
        t_s += self.shift_s
        day_s = t_s % 86400.0
        if self.sunrise_s < day_s < self.sunset_s:
            x = (day_s - self.sunrise_s) / (self.sunset_s - self.sunrise_s)
            p = self.peak_w * math.sin(math.pi * x)
            if self.cloud is not None:
                p *= min(max(self.cloud(t_s), 0.0), 1.0)
        else:
            p = 0.0
        self.power_w = p

    def grid_current_a(self) -> Phases:
        return Phases.uniform(-self.power_w / (3.0 * self.voltage_v))


@dataclass
class SiteModel:
    """Everything behind the grid connection, advanced in ticks of the injected clock."""

    clock: Clock
    voltage_v: float = 230.0
    period_s: float = 1.0
    circuits: dict[str, str | None] = field(default_factory=lambda: {MAIN: None})
    components: list[SimComponent] = field(default_factory=list)
    t_s: float = 0.0
    _start: float | None = None
    _listeners: list[Callable[[float], None]] = field(default_factory=list)
    _below: dict[str, list[SimComponent]] = field(default_factory=dict)

    def add(self, component: SimComponent) -> None:
        """Put a component on the site (its ``circuit`` must exist)."""
        if component.circuit not in self.circuits:
            msg = f"unknown circuit {component.circuit!r}"
            raise ValueError(msg)
        self.components.append(component)
        self._below.clear()
        component.tick(self.t_s, 0.0)

    def remove(self, component: SimComponent) -> None:
        """Take a component off the site."""
        self.components.remove(component)
        self._below.clear()

    def add_circuit(self, circuit_id: str, parent: str = MAIN) -> None:
        """Declare a sub-circuit below ``parent``."""
        if parent not in self.circuits:
            msg = f"unknown parent circuit {parent!r}"
            raise ValueError(msg)
        self.circuits[circuit_id] = parent
        self._below.clear()

    def on_tick(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(t_s)`` after every tick (meters record their telegram here)."""
        self._listeners.append(listener)

    def _in_subtree(self, circuit: str, root: str) -> bool:
        node: str | None = circuit
        while node is not None:
            if node == root:
                return True
            node = self.circuits.get(node)
        return False

    def current_a(self, circuit: str = MAIN) -> Phases:
        """Signed grid current through ``circuit`` (its components and sub-circuits), per phase."""
        below = self._below.get(circuit)
        if below is None:
            below = [c for c in self.components if self._in_subtree(c.circuit, circuit)]
            self._below[circuit] = below
        l1 = l2 = l3 = 0.0
        for comp in below:
            current = comp.grid_current_a()
            l1 += current.l1
            l2 += current.l2
            l3 += current.l3
        return Phases(l1, l2, l3)

    def power_w(self, circuit: str = MAIN) -> float:
        """Signed active power through ``circuit`` (cos phi = 1)."""
        return self.current_a(circuit).total * self.voltage_v

    def tick(self) -> None:
        """Advance every component to the clock's current time."""
        now = self.clock.monotonic()
        if self._start is None:
            self._start = now
        t = now - self._start
        dt = max(0.0, t - self.t_s)
        self.t_s = t
        for comp in list(self.components):
            comp.tick(t, dt)
        for listener in list(self._listeners):
            listener(t)

    async def run(self) -> None:
        """Tick every ``period_s`` until cancelled."""
        self.tick()
        while True:
            await self.clock.sleep(self.period_s)
            self.tick()


__all__ = ["MAIN", "BaseLoad", "PiecewiseLinear", "PvPlant", "SimComponent", "SiteModel"]
