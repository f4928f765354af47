"""Receding-horizon plan: which car should get how much current over the next hours.

A pure function (no I/O, no clock: the caller passes the problem as seen at its ``now``) over the
cars present, their announced departures and remaining needs, the circuit tree's per-phase
headroom (limit minus the non-EV load, held over the horizon) and each car's phases and cap.
The control part (:mod:`fuseguard.control.planner`) re-solves it every few minutes and turns the
plan into caps for the safe allocator, which stays in charge of every limit.

The program (scipy HiGHS; a MILP when needs are announced, an LP otherwise):

* variable ``i[c, t] >= 0``: the per-phase current of car ``c`` in step ``t`` (steps of
  ``step_s`` for the first ``FINE_STEPS``, then ``COARSE_FACTOR`` times longer, up to
  ``horizon_s``; a car's steps end at its departure), ``i <= max_a``;
* every circuit on the car's path and every grid phase it loads, every step:
  ``sum i <= headroom_a``;
* energy: ``sum_t i * phases * V * dt / 3600 <= need_wh`` (a car without an announced need:
  as much as it can take);
* a binary ``y_c`` per car whose announced departure falls inside the horizon and whose need it
  could meet alone: ``delivered_c >= (1 - MET_TOL) * need_c * y_c`` (``exact``; by default
  ``0 <= y_c <= 1`` is relaxed: an LP, bounded in time, where a Wh towards a need is worth
  ``MET_WEIGHT / need``, so the small needs are met first, the knapsack heuristic);
* ``z <= delivered_c / possible_c`` for every car (the smallest fraction of what it could get).

Objective, weighted so that it is lexicographic in practice (maximise):

1. ``MET_WEIGHT * sum y_c``: needs met by departure (one outweighs the whole energy term);
2. ``energy / E_max``: delivered energy normalised to at most 1, energy towards an announced
   need ``NEED_BONUS`` more, each step's energy discounted by up to ``DISCOUNT`` towards the end
   of the horizon (energy now beats the same energy later);
3. fairness as a tie-break: ``FAIR_WEIGHT`` times a concave utility (``FAIR_SEGMENTS`` pieces)
   of each car's share of the cap window (its energy there over what it could take at its cap),
   plus ``FAIR_WEIGHT / 2`` times the smallest such share, so that among plans of (nearly)
   the same value the first hour is split evenly, plus
   ``FAIRNESS_WEIGHT * z`` for the car with the smallest fraction of what it could get.

The 6 A minimum is relaxed: the plan is an average current, the allocator turns it into
whole-amp setpoints, turns and pauses.

Solve time is bounded by ``time_limit_s`` (HiGHS' own limit); a MILP stopped there returns its
best plan so far; no plan at all raises :class:`PlanError`. scipy is optional (the ``sim``
extra): without it :func:`solve` raises :class:`PlannerUnavailableError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from fuseguard.model.circuits import CircuitTree
from fuseguard.model.phases import Phase, Phases

#: steps of ``step_s`` at the start of the horizon; the rest are ``COARSE_FACTOR`` times longer
FINE_STEPS: Final = 12
COARSE_FACTOR: Final = 3
#: a need counts as met when at most this fraction of it is left (as the quality report's)
MET_TOL: Final = 0.01
#: energy at the end of the horizon is worth this much less than energy now
DISCOUNT: Final = 0.01
#: energy towards an announced need is worth this much more than other energy (so a need is
#: filled to the full, not only to ``1 - MET_TOL``)
NEED_BONUS: Final = 0.05
FAIRNESS_WEIGHT: Final = 1e-3
#: the first hour's even split: its total weight and number of pieces (module docstring)
FAIR_WEIGHT: Final = 0.01
FAIR_SEGMENTS: Final = 8
#: the weight of one need met (above the whole energy term, at most ``1 + NEED_BONUS``)
MET_WEIGHT: Final = 2.0


class PlanError(RuntimeError):
    """The solver found no plan (failed or out of time without one)."""


class PlannerUnavailableError(PlanError):
    """scipy is not installed (``pip install fuseguard[sim]``)."""


@dataclass(frozen=True, slots=True)
class HorizonCar:
    """One car present: its grid phases, its circuit, its current range now, and what it
    announced (``departure_s`` from now, ``need_wh`` still needed; None: unknown)."""

    id: str
    circuit: str
    phases: tuple[Phase, ...]
    max_a: float
    departure_s: float | None = None
    need_wh: float | None = None


@dataclass(frozen=True, slots=True)
class HorizonParams:
    """Grid and limits of one solve."""

    voltage_v: float = 230.0
    step_s: float = 300.0
    horizon_s: float = 43200.0
    time_limit_s: float = 1.0
    #: the caps are the plan's mean current over this first stretch (s)
    cap_window_s: float = 3600.0
    #: True: the needs-met count as a MILP (exact, but HiGHS may need seconds at 20 cars);
    #: False: its LP relaxation (a need met counts by the fraction delivered, so small needs
    #: come first), about 10-30 times faster
    exact: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer: per car its mean current over the cap window (``cap_a``), its current in
    the first step (``now_a``), the cars whose need the plan meets by departure, the solver's
    status and the wall time of the solve (ms)."""

    cap_a: dict[str, float]
    now_a: dict[str, float]
    met: frozenset[str] = frozenset()
    status: str = "optimal"
    solve_ms: float = 0.0
    profile_a: dict[str, tuple[float, ...]] = field(default_factory=dict)
    step_ends_s: tuple[float, ...] = ()


