"""The offline optimum: the most energy any controller could have delivered (perfect foresight).

A linear program over the whole scenario in 1-minute steps (scipy HiGHS, sparse):

* variable ``i[c, m]`` >= 0: per-phase current of car ``c`` in minute ``m`` of its stay;
* bound: ``i <= min(car max, charger max, Direct EVSE target in force during the minute)``;
* energy: ``sum_m i[c, m] * phases_c * V * overlap_s / 3600 <= energy_wh_c`` (what the car wants);
* every circuit and grid phase, every minute: the EV currents on that phase below the circuit
  ``<= max(0, lowest limit in force during the minute - highest non-EV load during the minute)``
  (non-EV load = base load + steps - PV, on main only; sub-circuits carry only chargers);
* PV-mode cars together draw at most the PV surplus (PV - base load), minpv cars may add 6 A each.

Objective: maximise delivered energy. The 6 A minimum current is only partly modelled (a car gets
0 in a minute where even alone it could not get 6 A); otherwise it is relaxed (an LP, not a MILP),
so the value is an upper bound. Faults do not reduce it (a healthy-device optimum).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from fuseguard.model.phases import Phases
from fuseguard.scenario.config import MAIN, Scenario
from fuseguard.scenario.evmodel import MIN_CURRENT_A
from fuseguard.scenario.schedule import Schedule

STEP_S = 60.0
_SAMPLES = 7  # evaluation points per minute for the non-EV load (plus profile breakpoints)


def _minute_non_ev(schedule: Schedule, n_steps: int, step_s: float) -> list[Phases]:
    sc = schedule.scenario
    breakpoints = sorted(t for t, _ in sc.base_load.points)
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
        worst = schedule.non_ev_a(times[0])
        for t in times[1:]:
            worst = worst.maximum(schedule.non_ev_a(t))
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


def offline_optimum_wh(scenario: Scenario, *, step_s: float = STEP_S) -> float:
    """Most energy deliverable to the cars in ``scenario`` (Wh); see the module docstring."""
    sc = scenario
    schedule = Schedule(sc)
    volt = sc.site.voltage_v
    duration = sc.site.duration_s
    n_steps = math.ceil(duration / step_s)
    specs = {ch.id: ch for ch in sc.chargers}
    circuits = list(sc.circuit_fuses)
    cidx = {c: i for i, c in enumerate(circuits)}

    non_ev = _minute_non_ev(schedule, n_steps, step_s)

    def headroom(k: int, p: int, m: int) -> float:
        t0, t1 = m * step_s, min((m + 1) * step_s, duration)
        if circuits[k] == MAIN:
            return max(0.0, schedule.min_main_limit_a(t0, t1) - non_ev[m][p])
        return sc.circuit_fuses[circuits[k]]

    # Variables.
    var_car: list[int] = []
    var_step: list[int] = []
    var_coef: list[float] = []  # Wh per A
    var_ub: list[float] = []
    car_phases: list[tuple[int, ...]] = []
    car_paths: list[list[int]] = []
    car_mode: list[str] = []
    for ci, car in enumerate(sc.cars):
        ch = specs[car.charger]
        car_phases.append(tuple(p.index for p in ch.rotation.grid_phases(car.phases)))
        car_paths.append([cidx[c] for c in sc.path_to_main(ch.circuit)])
        car_mode.append(ch.mode.value)
        cap = min(car.max_a, float(ch.max_a))
        m0 = int(car.arrive_s // step_s)
        m1 = min(n_steps, math.ceil(min(car.depart_s, duration) / step_s))
        for m in range(m0, m1):
            t0, t1 = m * step_s, min((m + 1) * step_s, duration)
            overlap = min(t1, car.depart_s) - max(t0, car.arrive_s)
            if overlap <= 0:
                continue
            ub = cap
            for w in schedule.targets:
                if w.charger == car.charger and w.start_s < t1 and t0 < w.end_s:
                    ub = min(ub, w.current_a)
            # A car charges with at least 6 A or not at all: where even the car alone could not
            # get 6 A (own caps, target, circuit headroom after the non-EV load) it gets 0.
            alone = min(headroom(k, p, m) for k in car_paths[ci] for p in car_phases[ci])
            if min(ub, alone) < MIN_CURRENT_A:
                ub = 0.0
            var_car.append(ci)
            var_step.append(m)
            var_coef.append(car.phases * volt * overlap / 3600.0)
            var_ub.append(ub)
    n_vars = len(var_car)
    if n_vars == 0:
        return 0.0

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    rhs: list[float] = []
    row = 0
    # Energy per car.
    by_car: dict[int, list[int]] = {}
    for v, c in enumerate(var_car):
        by_car.setdefault(c, []).append(v)
    for c, vs in by_car.items():
        for v in vs:
            rows.append(row)
            cols.append(v)
            vals.append(var_coef[v])
        rhs.append(sc.cars[c].energy_wh)
        row += 1
    # Circuit x phase x minute.
    keyed: dict[tuple[int, int, int], list[int]] = {}
    for v, c in enumerate(var_car):
        m = var_step[v]
        for k in car_paths[c]:
            for p in car_phases[c]:
                keyed.setdefault((k, p, m), []).append(v)
    for (k, p, m), vs in keyed.items():
        head = headroom(k, p, m)
        for v in vs:
            rows.append(row)
            cols.append(v)
            vals.append(1.0)
        rhs.append(head)
        row += 1
    # PV-mode cars share the surplus.
    if any(mode in ("pv", "minpv") for mode in car_mode):
        surplus = _minute_surplus_w(schedule, n_steps, step_s)
        by_step: dict[int, list[int]] = {}
        for v, c in enumerate(var_car):
            if car_mode[c] in ("pv", "minpv"):
                by_step.setdefault(var_step[v], []).append(v)
        for m, vs in by_step.items():
            allowance = 0.0
            for v in vs:
                c = var_car[v]
                rows.append(row)
                cols.append(v)
                vals.append(len(car_phases[c]) * volt)
                if car_mode[c] == "minpv":
                    allowance += 6.0 * len(car_phases[c]) * volt
            rhs.append(surplus[m] + allowance)
            row += 1
    a_ub = sparse.csr_matrix((vals, (rows, cols)), shape=(row, n_vars))
    res = linprog(
        c=-np.asarray(var_coef),
        A_ub=a_ub,
        b_ub=np.asarray(rhs),
        bounds=np.column_stack([np.zeros(n_vars), np.asarray(var_ub)]),
        method="highs",
    )
    if res.status != 0:
        msg = f"offline optimum LP failed: {res.message}"
        raise RuntimeError(msg)
    return float(-res.fun)
