"""The receding-horizon LP (allocation/horizon.py) on small cases checkable by hand."""

from __future__ import annotations

import builtins
import dataclasses
import random
from typing import Any

import pytest

from fuseguard.allocation.horizon import (
    HorizonCar,
    HorizonParams,
    PlanError,
    PlannerUnavailableError,
    solve,
    step_ends,
)
from fuseguard.model.circuits import CircuitSpec, CircuitTree
from fuseguard.model.phases import Phase, Phases

L1, L2, L3 = Phase.L1, Phase.L2, Phase.L3
ALL = (L1, L2, L3)
V = 230.0
PARAMS = HorizonParams(voltage_v=V, step_s=300.0, horizon_s=6 * 3600.0, cap_window_s=3600.0)
EXACT = dataclasses.replace(PARAMS, exact=True)


def _main() -> CircuitTree:
    return CircuitTree.of([CircuitSpec(id="main", parent=None, fuse_a=63.0)])


def test_step_grid_is_fine_then_coarse_up_to_the_horizon() -> None:
    ends = step_ends(PARAMS)
    assert ends[:2] == [300.0, 600.0]
    assert ends[11] == 3600.0 and ends[12] == 4500.0  # 12 fine steps, then 15 min
    assert ends[-1] == 6 * 3600.0


@pytest.mark.parametrize("params", [PARAMS, EXACT], ids=["lp", "milp"])
def test_one_phase_car_waits_for_the_three_phase_car(params: HorizonParams) -> None:
    """L2 and L3 have 16 A free, L1 32 A. A 3-phase car (no need announced, leaves in 2 h) and a
    1-phase car on L2 (needs 16 A x 2 h = 7.36 kWh, leaves in 4 h). Sharing L2 fairly (8 A each)
    would deliver 690 W/A x 8 A + 230 W/A x 8 A; the plan gives the 3-phase car all 16 A of L2
    while it is there (690 W per A) and the 1-phase car its need afterwards."""
    room = {"main": Phases.of((32.0, 16.0, 16.0))}
    cars = [
        HorizonCar("three", "main", ALL, 32.0, departure_s=7200.0),
        HorizonCar("one", "main", (L2,), 32.0, departure_s=14400.0, need_wh=16 * V * 2),
    ]
    plan = solve(cars, _main(), room, params)
    assert plan.cap_a["three"] == pytest.approx(16.0, abs=0.01)
    assert plan.cap_a["one"] == pytest.approx(0.0, abs=0.01)
    assert plan.met == {"one"}
    # and it gets its 7.36 kWh between 2 h and 4 h
    ends = (0.0, *plan.step_ends_s)
    wh = sum(
        a * V * (min(ends[t + 1], 14400.0) - ends[t]) / 3600.0
        for t, a in enumerate(plan.profile_a["one"])
    )
    assert wh == pytest.approx(16 * V * 2, rel=1e-3)


@pytest.mark.parametrize("params", [PARAMS, EXACT], ids=["lp", "milp"])
def test_most_needs_met_first_then_energy(params: HorizonParams) -> None:
    """One phase with 16 A for an hour: two cars need 16 A x 1 h each (only one can be met),
    a third needs 8 A x 1 h. The plan meets two needs (the small one and one big one), not a
    fair third of the phase each (which would meet none)."""
    room = {"main": Phases.of((16.0, 63.0, 63.0))}
    big = 16 * V
    cars = [
        HorizonCar("a", "main", (L1,), 32.0, departure_s=3600.0, need_wh=big),
        HorizonCar("b", "main", (L1,), 32.0, departure_s=3600.0, need_wh=big),
        HorizonCar("c", "main", (L1,), 32.0, departure_s=3600.0, need_wh=big / 2),
    ]
    plan = solve(cars, _main(), room, params)
    assert len(plan.met) == 1  # 16 A x 1 h: either one big need or the small one plus half
    assert sum(plan.cap_a.values()) == pytest.approx(16.0, abs=0.01)


def test_need_that_cannot_be_met_still_gets_energy() -> None:
    """A 1-phase 16 A car leaving in 1 h needs 10 kWh (at most 3.68 kWh is possible): no met
    need is claimed, and it still charges at its cap."""
    room = {"main": Phases.uniform(40.0)}
    cars = [HorizonCar("x", "main", (L1,), 16.0, departure_s=3600.0, need_wh=10_000.0)]
    plan = solve(cars, _main(), room, PARAMS)
    assert plan.met == frozenset()
    assert plan.cap_a["x"] == pytest.approx(16.0, abs=0.01)