def step_ends(params: HorizonParams) -> list[float]:
    """End of every step (s from now): fine steps first, then coarse ones up to the horizon."""
    ends: list[float] = []
    t = 0.0
    while t < params.horizon_s - 1e-9:
        dt = params.step_s if len(ends) < FINE_STEPS else params.step_s * COARSE_FACTOR
        t = min(t + dt, params.horizon_s)
        ends.append(t)
    return ends


def _clean(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None


@dataclass
class _Lp:
    """The program's columns and rows as plain lists (sparse, built once per solve)."""

    car: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    step_start: list[float] = field(default_factory=list)
    wh_per_a: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    obj: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)

    def col(self, obj: float, ub: float, *, integer: bool = False) -> int:
        """A further column (after the currents): its index."""
        self.obj.append(obj)
        self.ub.append(ub)
        self.integer.append(integer)
        return len(self.obj) - 1

    def row(self, entries: Sequence[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(self.hi)
        for col, val in entries:
            self.rows.append(r)
            self.cols.append(col)
            self.vals.append(val)
        self.lo.append(lo)
        self.hi.append(hi)


def _columns(
    cars: Sequence[HorizonCar], ends: Sequence[float], params: HorizonParams, lp: _Lp
) -> tuple[list[list[int]], list[float]]:
    """One column per car and step of its stay; per car its columns and what it could get (Wh)."""
    cols_of: list[list[int]] = []
    possible: list[float] = []
    horizon = ends[-1] if ends else 0.0
    for ci, car in enumerate(cars):
        stay = _clean(car.departure_s) or horizon
        cap = car.max_a if math.isfinite(car.max_a) and car.max_a > 0 else 0.0
        need = _clean(car.need_wh)
        bonus = NEED_BONUS if need is not None else 0.0
        own: list[int] = []
        total = 0.0
        start = 0.0
        for t, end in enumerate(ends):
            dt = min(end, stay) - start
            if dt <= 0 or cap <= 0:
                break
            mid = (start + min(end, stay)) / 2.0
            wh = len(car.phases) * params.voltage_v * dt / 3600.0
            own.append(len(lp.car))
            lp.car.append(ci)
            lp.step.append(t)
            lp.step_start.append(start)
            lp.wh_per_a.append(wh)
            lp.ub.append(cap)
            lp.integer.append(False)
            lp.obj.append(wh * (1.0 + bonus - DISCOUNT * mid / max(horizon, 1.0)))
            total += wh * cap
            start = end
        cols_of.append(own)
        possible.append(min(total, need) if need is not None else total)
    return cols_of, possible


def _circuit_rows(
    cars: Sequence[HorizonCar], tree: CircuitTree, headroom: Mapping[str, Phases], lp: _Lp
) -> None:
    keyed: dict[tuple[str, int, int], list[int]] = {}
    for col, ci in enumerate(lp.car):
        car = cars[ci]
        for cid in tree.path(car.circuit):
            for ph in car.phases:
                keyed.setdefault((cid, ph.index, lp.step[col]), []).append(col)
    for (cid, p, _t), cols in keyed.items():
        room = headroom[cid][p] if cid in headroom else 0.0
        room = room if math.isfinite(room) else 0.0
        lp.row([(c, 1.0) for c in cols], -math.inf, max(0.0, room))


def _fair_rows(
    cars: Sequence[HorizonCar], cols_of: Sequence[list[int]], window_s: float, lp: _Lp
) -> None:
    """A concave utility of each car's share of the cap window (what it gets there over what it
    could take at its cap): ``FAIR_SEGMENTS`` pieces of falling slope, so that among plans of
    the same value the current of the first hour is split evenly (a tie-break, weighted
    ``FAIR_WEIGHT`` in all)."""
    weight = FAIR_WEIGHT / max(len(cars), 1)
    low_share = lp.col(FAIR_WEIGHT / 2.0, 1.0)  # the smallest share, lifted
    for ci in range(len(cars)):
        top = 0.0  # what it could take in the window at its cap (Wh)
        entries: list[tuple[int, float]] = []
        for col in cols_of[ci]:
            if lp.step_start[col] >= window_s:
                break
            entries.append((col, lp.wh_per_a[col]))
            top += lp.wh_per_a[col] * lp.ub[col]
        if top <= 0:
            continue
        pieces = [(lp.col(weight * 0.5**k, 1.0 / FAIR_SEGMENTS), 1.0) for k in range(FAIR_SEGMENTS)]
        share = [(c, w / top) for c, w in entries]
        lp.row([*pieces, *((c, -v) for c, v in share)], -math.inf, 0.0)
        lp.row([*((c, -v) for c, v in share), (low_share, 1.0)], -math.inf, 0.0)


def _build(
    cars: Sequence[HorizonCar],
    tree: CircuitTree,
    headroom: Mapping[str, Phases],
    params: HorizonParams,
    ends: Sequence[float],
) -> tuple[_Lp, list[list[int]], list[tuple[int, int]]]:
    """Columns (the currents, then ``z``, the binaries and the fairness pieces) and rows; per
    car its current columns; the binaries as (car, column)."""
    lp = _Lp()
    cols_of, possible = _columns(cars, ends, params, lp)
    e_max = max(sum(possible), 1.0)
    lp.obj = [o / e_max for o in lp.obj]
    _circuit_rows(cars, tree, headroom, lp)
    z = lp.col(FAIRNESS_WEIGHT, 1.0)
    met: list[tuple[int, int]] = []  # cars with a binary, and its column
    for ci, car in enumerate(cars):
        need = _clean(car.need_wh)
        entries = [(col, lp.wh_per_a[col]) for col in cols_of[ci]]
        if need is not None and entries:
            lp.row(entries, -math.inf, need)
        if possible[ci] > 0 and entries:  # z <= delivered / possible
            lp.row([(c, -w / possible[ci]) for c, w in entries] + [(z, 1.0)], -math.inf, 0.0)
        dep = _clean(car.departure_s)
        if need is not None and dep is not None and dep <= ends[-1] and possible[ci] >= need:
            y = lp.col(MET_WEIGHT, 1.0, integer=True)
            met.append((ci, y))  # delivered >= (1 - tol) * need * y
            lp.row([*((c, -w) for c, w in entries), (y, (1.0 - MET_TOL) * need)], -math.inf, 0.0)
    _fair_rows(cars, cols_of, min(params.cap_window_s, ends[-1]), lp)
    return lp, cols_of, met


def available() -> bool:
    """Whether scipy (HiGHS) can be imported; imports it (a second or so, once) so that the
    first plan does not pay for it."""
    try:
        import scipy.optimize  # noqa: F401
    except ImportError:
        return False
    return True


def _solve_highs(lp: _Lp, time_limit_s: float, *, exact: bool) -> tuple[Any, str]:
    # NumPy and scipy only when a plan is solved: an edge without the planner (the default)
    # and with at most SMALL_SITE_PLUGS plugs never loads NumPy (about 12 MB of its memory)
    import numpy as np

    try:
        from scipy import sparse
        from scipy.optimize import Bounds, LinearConstraint, milp
    except ImportError as err:  # the optional dependency
        msg = "the horizon planner needs scipy (pip install 'fuseguard[sim]')"
        raise PlannerUnavailableError(msg) from err
    n = len(lp.obj)
    a = sparse.csr_matrix((lp.vals, (lp.rows, lp.cols)), shape=(len(lp.hi), n))
    res = milp(
        c=-np.asarray(lp.obj),
        constraints=LinearConstraint(a, np.asarray(lp.lo), np.asarray(lp.hi)),
        integrality=np.asarray(lp.integer, dtype=float) if exact else None,
        bounds=Bounds(np.zeros(n), np.asarray(lp.ub)),
        options={"time_limit": max(0.01, time_limit_s), "mip_rel_gap": 1e-3},
    )
    if res.x is None:
        msg = f"horizon plan failed: {res.message}"
        raise PlanError(msg)
    return res.x, "optimal" if res.status == 0 else "time limit: best plan so far"


def solve(
    cars: Sequence[HorizonCar],
    tree: CircuitTree,
    headroom: Mapping[str, Phases],
    params: HorizonParams | None = None,
) -> Plan:
    """The plan for ``cars`` under ``headroom`` (A per circuit and phase the EVs may draw, held
    over the horizon); see the module docstring. Raises :class:`PlanError`."""
    params = params or HorizonParams()
    t0 = time.perf_counter()
    ends = step_ends(params)
    if not cars or not ends:
        return Plan(cap_a={c.id: 0.0 for c in cars}, now_a={c.id: 0.0 for c in cars})
    lp, cols_of, met = _build(cars, tree, headroom, params, ends)
    x, status = _solve_highs(lp, params.time_limit_s, exact=params.exact)
    cap: dict[str, float] = {}
    now: dict[str, float] = {}
    profile: dict[str, tuple[float, ...]] = {}
    window = min(params.cap_window_s, ends[-1])
    for ci, car in enumerate(cars):
        values = [max(0.0, float(x[col])) for col in cols_of[ci]]
        profile[car.id] = tuple(values)
        now[car.id] = values[0] if values else 0.0
        # time-weighted mean over the cap window (or the car's stay, when shorter)
        span = min(window, _clean(car.departure_s) or window)
        acc = start = 0.0
        for t, v in enumerate(values):
            acc += v * max(0.0, min(ends[t], span) - start)
            start = ends[t]
            if start >= span:
                break
        cap[car.id] = acc / span if span > 0 else now[car.id]
    met_ids = frozenset(cars[ci].id for ci, y in met if x[y] > (0.5 if params.exact else 0.999))
    return Plan(
        cap_a=cap,
        now_a=now,
        met=met_ids,
        status=status,
        solve_ms=(time.perf_counter() - t0) * 1000.0,
        profile_a=profile,
        step_ends_s=tuple(ends),
    )


__all__ = [
    "COARSE_FACTOR",
    "DISCOUNT",
    "FAIRNESS_WEIGHT",
    "FAIR_SEGMENTS",
    "FAIR_WEIGHT",
    "FINE_STEPS",
    "MET_TOL",
    "MET_WEIGHT",
    "NEED_BONUS",
    "HorizonCar",
    "HorizonParams",
    "Plan",
    "PlanError",
    "PlannerUnavailableError",
    "available",
    "solve",
    "step_ends",
]
