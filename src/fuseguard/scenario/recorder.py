"""Measuring a run tick by tick: overload, reactions, fallbacks, pauses, fairness, the timeline.

The :class:`Recorder` is called after every site tick (``SiteModel.on_tick``) and reads only
ground truth: what the charge points really draw and the limits the :class:`Schedule` says are in
force, never what the policy under test believes. Definitions in :mod:`fuseguard.scenario.metrics`
and ``docs/scenarios.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fuseguard.model.circuits import MAIN
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import ZERO
from fuseguard.scenario.adapters import ConnectorCharger
from fuseguard.scenario.config import CIRCUIT_METER_PREFIX, GRID_METER, PV_METER, Scenario
from fuseguard.scenario.metrics import (
    MET_TOL,
    OVERLOAD_TOL_A,
    TARGET_TOL_A,
    CarTrack,
    Episode,
    FaultTrack,
    MetricState,
    jain,
    phase_waterfill,
    share_ratios,
)
from fuseguard.scenario.schedule import Schedule
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import BaseLoad, PvPlant

JAIN_PERIOD_S = 10.0
FAIRNESS_WINDOW_S = 3600.0

FloatArray = npt.NDArray[np.float32]

#: Charger faults after which the charger's own fallback (the safe current) must hold.
_SILENT = frozenset({DeviceFault.OFFLINE, DeviceFault.GARBAGE})


@dataclass
class Timeline:
    """What happened, tick by tick (for ``--plot`` and ``--csv``)."""

    charger_ids: list[str]
    t_s: FloatArray
    grid_a: FloatArray
    limit_a: FloatArray
    ev_a: FloatArray
    charger_a: FloatArray
    setpoint_a: FloatArray
    n: int = 0


def new_timeline(ids: list[str], n: int) -> Timeline:
    """An empty timeline for ``n`` ticks of the chargers ``ids``."""
    k = len(ids)
    return Timeline(
        charger_ids=ids,
        t_s=np.zeros(n, dtype=np.float32),
        grid_a=np.zeros((n, 3), dtype=np.float32),
        limit_a=np.zeros(n, dtype=np.float32),
        ev_a=np.zeros((n, 3), dtype=np.float32),
        charger_a=np.zeros((n, k), dtype=np.float32),
        setpoint_a=np.zeros((n, k), dtype=np.float32),
    )


@dataclass
class Recorder:
    """Accumulates the metrics of one run (see the module docstring)."""

    scenario: Scenario
    schedule: Schedule
    base: BaseLoad
    pv: PvPlant | None
    connectors: dict[str, ChargePoint]
    adapters: dict[str, ConnectorCharger]
    tracks: dict[str, CarTrack]
    faults: list[FaultTrack]
    timeline: Timeline | None
    period_s: float
    #: the non-EV loads by circuit (main: ``base``); sub-circuit ones count on their whole path
    circuit_loads: Mapping[str, BaseLoad] = field(default_factory=dict)
    state: MetricState = field(default_factory=MetricState)
    active_car: dict[str, CarTrack] = field(default_factory=dict)
    _next_jain: float = 0.0
    _next_window: float = FAIRNESS_WINDOW_S
    _last_t: float = 0.0
    #: per car present: the sum and count of its cap sampled every JAIN_PERIOD_S (its mean cap
    #: over the stay is what its energy share is judged against)
    _caps: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sc = self.scenario
        fuses = sc.circuit_fuses
        self.circuits = list(fuses)
        self.cidx = {c: i for i, c in enumerate(self.circuits)}
        self.state.overload_as = {c: [0.0, 0.0, 0.0] for c in self.circuits}
        self.paths = {
            ch.id: [self.cidx[c] for c in sc.path_to_main(ch.circuit)] for ch in sc.chargers
        }
        self.conn_list = [(cid, self.connectors[cid], self.paths[cid]) for cid in self.connectors]
        self.fuses = [fuses[c].as_tuple() for c in self.circuits]
        self.has_targets = bool(self.schedule.targets)
        self.duration = sc.site.duration_s
        tree = sc.circuit_tree
        sub_loads = [(c, load) for c, load in self.circuit_loads.items() if load is not self.base]
        self.main_loads = [load for _, load in sub_loads]
        # circuit index -> the sub-circuit loads at or below it (main: every one, above)
        self.loads_below = {
            ci: [load for c, load in sub_loads if tree.in_subtree(c, circ)]
            for ci, circ in enumerate(self.circuits)
            if ci > 0 and any(tree.in_subtree(c, circ) for c, _ in sub_loads)
        }

    def on_tick(self, t: float) -> None:
        """Measure the state of the site after its tick at ``t``."""
        self._last_t = t
        ev = [[0.0, 0.0, 0.0] for _ in self.circuits]
        for _cid, conn, path in self.conn_list:
            g = conn.grid_tuple
            if g[0] or g[1] or g[2]:
                for ci in path:
                    row = ev[ci]
                    row[0] += g[0]
                    row[1] += g[1]
                    row[2] += g[2]
        non_ev = self.base.grid_current_a()
        for load in self.main_loads:
            non_ev = non_ev + load.grid_current_a()
        if self.pv is not None:
            non_ev = non_ev + self.pv.grid_current_a()
        ne = (non_ev.l1, non_ev.l2, non_ev.l3)
        main_limit = self.schedule.main_limit_a(t)
        dt = self.period_s if t < self.duration - 1e-9 else 0.0
        compliant = self._overload(t, dt, ev, ne, main_limit)
        st = self.state
        open_ep = st.open_episode()
        if not compliant and open_ep is None and dt > 0:
            st.episodes.append(Episode(t))
        elif compliant and open_ep is not None:
            open_ep.end_s = t
        for f in self.faults:  # when was the fallback in force?
            if (
                f.fallback_s is None
                and f.start_s <= t < f.end_s
                and self._fallback_holds(f, ev, compliant)
            ):
                f.fallback_s = t - f.start_s
        self._pauses()
        if t >= self._next_jain and dt > 0:
            self._next_jain = t + JAIN_PERIOD_S
            self._fairness(t)
        if self.timeline is not None:
            self._record(self.timeline, t, ev[0], ne, main_limit)

    def _overload(
        self,
        t: float,
        dt: float,
        ev: list[list[float]],
        ne: tuple[float, float, float],
        main_limit: float,
    ) -> bool:
        """Accumulate EV-attributable overload; True when the site is compliant."""
        st = self.state
        worst = 0.0
        sub_ne = {ci: _sum_a(loads) for ci, loads in self.loads_below.items()}
        for ci, circ in enumerate(self.circuits):
            fuse = self.fuses[ci]
            row = ev[ci]
            acc = st.overload_as[circ]
            own = ne if ci == 0 else sub_ne.get(ci)
            for p in range(3):
                limit = main_limit if ci == 0 else fuse[p]
                base_p = own[p] if own is not None else 0.0
                excess = base_p + row[p] - max(limit, base_p)
                if excess > 0:
                    acc[p] += excess * dt
                    worst = max(worst, excess)
        st.max_overshoot_a = max(st.max_overshoot_a, worst)
        compliant = worst <= OVERLOAD_TOL_A
        if self.has_targets:
            for cid, conn in self.connectors.items():
                cap = self.schedule.target_cap_a(cid, t)
                if cap is not None and conn.draw_a > cap + TARGET_TOL_A:
                    compliant = False
        return compliant

    def _pauses(self) -> None:
        """Count pause/resume cycles of cars that still need energy."""
        for cid, track in self.active_car.items():
            conn = self.connectors[cid]
            car = conn.car
            if car is None:
                continue
            drawing = conn.draw_a > 0
            if track.was_drawing and not drawing and car.remaining_wh > 1e-6:
                track.paused = True
            elif drawing and track.paused:
                track.cycles += 1
                track.paused = False
            track.was_drawing = drawing

    def _record(
        self,
        tl: Timeline,
        t: float,
        main_ev: list[float],
        ne: tuple[float, float, float],
        main_limit: float,
    ) -> None:
        if tl.n >= len(tl.t_s):
            return
        i = tl.n
        tl.t_s[i] = t
        tl.grid_a[i] = (ne[0] + main_ev[0], ne[1] + main_ev[1], ne[2] + main_ev[2])
        tl.limit_a[i] = main_limit
        tl.ev_a[i] = main_ev
        tl.charger_a[i] = [c.draw_a for _id, c, _p in self.conn_list]
        tl.setpoint_a[i] = [c.offered_a for _id, c, _p in self.conn_list]
        tl.n += 1

    def _fallback_holds(self, f: FaultTrack, ev: list[list[float]], compliant: bool) -> bool:
        if f.device == GRID_METER or f.device.startswith(CIRCUIT_METER_PREFIX):
            # the EVs below the lost meter together at FallbackCurrentLimit (docs/safety.md)
            circuit = (
                f.device.removeprefix(CIRCUIT_METER_PREFIX) if f.device != GRID_METER else MAIN
            )
            ci = self.cidx[circuit]
            return max(ev[ci]) <= self.schedule.meter_fallback_a(f.start_s) + OVERLOAD_TOL_A
        if f.device == PV_METER:  # the PV modes go on with the grid meter alone
            return compliant
        if f.kind in _SILENT:
            conn = self.connectors[f.device]
            return conn.draw_a <= self.scenario.site.charger_safe_current_a + OVERLOAD_TOL_A
        return compliant

    def _cap_a(self, cid: str, t: float) -> float:
        """The car's cap now: min(car max, charger max, Direct EVSE target)."""
        conn = self.connectors[cid]
        car = conn.car
        cap = min(car.max_current_a, conn.max_current_a) if car is not None else 0.0
        target = self.schedule.target_cap_a(cid, t) if self.has_targets else None
        return cap if target is None else min(cap, target)

    def _fairness(self, t: float) -> None:
        """Sample the fairness of this instant into the current window (see docs/scenarios.md).

        The fair share of each car is the max-min split, per circuit and phase, of the current
        the EVs of its group actually draw through each circuit on each phase (so a policy that
        gives a one-phase car more on a free phase, or less to a car behind a sub-circuit
        bottleneck, is not penalised); draws and fair shares are summed per car over
        ``FAIRNESS_WINDOW_S``, so cars taking turns at the 6 A minimum are judged over time, not
        at an instant when turn-taking is the only safe answer.
        """
        groups: dict[tuple[int, str], list[tuple[str, float, tuple[tuple[int, int], ...], float]]]
        groups = {}
        for cid, track in self.active_car.items():
            conn = self.connectors[cid]
            car = conn.car
            acc = self._caps.setdefault(track.name, [0.0, 0.0])
            acc[0] += self._cap_a(cid, t)
            acc[1] += 1.0
            if car is None or car.remaining_wh <= 1e-6 or self.adapters[cid].fault is not None:
                continue
            cap = self._cap_a(cid, t)
            phases = tuple(
                (circuit, p.index)
                for circuit in self.paths[cid]
                for p in conn.rotation.grid_phases(car.phases)
            )
            key = f"{cid}@{track.arrive_s:g}"
            groups.setdefault((track.priority, track.mode), []).append(
                (key, conn.draw_a, phases, cap)
            )
        st = self.state
        for group, members in groups.items():
            if len(members) < 2:
                continue
            capacity: dict[tuple[int, int], float] = {}
            for _, draw, rows, _ in members:
                for row in rows:
                    capacity[row] = capacity.get(row, 0.0) + draw
            fair = phase_waterfill(capacity, [(ph, cap) for _, _, ph, cap in members])
            for (key, draw, _, _), share in zip(members, fair, strict=True):
                acc = st.jain_window.setdefault(key, [0.0, 0.0])
                acc[0] += draw
                acc[1] += share
                st.jain_window_groups[key] = group
        if t >= self._next_window:
            self._next_window = t + FAIRNESS_WINDOW_S
            self.close_fairness_window()

    def phase(self, t: float) -> tuple[float, float]:
        """How far ahead of world time ``t`` the recorder's own cadences fall due (the next Jain
        sample, the end of the fairness window): equal a day apart for a day jump."""
        return (self._next_jain - t, self._next_window - t)

    def skip_days(self, delta_s: float) -> None:
        """The world jumped ``delta_s`` ahead (whole days, ``scenario/dayjump.py``): move the
        recorder's own deadlines with it."""
        self._next_jain += delta_s
        self._next_window += delta_s
        self._last_t += delta_s

    def close_fairness_window(self) -> None:
        """Judge the window that ends now and start a new one."""
        self._share_fairness(self._last_t)
        st = self.state
        by_group: dict[tuple[int, str], list[float]] = {}
        for key, (drawn, fair) in st.jain_window.items():
            if fair > 0:
                by_group.setdefault(st.jain_window_groups[key], []).append(drawn / fair)
        for ratios in by_group.values():
            if len(ratios) < 2:
                continue
            j = jain(ratios)
            if j is None:
                continue
            weight = float(len(ratios))
            st.jain_weighted += j * weight
            st.jain_weight += weight
            st.jain_samples += 1
        st.jain_window.clear()
        st.jain_window_groups.clear()

    def _share_fairness(self, t: float) -> None:
        """Jain by energy share over plug-in time of the cars present now (docs/scenarios.md)."""
        volt = self.scenario.site.voltage_v
        groups: dict[tuple[int, str], list[tuple[float, float, bool, tuple[tuple[int, int], ...]]]]
        groups = {}
        for cid, track in self.active_car.items():
            conn = self.connectors[cid]
            car = conn.car
            hours = (t - track.arrive_s) / 3600.0
            if (
                car is None
                or hours < FAIRNESS_WINDOW_S / 3600.0
                or self.adapters[cid].fault is not None
            ):
                continue
            total, n = self._caps.get(track.name, (0.0, 0.0))
            cap = total / n if n > 0 else self._cap_a(cid, t)  # mean cap over the stay
            share = car.drawn_wh / (car.phases * volt * hours)
            met = car.remaining_wh <= MET_TOL * track.energy_wh
            rows = tuple(
                (circuit, p.index)
                for circuit in self.paths[cid]
                for p in conn.rotation.grid_phases(car.phases)
            )
            groups.setdefault((track.priority, track.mode), []).append((share, cap, met, rows))
        st = self.state
        for members in groups.values():
            if len(members) < 2:
                continue
            j = jain(share_ratios(members))
            if j is None:
                continue
            st.share_weighted += j * len(members)
            st.share_weight += len(members)
            st.share_samples += 1


def _sum_a(loads: list[BaseLoad]) -> tuple[float, float, float]:
    total = ZERO
    for load in loads:
        total = total + load.grid_current_a()
    return total.as_tuple()


__all__ = ["FAIRNESS_WINDOW_S", "JAIN_PERIOD_S", "Recorder", "Timeline", "new_timeline"]
