"""The offline optimum: the most energy any controller could have delivered (perfect foresight).

A linear program over the whole scenario in 1-minute steps (scipy HiGHS, sparse):

* variable ``i[c, m]`` >= 0: per-phase current of car ``c`` in minute ``m`` of its stay;
* bound: ``i <= min(car max, charger max, Direct EVSE target in force during the minute)``;
* energy: ``sum_m i[c, m] * phases_c * V * overlap_s / 3600 <= energy_wh_c`` (what the car wants);
* every circuit and grid phase, every minute: the EV currents on that phase below the circuit
  ``<= max(0, lowest limit in force during the minute - highest non-EV load during the minute)``
  (non-EV load = base load + steps - PV on main; a sub-circuit's own ``circuit_loads`` and
  steps on it, and on the circuits below it);
* PV-mode cars together draw at most the PV surplus (PV - base load), minpv cars may add 6 A each.

Objective: maximise delivered energy. :func:`offline_met_needs` solves the same constraints as a
MILP (one binary per car with ``announce_departure = true`` leaving within the run: its need met
to ``1 - MET_TOL`` by its departure) and maximises how many needs are met: the perfect-foresight
count that "energy needs met by departure" is compared with.

The 6 A minimum current is only partly modelled (a car gets 0 in a minute where even alone it
could not get 6 A); otherwise it is relaxed (an LP, not a MILP), so the value is an upper bound.
Faults do not reduce it (a healthy-device optimum).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from fuseguard.model.circuits import MAIN
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases
from fuseguard.scenario.config import Scenario
from fuseguard.scenario.metrics import MET_TOL
from fuseguard.scenario.schedule import Schedule

STEP_S = 60.0
_SAMPLES = 7  # evaluation points per minute for the non-EV load (plus profile breakpoints)


def _minute_non_ev(
    schedule: Schedule, n_steps: int, step_s: float, circuit: str = MAIN
) -> list[Phases]:
    sc = schedule.scenario
    breakpoints = sorted(schedule.load_times())
    breakpoints += [t for s, e, _ in schedule.steps for t in (s, e - 1e-6)]
    breakpoints.sort()
    out: list[Phases] = []
    j = 0
    for m in range(n_steps):
        t0 = m * step_s
        t1 = min((m + 1) * step_s, sc.site.duration_s)
        times = [t0 + (t1 - t0) * k / (_SAMPLES - 1) for k in range(_SAMPLES)]
        while j < len(breakpoints) and breakpoints[j] < t0:
            j += 1
        k = j
        while k < len(breakpoints) and breakpoints[k] < t1:
            times.append(breakpoints[k])
            k += 1
        load = schedule.non_ev_a if circuit == MAIN else partial(schedule.base_a, circuit=circuit)
        worst = load(times[0])
        for t in times[1:]:
            worst = worst.maximum(load(t))
        out.append(worst)
    return out


def _minute_surplus_w(schedule: Schedule, n_steps: int, step_s: float) -> list[float]:
    sc = schedule.scenario
    out = []
    for m in range(n_steps):
        t0 = m * step_s
        t1 = min((m + 1) * step_s, sc.site.duration_s)
        times = [t0 + (t1 - t0) * k / (_SAMPLES - 1) for k in range(_SAMPLES)]
        s = min(schedule.pv_w(t) - schedule.base_a(t).total * sc.site.voltage_v for t in times)
        out.append(max(0.0, s))
    return out


class _Problem:
    """The scenario on the LP's minute grid: circuits, headroom per circuit, phase and minute."""

    def __init__(self, scenario: Scenario, step_s: float) -> None:
        self.sc = scenario
        self.step_s = step_s
        self.schedule = Schedule(scenario)
        self.duration = scenario.site.duration_s
        self.n_steps = math.ceil(self.duration / step_s)
        self.circuits = list(scenario.circuit_fuses)
        self.fuses = [fuse.as_tuple() for fuse in scenario.circuit_fuses.values()]
        self.cidx = {c: i for i, c in enumerate(self.circuits)}
        self.non_ev = _minute_non_ev(self.schedule, self.n_steps, step_s)
        # sub-circuits with their own non-EV load ([[circuit_loads]], base steps on them)
        loaded = {load.circuit for load in scenario.circuit_loads}
        loaded |= set(self.schedule.step_circuits) - {MAIN}
        self.circuit_non_ev = {
            self.cidx[c]: _minute_non_ev(self.schedule, self.n_steps, step_s, c)
            for c in self.circuits
            if c != MAIN and any(scenario.circuit_tree.in_subtree(x, c) for x in loaded)
        }

    def window(self, m: int) -> tuple[float, float]:
        """Start and end of minute ``m``."""
        return m * self.step_s, min((m + 1) * self.step_s, self.duration)

    def headroom(self, k: int, p: int, m: int) -> float:
        """What the EVs may draw on circuit ``k``, phase ``p`` in minute ``m``."""
        if self.circuits[k] == MAIN:
            t0, t1 = self.window(m)
            return max(0.0, self.schedule.min_main_limit_a(t0, t1) - self.non_ev[m][p])
        loaded = self.circuit_non_ev.get(k)
        return self.fuses[k][p] if loaded is None else max(0.0, self.fuses[k][p] - loaded[m][p])


