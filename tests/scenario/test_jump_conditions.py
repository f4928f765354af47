"""The conditions of an exact jump over a quiet stretch (``scenario/jump.py``), one at a time.

The jump library (``test_scenario_jump.py``) proves that its windows give the tick run's numbers;
a mutation audit (round 15, ``bench/notes/mutations.md``) found that none of its cases fails when
the jump ignores its margin, starts after a third of the settling time or jumps by a
non-multiple of the orbit period (the day-jump tests do, indirectly), and no test at all when it
ignores a Direct EVSE target or a device fault in force or leaves the chargers' offers or the
non-EV loads out of its steady signature. Each test here watches the jumps a short run takes
(``simulate(progress=...)``: the jumped seconds after every step) and checks one condition
against the site state the timeline recorded, or the jump against the tick run where breaking
the condition changes the numbers. A run costs 0.5-1 s of CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast

import numpy as np
from helpers_scenario import same_numbers, tiny

from fuseguard.model.phases import Phases
from fuseguard.scenario.config import Scenario
from fuseguard.scenario.jump import JumpTiming, SimProgress, SteadyWatch, jump_timing
from fuseguard.scenario.runner import SimulationResult, simulate
from fuseguard.scenario.site import scenario_controller_config
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import BaseLoad

ARRAYS = ("t_s", "grid_a", "limit_a", "ev_a", "charger_a", "setpoint_a")
SHORT_TURNS = {"min_run_s": 900.0}


@dataclass(frozen=True)
class Jump:
    """One jump in world time: taken at ``start_s``, landed at ``end_s``."""

    start_s: float
    end_s: float


def _jumps(sc: Scenario, *, jump: bool = True) -> tuple[SimulationResult, list[Jump]]:
    """Run ``sc``; the jumps it took, from the progress it reports after every step."""
    seen: list[SimProgress] = []
    res = simulate(sc, compute_optimum=False, keep_timeline=True, jump=jump, progress=seen.append)
    jumps: list[Jump] = []
    done_s = 0.0
    for p in seen:
        if p.jumped_s > done_s:
            jumps.append(Jump(p.world_s - (p.jumped_s - done_s), p.world_s))
            done_s = p.jumped_s
    assert done_s == res.jumped_s
    return res, jumps


def _timing(sc: Scenario) -> JumpTiming:
    timing = jump_timing(sc, scenario_controller_config(sc), 1.0, [sc.site.meter_period_s])
    assert timing is not None
    return timing


def _last_change_s(res: SimulationResult, before_s: float) -> float:
    """World time of the last tick up to ``before_s`` at which the recorded site state (grid
    current, each charger's draw and offer) differed from the tick before."""
    tl = res.timeline
    assert tl is not None
    t = tl.t_s[: tl.n]
    moved = np.zeros(tl.n - 1, dtype=bool)
    for key in ("grid_a", "charger_a", "setpoint_a"):
        a = getattr(tl, key)[: tl.n]
        moved |= np.any(a[1:] != a[:-1], axis=1)
    times = t[1:][moved]
    return float(times[times <= before_s].max())


def _leave_and_return(return_s: float = 2600.0) -> Scenario:
    """A car leaves at 400 s, another arrives at ``return_s``: one quiet stretch between."""
    cars = [
        {"charger": "cp1", "arrive_s": 100, "depart_s": 400, "energy_wh": 90000, "max_a": 16},
        {"charger": "cp1", "arrive_s": return_s, "depart_s": return_s + 100, "energy_wh": 500},
    ]
    return tiny(duration_s=return_s + 200, cars=cars, control=SHORT_TURNS)


def test_a_jump_waits_the_settling_time_lands_the_margin_early_by_whole_periods() -> None:
    """Settled for ``settle_s`` since the site state last moved (the car's departure), the jump
    is a whole number of orbit periods and lands at least ``margin_s`` before the next arrival.
    Mutants (round 15): a third of the settling time starts the jump 380 s after the departure;
    no margin lands it 20 s before the arrival; k*P - P/2 is no multiple of the period."""
    sc = _leave_and_return()
    timing = _timing(sc)
    assert (timing.period_s, timing.settle_s, timing.margin_s) == (60.0, 1080.0, 180.0)
    res, jumps = _jumps(sc)
    assert jumps  # the quiet stretch is jumped over
    for j in jumps:
        assert j.start_s - _last_change_s(res, j.start_s) >= timing.settle_s, j
        assert (j.end_s - j.start_s) % timing.period_s == 0.0, j
        assert j.end_s + timing.margin_s <= 2600.0, j
    assert res.jumped_s >= 600.0


def test_the_margin_before_an_arrival_that_falls_on_a_period() -> None:
    """The arrival 1 080 s after the first check that may jump (1 500 s: the departure at 400 s
    plus the settling time, on the 60 s grid of the checks), a whole number of periods: the
    jump stops ``margin_s`` short of it, not on it; the same numbers as ticking."""
    sc = _leave_and_return(return_s=1500.0 + 1080.0)
    timing = _timing(sc)
    res, jumps = _jumps(sc)
    same_numbers(res, _jumps(sc, jump=False)[0])
    assert [j.start_s for j in jumps] == [1500.0]
    assert jumps[0].end_s == 1500.0 + 1080.0 - timing.margin_s


def test_no_jump_while_a_direct_evse_target_is_in_force() -> None:
    """A 0 A target on the empty charger from 1 800 s to 3 800 s, a car at 3 900 s. The stretch
    before the target is jumped; inside the target window nothing is (the controller holds the
    target's expiry on its own clock, which a jump does not move). Mutant (the target check
    off): a jump inside the window keeps the target in force 720 s of world time too long, the
    car arriving after it gets nothing: numbers differ from the tick run."""
    cars = [
        {"charger": "cp1", "arrive_s": 100, "depart_s": 300, "energy_wh": 90000, "max_a": 16},
        {"charger": "cp1", "arrive_s": 3900, "depart_s": 4500, "energy_wh": 90000, "max_a": 16},
    ]
    target = {"charger": "cp1", "current_a": 0, "duration_s": 2000}
    sc = tiny(
        duration_s=4600,
        cars=cars,
        events=[{"at_s": 1800, "target": target}],
        control=SHORT_TURNS,
    )
    res, jumps = _jumps(sc)
    same_numbers(res, _jumps(sc, jump=False)[0])
    assert jumps
    assert all(j.end_s <= 1800.0 or j.start_s > 3801.0 for j in jumps), jumps
    assert res.report["energy_delivered_wh"]["total"] > 0


def test_the_steady_state_counts_every_offer_and_non_ev_load() -> None:
    """The settling time counts from the last change of any part of the site state the
    recorder reads: a charger's offer alone (no car drawing) or a non-EV load alone restarts
    it. In the scenarios a run can express today both change
    only with a change of the world (``QuietWorld.span`` starts there too), so no run tells
    these mutants apart (round 15, ``bench/notes/mutations.md``); this pins the condition for
    the day one does."""
    conn = SimpleNamespace(offered_a=0.0, grid_tuple=(0.0, 0.0, 0.0))
    load = SimpleNamespace(now=Phases(10.0, 10.0, 10.0))
    load.grid_current_a = lambda: load.now
    watch = SteadyWatch(
        cast("list[ChargePoint]", [conn]), cast("list[BaseLoad]", [load]), None, lambda: False
    )
    watch.on_tick(1.0)
    watch.on_tick(2.0)
    assert watch.since == 1.0
    conn.offered_a = 6.0  # the offer moves, the draw does not
    watch.on_tick(3.0)
    assert watch.since == 3.0
    load.now = Phases(12.0, 10.0, 10.0)  # a non-EV load moves, nothing else
    watch.on_tick(4.0)
    assert watch.since == 4.0
    watch.on_tick(5.0)
    assert watch.since == 4.0


def test_no_jump_while_a_device_fault_is_in_force() -> None:
    """The grid meter offline from 600 s to 3 600 s, no car until 3 900 s: the controller's
    meter-loss memory (the time since its last sample) grows, its state is no orbit, nothing
    is jumped inside the fault (the stretch after it is). Mutant (round 15: the whole quiet
    check ``idle`` off, which the jump library and the day jumps never noticed): a jump of
    1 740 s inside the fault."""
    cars = [
        {"charger": "cp1", "arrive_s": 100, "depart_s": 300, "energy_wh": 90000, "max_a": 16},
        {"charger": "cp1", "arrive_s": 5400, "depart_s": 5500, "energy_wh": 500, "max_a": 16},
    ]
    fault = {"device": "meter", "kind": "offline", "duration_s": 3000}
    sc = tiny(
        duration_s=5600, cars=cars, events=[{"at_s": 600, "fault": fault}], control=SHORT_TURNS
    )
    _res, jumps = _jumps(sc)
    assert any(j.start_s >= 3600.0 for j in jumps), jumps  # the stretch after it is jumped
    assert all(j.end_s <= 600.0 or j.start_s >= 3600.0 for j in jumps), jumps
