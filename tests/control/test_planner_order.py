"""The plan's order and load forecast in the loop (control/planner.py): leaders and their ranks,
the peak of the non-EV load over a window."""

from __future__ import annotations

import math

from fuseguard.control.planner import NEED_PAUSE_A, LoadPeak, cap_of, leaders
from fuseguard.model.phases import Phases
from tests.control.test_planner import LIMITS, NON_EV, FakeSolver, _demand, _planner


def test_leaders_are_the_cars_the_plan_does_not_pause_ranked_by_whole_amps() -> None:
    mins = dict.fromkeys("abcdef", (6, 16, 3.0))
    planned = {"a": 16.0, "b": 9.2, "c": 9.0, "d": 4.0, "e": 2.9, "f": math.nan, "x": 12.0}
    # b and c plan 9 A (rounded as the caps are): equal rank; d is planned 6 A in turns;
    # e is paused by the plan, f has no finite plan, x is not planned (no mins): no rank
    assert leaders(planned, mins) == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert leaders({}, mins) == {}


def test_the_rank_reaches_the_demands_with_the_caps() -> None:
    solver = FakeSolver({"a": 32.0, "b": 8.0, "c": 1.0})
    planner = _planner(solver)
    out = planner.apply(0.0, LIMITS, NON_EV, [_demand("a"), _demand("b"), _demand("c")])
    by_id = {d.spec.id: d for d in out}
    assert (by_id["a"].target_a, by_id["a"].plan_rank) == (None, 0)  # all it can take
    assert (by_id["b"].target_a, by_id["b"].plan_rank) == (8, 1)
    assert (by_id["c"].target_a, by_id["c"].plan_rank) == (0, None)  # paused by the plan
    # a plug that is not available is passed through untouched
    gone = planner.apply(10.0, LIMITS, NON_EV, [_demand("a", available=False)])
    assert gone[0].plan_rank is None and gone[0].target_a is None


def test_a_car_with_an_open_need_is_not_paused_by_a_thin_plan() -> None:
    """The last 600 Wh of a need planned as 2.9 A over the 20 min left: the car runs at its
    minimum (and finishes) instead of being paused below half its minimum; a car without an
    announced need is paused as before."""
    assert cap_of(2.9, 6, 32, NEED_PAUSE_A) == 6
    assert cap_of(0.4, 6, 32, NEED_PAUSE_A) == 0
    solver = FakeSolver({"a": 2.9, "b": 2.9})
    planner = _planner(solver)
    out = planner.apply(
        0.0, LIMITS, NON_EV, [_demand("a", need_wh=600.0, departure_s=1200.0), _demand("b")]
    )
    by_id = {d.spec.id: d for d in out}
    assert (by_id["a"].target_a, by_id["a"].plan_rank) == (6, 0)
    assert (by_id["b"].target_a, by_id["b"].plan_rank) == (0, None)


def test_load_peak_plans_with_the_window_peak_never_below_now() -> None:
    peak = LoadPeak(3600.0)
    peak.add(0.0, {"main": Phases.of((30.0, 10.0, 10.0))})
    peak.add(30.0, {"main": Phases.of((10.0, 20.0, 10.0))})  # same minute: the maximum kept
    peak.add(600.0, {"main": Phases.of((5.0, 5.0, 5.0)), "sub": Phases.uniform(math.inf)})
    now = {"main": Phases.of((5.0, 5.0, 25.0)), "sub": Phases.uniform(math.inf)}
    out = peak.forecast(now)
    assert out["main"] == Phases.of((30.0, 20.0, 25.0))
    assert not out["sub"].is_finite()  # an unknown load leaves no headroom
    # an hour later the first minute has left the window
    peak.add(3600.0 + 60.0, {"main": Phases.uniform(1.0)})
    assert peak.forecast({"main": Phases.uniform(1.0)})["main"] == Phases.uniform(5.0)
    # a window of 0 holds this cycle's value
    held = LoadPeak(0.0)
    held.add(0.0, {"main": Phases.uniform(40.0)})
    assert held.forecast(NON_EV) == NON_EV


def test_the_planner_hands_the_solver_the_headroom_under_the_peak() -> None:
    solver = FakeSolver({"a": 10.0})
    planner = _planner(solver, load_window_s=7200.0, interval_s=300.0)
    planner.apply(0.0, LIMITS, {"main": Phases.uniform(25.0)}, [_demand("a")])
    planner.apply(300.0, LIMITS, NON_EV, [_demand("a")])
    # limit 32 - margin 2 - the peak 25 (not this cycle's 10)
    assert solver.calls[-1][1]["main"] == Phases.uniform(5.0)


def test_finish_early_plans_an_announced_need_before_the_departure() -> None:
    solver = FakeSolver({})
    planner = _planner(solver, finish_early_s=1800.0)
    demands = [
        _demand("a", need_wh=5000.0, departure_s=7200.0),
        _demand("b", need_wh=5000.0, departure_s=2400.0),  # a quarter of the time left
        _demand("c", departure_s=7200.0),  # no need announced: no reserve
    ]
    planner.apply(0.0, LIMITS, NON_EV, demands)
    cars = {c.id: c.departure_s for c in solver.calls[-1][0]}
    assert cars == {"a": 5400.0, "b": 1800.0, "c": 7200.0}
    plain = FakeSolver({})
    _planner(plain).apply(0.0, LIMITS, NON_EV, demands)
    assert [c.departure_s for c in plain.calls[-1][0]] == [7200.0, 2400.0, 7200.0]
