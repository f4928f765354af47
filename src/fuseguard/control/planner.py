"""The receding-horizon planner in the loop: when to re-plan and how the plan caps the cars.

With ``[control] planner = "horizon"`` the controller hands every cycle's demands to
:meth:`Planner.apply` before the allocator. The planner re-solves the plan of
:mod:`fuseguard.allocation.horizon` every ``interval_s``, and at once when the cars present
(available plugs), their announced departures or the plug settings change (at most once per
``REPLAN_GAP_S``: a burst of changes costs one solve); in between it keeps the last plan.
Its input: the cars present with their phases, caps and announced departure and remaining
need (a car without: the configured default stay, else the whole horizon, and no need; with
``planner_finish_early_s`` a need is planned to be met that long before the departure, at most a
quarter of the time left: a reserve for turns and ramps the plan does not model), and per
circuit and phase the limit in force minus the headroom margin minus the non-EV load forecast:
by default the load of this cycle (offline chargers' and stuck contactors' reserves included),
held over the horizon; with ``planner_load_window_s`` > 0 the peak of that load over the last
window (per circuit and phase, kept as one maximum per minute; never below this cycle's).

Each car's planned mean current over the first hour becomes a cap for the safe allocator (as
the plug's target; the lower of the two when a Direct EVSE target is in force). A plan under half
the car's minimum current pauses it for now (a car with an announced need still open: only a plan
under ``NEED_PAUSE_A``, so that the last part of a need, planned thin over a short stay, is
delivered at the minimum instead of never), but a car inside its minimum run time is held at its
minimum instead (the plan never cuts a turn short); anything else is rounded up and at least the
minimum.
A cap only ever lowers a car: limits, hysteresis, the 6 A minimum, turns and every fallback stay
the allocator's and the loop's. Cars in pv/minpv/off mode are not planned (no cap).

The plan's order: the cars the plan does not pause (the *leaders*) get a ``plan_rank`` (the
largest planned whole amps first; equal amps, equal rank): the allocator admits and fills them
before the others of their priority, ties broken by least laxity, then energy share
(:mod:`fuseguard.allocation.urgency`), so the plan's split reaches the setpoints instead of an
even max-min split of the caps, and when the plan splits the current evenly below the 6 A
minimum the turns go to the least laxity first. The rank orders only: it never raises a car
above its cap or a limit.

Failures: a solve that raises (no plan, out of time without one) keeps the last plan while it is
younger than two intervals, then the caps are dropped (least laxity alone); without scipy the
planner logs one error and stays off. Every solve's wall time is kept (``solve_ms``).

In wall time (``background=True``, the edge) a solve runs in one worker thread and the decision
goes on with the last plan; the new plan is installed at the first decision after the solve
ends. In virtual time the solve runs inside the decision, so simulations stay deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from fuseguard.allocation.horizon import (
    HorizonCar,
    HorizonParams,
    Plan,
    PlanError,
    PlannerUnavailableError,
    available,
    solve,
)
from fuseguard.allocation.types import Snapshot
from fuseguard.control.load import MinuteMaxima
from fuseguard.control.types import ControllerConfig, PlugDemand
from fuseguard.model.circuits import CircuitTree
from fuseguard.model.phases import Phases
from fuseguard.model.status import ChargeMode

log = structlog.get_logger(__name__)

Solver = Callable[[Sequence[HorizonCar], CircuitTree, Mapping[str, Phases], HorizonParams], Plan]
_PLANNED = (ChargeMode.FAST,)
#: a change (arrival, departure, setting) re-plans at once, but at most once per this (s)
REPLAN_GAP_S = 30.0
#: a car with an announced need still open is paused by the plan only below this (A)
NEED_PAUSE_A = 0.5
#: per car: its minimum and maximum current and the plan below which it is paused
Range = tuple[int, int, float]


def _range(d: PlugDemand) -> Range:
    need = d.need_wh is not None and math.isfinite(d.need_wh) and d.need_wh > 0
    return (d.spec.min_a, d.max_a, NEED_PAUSE_A if need else d.spec.min_a / 2.0)


def cap_of(
    planned_a: float, min_a: int, max_a: int, pause_below_a: float | None = None
) -> int | None:
    """The whole-amp cap of a planned mean current (None: no cap, the plan gives it all); a
    plan below ``pause_below_a`` (default: half the minimum) pauses the car."""
    floor_a = min_a / 2.0 if pause_below_a is None else pause_below_a
    if not math.isfinite(planned_a) or planned_a < floor_a:
        return 0
    cap = max(min_a, math.ceil(planned_a - 0.25))
    return None if cap >= max_a else cap


class LoadPeak:
    """The non-EV load forecast of the plan: per circuit and phase the peak over the last
    ``window_s`` (:class:`~fuseguard.control.load.MinuteMaxima`), never below the value of this
    cycle; a window of 0 holds this cycle's value. Non-finite samples are not kept (this cycle's
    value still counts: an unknown load leaves no headroom)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._minutes = MinuteMaxima(window_s)

    def add(self, now: float, non_ev: Mapping[str, Phases]) -> None:
        """Record this cycle's load (every cycle; cheap: one compare per circuit)."""
        if self.window_s <= 0:
            return
        for cid, load in non_ev.items():
            if load.is_finite():
                self._minutes.add(cid, now, load)

    def forecast(self, non_ev: Mapping[str, Phases]) -> dict[str, Phases]:
        """Per circuit: the load to plan with (this cycle's, raised to the window's peak)."""
        return {cid: self._minutes.peak(cid, load) for cid, load in non_ev.items()}