def test_need_met_leaves_the_rest_to_others() -> None:
    """A car needing 1.15 kWh (5 A x 1 h on one phase) does not keep more than its need."""
    room = {"main": Phases.uniform(20.0)}
    cars = [
        HorizonCar("small", "main", (L1,), 32.0, departure_s=3600.0, need_wh=5 * V),
        HorizonCar("open", "main", (L1,), 32.0),
    ]
    plan = solve(cars, _main(), room, PARAMS)
    assert plan.met == {"small"}
    assert plan.cap_a["small"] == pytest.approx(5.0, abs=0.01)
    assert plan.now_a["open"] == pytest.approx(20.0, abs=0.01)  # energy now before later


def test_every_limit_respected_in_every_step() -> None:
    """Random cars under a sub-circuit tree: in every step, every circuit and phase carries at
    most its headroom."""
    tree = CircuitTree.of(
        [
            CircuitSpec(id="main", parent=None, fuse_a=63.0),
            CircuitSpec(id="a", parent="main", fuse_a=32.0),
            CircuitSpec(id="b", parent="a", fuse_a=20.0),
        ]
    )
    room = {
        "main": Phases.of((30.0, 25.0, 40.0)),
        "a": Phases.of((20.0, 32.0, 12.0)),
        "b": Phases.of((20.0, 5.0, 20.0)),
    }
    rng = random.Random(7)
    cars = []
    for i in range(12):
        phases = ALL if rng.random() < 0.5 else (rng.choice(ALL),)
        cars.append(
            HorizonCar(
                f"c{i}",
                rng.choice(["main", "a", "b"]),
                phases,
                float(rng.choice([16, 32])),
                departure_s=rng.uniform(1800.0, 20000.0) if rng.random() < 0.7 else None,
                need_wh=rng.uniform(2000.0, 30000.0) if rng.random() < 0.7 else None,
            )
        )
    plan = solve(cars, tree, room, PARAMS)
    for t in range(len(plan.step_ends_s)):
        for cid in ("main", "a", "b"):
            for ph in ALL:
                load = sum(
                    plan.profile_a[c.id][t]
                    for c in cars
                    if ph in c.phases
                    and cid in tree.path(c.circuit)
                    and t < len(plan.profile_a[c.id])
                )
                assert load <= room[cid][ph.index] + 1e-6
    for c in cars:
        assert all(0.0 <= a <= c.max_a + 1e-6 for a in plan.profile_a[c.id])


def test_no_cars_and_hostile_numbers() -> None:
    assert solve([], _main(), {"main": Phases.uniform(10.0)}, PARAMS).cap_a == {}
    cars = [
        HorizonCar("nan", "main", ALL, float("nan"), departure_s=float("inf"), need_wh=-5.0),
        HorizonCar("ok", "main", ALL, 16.0, departure_s=float("nan"), need_wh=float("nan")),
    ]
    plan = solve(cars, _main(), {"main": Phases.uniform(10.0)}, PARAMS)
    assert plan.cap_a["nan"] == 0.0
    assert plan.cap_a["ok"] == pytest.approx(10.0, abs=0.01)


def test_without_scipy_the_planner_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_scipy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    cars = [HorizonCar("x", "main", ALL, 16.0)]
    with pytest.raises(PlannerUnavailableError, match="scipy"):
        solve(cars, _main(), {"main": Phases.uniform(10.0)}, PARAMS)
    assert issubclass(PlannerUnavailableError, PlanError)


def test_symmetric_cars_share_the_first_hour_evenly() -> None:
    """Two identical 3-phase cars on 20 A: energy is the same however it is split, the
    fairness tie-break gives each 10 A (not 20 A and 0 A)."""
    room = {"main": Phases.uniform(20.0)}
    cars = [HorizonCar("a", "main", ALL, 32.0), HorizonCar("b", "main", ALL, 32.0)]
    plan = solve(cars, _main(), room, PARAMS)
    assert plan.cap_a["a"] == pytest.approx(10.0, abs=0.1)
    assert plan.cap_a["b"] == pytest.approx(10.0, abs=0.1)
