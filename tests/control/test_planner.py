"""The planner in the loop (control/planner.py): when it re-plans, how its caps reach the
allocator, and what happens when the solver fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fuseguard.allocation.horizon import (
    HorizonCar,
    HorizonParams,
    Plan,
    PlanError,
    PlannerUnavailableError,
)
from fuseguard.control.planner import Planner, cap_of
from fuseguard.control.types import (
    ChargerSpec,
    CircuitSpec,
    ControllerConfig,
    PlannerSettings,
    PlugDemand,
)
from fuseguard.model.circuits import CircuitTree
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.status import ChargeMode

ALL = (Phase.L1, Phase.L2, Phase.L3)
LIMITS = {"main": Phases.uniform(32.0)}
NON_EV = {"main": Phases.uniform(10.0)}


class FakeSolver:
    """Records every call; answers with fixed caps or raises what it is told to."""

    def __init__(self, caps: Mapping[str, float]) -> None:
        self.caps = dict(caps)
        self.calls: list[tuple[list[HorizonCar], dict[str, Phases]]] = []
        self.fail: Exception | None = None

    def __call__(
        self,
        cars: Sequence[HorizonCar],
        tree: CircuitTree,
        headroom: Mapping[str, Phases],
        params: HorizonParams,
    ) -> Plan:
        self.calls.append((list(cars), dict(headroom)))
        if self.fail is not None:
            raise self.fail
        caps = {c.id: self.caps.get(c.id, c.max_a) for c in cars}
        return Plan(cap_a=caps, now_a=caps, solve_ms=1.5)


def _config(**settings: float) -> ControllerConfig:
    return ControllerConfig(
        circuits=[CircuitSpec(id="main", parent=None, fuse_a=32.0)],
        chargers=[ChargerSpec(id="a"), ChargerSpec(id="b")],
        planner="horizon",
        planner_settings=PlannerSettings(**settings),
        headroom_a=2.0,
    )


def _demand(pid: str, **kw: object) -> PlugDemand:
    base: dict[str, object] = {
        "spec": ChargerSpec(id=pid),
        "available": True,
        "phases": ALL,
        "max_a": 32,
        "mode": ChargeMode.FAST,
        "priority": 0,
        "share_a": 0.0,
    }
    base.update(kw)
    return PlugDemand(**base)  # type: ignore[arg-type]


def _planner(solver: FakeSolver, **settings: float) -> Planner:
    cfg = _config(**settings)
    return Planner(cfg, cfg.tree(), solver)


def test_cap_of_rounds_up_pauses_below_half_the_minimum_and_drops_full_caps() -> None:
    assert cap_of(2.9, 6, 32) == 0
    assert cap_of(3.0, 6, 32) == 6
    assert cap_of(9.2, 6, 32) == 9
    assert cap_of(9.3, 6, 32) == 10
    assert cap_of(31.9, 6, 32) is None  # the plan gives it all it can take: no cap
    assert cap_of(float("nan"), 6, 32) == 0


def test_replans_on_its_interval_and_at_once_on_arrival_departure_or_settings() -> None:
    solver = FakeSolver({"a": 10.0})
    planner = _planner(solver, interval_s=300.0)
    one = [_demand("a")]
    planner.apply(0.0, LIMITS, NON_EV, one)
    assert len(solver.calls) == 1
    # the headroom: limit - margin (2 A) - non-EV load
    assert solver.calls[0][1]["main"] == Phases.uniform(20.0)
    planner.apply(100.0, LIMITS, NON_EV, one)
    assert len(solver.calls) == 1  # nothing changed, not due
    planner.apply(300.0, LIMITS, NON_EV, one)
    assert len(solver.calls) == 2  # due
    two = [_demand("a"), _demand("b")]
    planner.apply(310.0, LIMITS, NON_EV, two)
    assert len(solver.calls) == 2  # a car arrived: within the 30 s gap after a plan, waits
    planner.apply(330.0, LIMITS, NON_EV, two)
    assert len(solver.calls) == 3  # ... and is planned 30 s after the last plan
    planner.apply(360.0, LIMITS, NON_EV, [_demand("a"), _demand("b", departure_s=3600.0)])
    assert len(solver.calls) == 4  # a departure was announced
    planner.apply(400.0, LIMITS, NON_EV, [_demand("a"), _demand("b", departure_s=3560.0)])
    assert len(solver.calls) == 4  # the same departure, 40 s closer
    planner.invalidate()  # plug settings changed (a need)
    planner.apply(410.0, LIMITS, NON_EV, [_demand("a"), _demand("b", departure_s=3550.0)])
    assert len(solver.calls) == 5
    planner.apply(440.0, LIMITS, NON_EV, [_demand("a")])
    assert len(solver.calls) == 6  # b left


def test_caps_only_lower_and_never_touch_unplanned_plugs() -> None:
    solver = FakeSolver({"a": 10.0, "b": 10.0, "pv": 0.0})
    planner = _planner(solver)
    demands = [
        _demand("a"),
        _demand("b", target_a=8),  # a Direct EVSE target below the plan stays
        _demand("pv", mode=ChargeMode.PV),  # not planned
        _demand("gone", available=False),
    ]
    out = {d.spec.id: d for d in planner.apply(0.0, LIMITS, NON_EV, demands)}
    assert out["a"].target_a == 10
    assert out["b"].target_a == 8
    assert out["pv"].target_a is None
    assert out["gone"].target_a is None
    assert [c.id for c in solver.calls[0][0]] == ["a", "b"]
    assert solver.calls[0][0][1].max_a == 8.0  # the plan knows the target
    assert planner.explain("a", "target 10 A") == "horizon plan 10 A"
    assert planner.explain("pv", "pv: 1.2 kW surplus") == "pv: 1.2 kW surplus"


def test_a_failed_solve_keeps_the_last_plan_then_falls_back_to_least_laxity() -> None:
    solver = FakeSolver({"a": 10.0})
    planner = _planner(solver, interval_s=300.0)
    one = [_demand("a")]
    assert planner.apply(0.0, LIMITS, NON_EV, one)[0].target_a == 10
    solver.fail = PlanError("time limit, no plan")
    assert planner.apply(300.0, LIMITS, NON_EV, one)[0].target_a == 10  # last plan
    assert planner.apply(600.0, LIMITS, NON_EV, one)[0].target_a == 10
    assert planner.apply(900.0, LIMITS, NON_EV, one)[0].target_a is None  # too old: dropped
    assert planner.failures == 3
    solver.fail = None
    assert planner.apply(1200.0, LIMITS, NON_EV, one)[0].target_a == 10  # recovered
    assert planner.solve_ms == [1.5, 1.5]


def test_without_scipy_the_planner_switches_itself_off() -> None:
    solver = FakeSolver({})
    solver.fail = PlannerUnavailableError("no scipy")
    planner = _planner(solver)
    demands = [_demand("a")]
    assert planner.apply(0.0, LIMITS, NON_EV, demands) == demands
    assert not planner.enabled
    planner.apply(1000.0, LIMITS, NON_EV, demands)
    assert len(solver.calls) == 1


def test_default_stay_counts_from_plug_in() -> None:
    solver = FakeSolver({})
    planner = _planner(solver, default_stay_s=3600.0, interval_s=300.0)
    planner.apply(0.0, LIMITS, NON_EV, [_demand("a")])
    planner.apply(1200.0, LIMITS, NON_EV, [_demand("a")])
    stays = [call[0][0].departure_s for call in solver.calls]
    assert stays == [pytest.approx(3600.0), pytest.approx(2400.0)]


@pytest.mark.parametrize(
    ("limit", "planned_max"),
    [(None, 32.0), (16.0, 16.0), (13.0, 13.0), (40.0, 32.0), (3.0, 32.0), (float("nan"), 32.0)],
)
def test_the_plan_gives_a_car_at_most_its_own_limit(
    limit: float | None, planned_max: float
) -> None:
    """The car's own limit (``car_limit_a``, learned by the demand cap) is its max in the plan
    where it is between the minimum and the plug's max; otherwise (unknown, above the plug,
    below the minimum, NaN) the plug's max holds."""
    solver = FakeSolver({})
    _planner(solver).apply(0.0, LIMITS, NON_EV, [_demand("a", car_limit_a=limit)])
    assert solver.calls[0][0][0].max_a == planned_max