class Planner:
    """Re-plans when due and caps the demands with the plan (see module docstring)."""

    def __init__(
        self,
        config: ControllerConfig,
        tree: CircuitTree,
        solver: Solver = solve,
        *,
        background: bool = False,
    ) -> None:
        s = config.planner_settings
        self._config = config
        self._tree = tree
        self._solver = solver
        self._interval_s = s.interval_s
        self._default_stay_s = s.default_stay_s
        self._finish_early_s = s.finish_early_s
        self._load = LoadPeak(s.load_window_s)
        self._params = HorizonParams(
            voltage_v=config.voltage_v,
            step_s=s.step_s,
            horizon_s=s.horizon_s,
            time_limit_s=s.time_limit_s,
            cap_window_s=s.cap_window_s,
            exact=s.exact,
        )
        self.enabled = available()  # imports scipy now, not in the first decision
        if not self.enabled:
            log.error(
                "planner_unavailable", reason="scipy is not installed", fallback="least laxity"
            )
        self.plan: Plan | None = None
        self.solve_ms: list[float] = []
        self.failures = 0
        self._planned_at: float | None = None  # the last solve (tried)
        self._plan_at = 0.0  # the last plan found
        self._key: object = None
        self._stale = True
        self._since: dict[str, float] = {}  # plug-in time (monotonic s) of each session
        self._caps: dict[str, int] = {}
        self._ranks: dict[str, int] = {}  # the plan's leaders (module docstring)
        self._failure: str | None = None
        self._running: dict[str, float] = {}  # plugs running now: seconds since their start
        # wall time: solves run in one worker thread so a solve never holds the control loop
        # (the last plan stays in force meanwhile); virtual time solves in the decision
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner")
            if background and self.enabled
            else None
        )
        self._pending: tuple[Future[Plan], Mapping[str, Range]] | None = None

    def invalidate(self) -> None:
        """Re-plan at the next cycle (a departure, need or setting changed)."""
        self._stale = True

    def apply(
        self,
        now: float,
        limits: Mapping[str, Phases],
        non_ev: Mapping[str, Phases],
        demands: Sequence[PlugDemand],
        last: Snapshot | None = None,
    ) -> list[PlugDemand]:
        """The demands with the plan's caps (re-planned first when due); ``last``: the
        allocator's previous input (who runs and since when: a running car inside its minimum
        run time is held at its minimum, not paused by the plan)."""
        if not self.enabled:
            return list(demands)
        self._running = {
            p.id: p.running_s
            for p in (last.plugs if last is not None else ())
            if p.setpoint_a > 0 and p.running_s is not None
        }
        self._collect(now)
        self._load.add(now, non_ev)
        planned = [d for d in demands if d.available and d.mode in _PLANNED]
        self._track_sessions(now, demands)
        key = self._key_of(now, planned)
        age_s = math.inf if self._planned_at is None else now - self._planned_at
        changed = self._stale or key != self._key
        if age_s >= self._interval_s or (changed and age_s >= REPLAN_GAP_S):
            self._replan(now, limits, non_ev, planned)
            self._key = key
        return [self._capped(d) for d in demands]

    def explain(self, plug_id: str, reason: str) -> str:
        """The allocator's reason for a plug, with a planner cap named as the plan's."""
        cap = self._caps.get(plug_id)
        if cap is None:
            return reason
        if cap == 0:
            return reason.replace("paused by target 0 A", "paused by the horizon plan (0 A now)")
        return reason.replace(f"target {cap} A", f"horizon plan {cap} A", 1)

    # --- internals -----------------------------------------------------------------------------

    def _track_sessions(self, now: float, demands: Sequence[PlugDemand]) -> None:
        for d in demands:
            if d.share_a is None:  # no session: the car left
                self._since.pop(d.spec.id, None)
            else:
                self._since.setdefault(d.spec.id, now)

    def _key_of(self, now: float, planned: Sequence[PlugDemand]) -> object:
        """What makes a new plan necessary at once: the cars, their phases, announcements."""
        return frozenset(
            (
                d.spec.id,
                d.phases,
                None if d.departure_s is None else round((now + d.departure_s) / 60.0),
                d.need_wh is None,
            )
            for d in planned
        )

    def _car(self, now: float, d: PlugDemand) -> HorizonCar:
        departure_s = d.departure_s
        if departure_s is not None and d.need_wh is not None and self._finish_early_s > 0:
            departure_s -= min(self._finish_early_s, departure_s / 4.0)  # a reserve
        if departure_s is None and self._default_stay_s > 0:
            since = self._since.get(d.spec.id, now)
            departure_s = max(self._params.step_s, self._default_stay_s - (now - since))
        max_a = float(d.max_a if d.target_a is None else min(d.max_a, d.target_a))
        own = d.car_limit_a
        if own is not None and d.spec.min_a <= own < max_a:  # NaN compares False
            max_a = own  # the car's own limit: the plan cannot give it more
        return HorizonCar(
            id=d.spec.id,
            circuit=d.spec.circuit,
            phases=d.phases,
            max_a=max_a,
            departure_s=departure_s,
            need_wh=d.need_wh,
        )

    def _replan(
        self,
        now: float,
        limits: Mapping[str, Phases],
        non_ev: Mapping[str, Phases],
        planned: Sequence[PlugDemand],
    ) -> None:
        if self._pending is not None:  # a solve is still running in the worker: wait for it
            return
        self._stale = False
        self._planned_at = now
        margin = self._config.headroom_a
        non_ev = self._load.forecast(non_ev)
        headroom = {
            cid: (limits[cid] - margin - non_ev[cid]).maximum(0.0)
            for cid in limits
            if cid in non_ev
        }
        cars = [self._car(now, d) for d in planned]
        mins = {d.spec.id: _range(d) for d in planned}
        if self._executor is not None:  # wall time: the loop goes on, the plan comes later
            job = self._executor.submit(self._solver, cars, self._tree, headroom, self._params)
            self._pending = (job, mins)
            return
        try:
            plan = self._solver(cars, self._tree, headroom, self._params)
        except Exception as err:  # any failure: _install falls back (last plan, least laxity)
            self._install(now, err, mins)
            return
        self._install(now, plan, mins)

    def _collect(self, now: float) -> None:
        """Install the worker's plan once its solve has finished (wall time only)."""
        if self._pending is None or not self._pending[0].done():
            return
        job, mins = self._pending
        self._pending = None
        err = job.exception()
        self._install(now, job.result() if err is None else err, mins)

    def _install(
        self, now: float, outcome: Plan | BaseException, mins: Mapping[str, Range]
    ) -> None:
        if isinstance(outcome, PlannerUnavailableError):
            log.error("planner_unavailable", reason=str(outcome), fallback="least laxity")
            self.enabled = False
            self.plan, self._caps, self._ranks = None, {}, {}
            return
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, PlanError | ValueError | ArithmeticError):
                log.error("planner_crashed", error=repr(outcome), fallback="last plan")
            self._fail(now, repr(outcome))
            return
        plan = outcome
        self.solve_ms.append(plan.solve_ms)
        self._failure = None
        self.plan = plan
        self._plan_at = now
        caps: dict[str, int] = {}
        for pid, planned_a in plan.cap_a.items():
            if pid not in mins:
                continue
            cap = cap_of(planned_a, *mins[pid])
            if cap is not None:
                caps[pid] = cap
        self._caps = caps
        self._ranks = leaders(plan.cap_a, mins)
        log.debug("planned", caps=caps, met=sorted(plan.met), status=plan.status, now=now)

    def _fail(self, now: float, reason: str) -> None:
        self.failures += 1
        if reason != self._failure:
            log.warning("planner_failed", reason=reason, fallback="last plan, then least laxity")
        self._failure = reason
        if self.plan is not None and now - self._plan_at > 2 * self._interval_s:
            self.plan, self._caps, self._ranks = None, {}, {}

    def _capped(self, d: PlugDemand) -> PlugDemand:
        if not d.available:
            return d
        cap = self._caps.get(d.spec.id)
        rank = self._ranks.get(d.spec.id)
        if cap is None:
            return d if rank is None else dataclasses.replace(d, plan_rank=rank)
        running_s = self._running.get(d.spec.id)
        if cap == 0 and running_s is not None and running_s < self._config.min_run_s:
            cap = d.spec.min_a  # the plan never cuts a turn short (<= 1 pause/resume per turn)
        if d.target_a is not None and d.target_a <= cap:
            return d if rank is None else dataclasses.replace(d, plan_rank=rank)
        return dataclasses.replace(d, target_a=cap, target_until=None, plan_rank=rank)


def leaders(planned_a: Mapping[str, float], mins: Mapping[str, Range]) -> dict[str, int]:
    """The plan's leaders and their ranks: the cars the plan does not pause (``mins``: per car
    its minimum and maximum current and the plan below which it is paused), ranked by their
    whole-amp planned current (0 the largest; equal amps, equal rank: the allocator breaks ties
    by laxity, then energy share)."""
    amps: dict[str, int] = {}
    for pid, a in planned_a.items():
        if pid in mins and math.isfinite(a) and a >= mins[pid][2]:
            lo, hi, _ = mins[pid]
            amps[pid] = min(hi, max(lo, math.ceil(a - 0.25)))
    order = sorted(set(amps.values()), reverse=True)
    return {pid: order.index(a) for pid, a in amps.items()}


__all__ = ["NEED_PAUSE_A", "REPLAN_GAP_S", "LoadPeak", "Planner", "Solver", "cap_of", "leaders"]