@dataclass
class _Variables:
    """One variable per car and minute of its stay: the car's current in that minute."""

    car: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)  # Wh per A
    ub: list[float] = field(default_factory=list)
    car_phases: list[tuple[int, ...]] = field(default_factory=list)
    car_paths: list[list[int]] = field(default_factory=list)
    car_mode: list[str] = field(default_factory=list)


@dataclass
class _Rows:
    """The sparse inequality system ``A_ub x <= b_ub``, row by row."""

    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    rhs: list[float] = field(default_factory=list)

    def add(self, entries: Iterable[tuple[int, float]], bound: float) -> None:
        row = len(self.rhs)
        for col, val in entries:
            self.rows.append(row)
            self.cols.append(col)
            self.vals.append(val)
        self.rhs.append(bound)


def _variables(pb: _Problem) -> _Variables:
    sc, sched = pb.sc, pb.schedule
    specs = {ch.id: ch for ch in sc.chargers}
    v = _Variables()
    for ci, car in enumerate(sc.cars):
        ch = specs[car.charger]
        phases = tuple(p.index for p in ch.rotation.grid_phases(car.phases))
        path = [pb.cidx[c] for c in sc.path_to_main(ch.circuit)]
        v.car_phases.append(phases)
        v.car_paths.append(path)
        v.car_mode.append(ch.mode.value)
        cap = min(car.max_a, float(ch.max_a))
        m0 = int(car.arrive_s // pb.step_s)
        m1 = min(pb.n_steps, math.ceil(min(car.depart_s, pb.duration) / pb.step_s))
        for m in range(m0, m1):
            t0, t1 = pb.window(m)
            overlap = min(t1, car.depart_s) - max(t0, car.arrive_s)
            if overlap <= 0:
                continue
            ub = cap
            for w in sched.targets:
                if w.charger == car.charger and w.start_s < t1 and t0 < w.end_s:
                    ub = min(ub, w.current_a)
            # A car charges with at least 6 A or not at all: where even the car alone could not
            # get 6 A (own caps, target, circuit headroom after the non-EV load) it gets 0.
            alone = min(pb.headroom(k, p, m) for k in path for p in phases)
            if min(ub, alone) < MIN_CHARGE_CURRENT_A:
                ub = 0.0
            v.car.append(ci)
            v.step.append(m)
            v.coef.append(car.phases * sc.site.voltage_v * overlap / 3600.0)
            v.ub.append(ub)
    return v


def _energy_rows(pb: _Problem, v: _Variables, rows: _Rows) -> None:
    by_car: dict[int, list[int]] = {}
    for col, c in enumerate(v.car):
        by_car.setdefault(c, []).append(col)
    for c, cols in by_car.items():
        rows.add(((col, v.coef[col]) for col in cols), pb.sc.cars[c].energy_wh)


def _circuit_rows(pb: _Problem, v: _Variables, rows: _Rows) -> None:
    keyed: dict[tuple[int, int, int], list[int]] = {}
    for col, c in enumerate(v.car):
        m = v.step[col]
        for k in v.car_paths[c]:
            for p in v.car_phases[c]:
                keyed.setdefault((k, p, m), []).append(col)
    for (k, p, m), cols in keyed.items():
        rows.add(((col, 1.0) for col in cols), pb.headroom(k, p, m))


def _pv_rows(pb: _Problem, v: _Variables, rows: _Rows) -> None:
    """PV-mode cars share the surplus; minpv cars may add 6 A each."""
    if not any(mode in ("pv", "minpv") for mode in v.car_mode):
        return
    volt = pb.sc.site.voltage_v
    surplus = _minute_surplus_w(pb.schedule, pb.n_steps, pb.step_s)
    by_step: dict[int, list[int]] = {}
    for col, c in enumerate(v.car):
        if v.car_mode[c] in ("pv", "minpv"):
            by_step.setdefault(v.step[col], []).append(col)
    for m, cols in by_step.items():
        allowance = 0.0
        entries: list[tuple[int, float]] = []
        for col in cols:
            c = v.car[col]
            entries.append((col, len(v.car_phases[c]) * volt))
            if v.car_mode[c] == "minpv":
                allowance += MIN_CHARGE_CURRENT_A * len(v.car_phases[c]) * volt
        rows.add(entries, surplus[m] + allowance)


def offline_optimum_wh(scenario: Scenario, *, step_s: float = STEP_S) -> float:
    """Most energy deliverable to the cars in ``scenario`` (Wh); see the module docstring."""
    pb = _Problem(scenario, step_s)
    v = _variables(pb)
    n_vars = len(v.car)
    if n_vars == 0:
        return 0.0
    rows = _Rows()
    _energy_rows(pb, v, rows)
    _circuit_rows(pb, v, rows)
    _pv_rows(pb, v, rows)
    a_ub = sparse.csr_matrix((rows.vals, (rows.rows, rows.cols)), shape=(len(rows.rhs), n_vars))
    res = linprog(
        c=-np.asarray(v.coef),
        A_ub=a_ub,
        b_ub=np.asarray(rows.rhs),
        bounds=np.column_stack([np.zeros(n_vars), np.asarray(v.ub)]),
        method="highs",
    )
    if res.status != 0:
        msg = f"offline optimum LP failed: {res.message}"
        raise RuntimeError(msg)
    return float(-res.fun)


def offline_met_needs(
    scenario: Scenario, *, step_s: float = STEP_S, time_limit_s: float = 120.0
) -> int | None:
    """Most announced departure needs any controller could have met (perfect foresight, the 6 A
    minimum relaxed as in :func:`offline_optimum_wh`); None without announced cars."""
    announced = [
        ci
        for ci, car in enumerate(scenario.cars)
        if car.announce_departure and car.depart_s <= scenario.site.duration_s
    ]
    if not announced:
        return None
    pb = _Problem(scenario, step_s)
    v = _variables(pb)
    n_x, n_y = len(v.car), len(announced)
    rows = _Rows()
    _energy_rows(pb, v, rows)
    _circuit_rows(pb, v, rows)
    _pv_rows(pb, v, rows)
    cols_of: dict[int, list[int]] = {}
    for col, c in enumerate(v.car):
        cols_of.setdefault(c, []).append(col)
    for k, ci in enumerate(announced):  # delivered >= (1 - tol) * need * y
        entries = [(col, -v.coef[col]) for col in cols_of.get(ci, [])]
        entries.append((n_x + k, (1.0 - MET_TOL) * scenario.cars[ci].energy_wh))
        rows.add(entries, 0.0)
    n = n_x + n_y
    a_ub = sparse.csr_matrix((rows.vals, (rows.rows, rows.cols)), shape=(len(rows.rhs), n))
    res = milp(
        c=np.concatenate([np.zeros(n_x), -np.ones(n_y)]),
        constraints=LinearConstraint(a_ub, -np.inf, np.asarray(rows.rhs)),
        integrality=np.concatenate([np.zeros(n_x), np.ones(n_y)]),
        bounds=Bounds(np.zeros(n), np.concatenate([np.asarray(v.ub), np.ones(n_y)])),
        options={"time_limit": time_limit_s},
    )
    if res.x is None:
        msg = f"met-needs MILP failed: {res.message}"
        raise RuntimeError(msg)
    return round(float(np.sum(res.x[n_x:])))