def test_a_running_car_inside_its_minimum_run_is_held_at_its_minimum() -> None:
    from fuseguard.allocation.types import Plug, Snapshot

    solver = FakeSolver({"a": 0.0, "b": 0.0})
    planner = _planner(solver)
    last = Snapshot(
        circuits=(),
        plugs=(
            Plug(id="a", circuit="main", phases=ALL, max_a=32, setpoint_a=10, running_s=60.0),
            Plug(id="b", circuit="main", phases=ALL, max_a=32, setpoint_a=10, running_s=4000.0),
        ),
    )
    out = {
        d.spec.id: d for d in planner.apply(0.0, LIMITS, NON_EV, [_demand("a"), _demand("b")], last)
    }
    assert out["a"].target_a == 6  # 60 s into its turn (min run 2700 s): its minimum
    assert out["b"].target_a == 0  # its turn is over: the plan pauses it
    assert planner.explain("b", "paused by target 0 A") == "paused by the horizon plan (0 A now)"


def test_in_wall_time_a_solve_runs_in_a_worker_and_never_holds_the_decision() -> None:
    gate = threading.Event()
    inner = FakeSolver({"a": 10.0})

    def slow(*args: Any) -> Plan:
        assert gate.wait(10.0)
        return inner(*args)

    cfg = _config(interval_s=300.0)
    planner = Planner(cfg, cfg.tree(), slow, background=True)
    one = [_demand("a")]
    # the solve is running: the decision goes on at once, uncapped (least laxity alone)
    assert planner.apply(0.0, LIMITS, NON_EV, one)[0].target_a is None
    assert planner.apply(1.0, LIMITS, NON_EV, one)[0].target_a is None
    gate.set()
    deadline = time.monotonic() + 10.0
    while planner.apply(2.0, LIMITS, NON_EV, one)[0].target_a is None:
        assert time.monotonic() < deadline, "the worker's plan never arrived"
        time.sleep(0.01)
    assert planner.apply(3.0, LIMITS, NON_EV, one)[0].target_a == 10
    assert len(inner.calls) == 1  # one solve at a time: nothing was queued behind it


def test_a_solver_that_crashes_is_a_failed_solve_not_a_failed_decision() -> None:
    solver = FakeSolver({"a": 10.0})
    planner = _planner(solver, interval_s=300.0)
    one = [_demand("a")]
    assert planner.apply(0.0, LIMITS, NON_EV, one)[0].target_a == 10
    solver.fail = RuntimeError("a bug in the solver")
    assert planner.apply(300.0, LIMITS, NON_EV, one)[0].target_a == 10  # the last plan
    assert planner.failures == 1
