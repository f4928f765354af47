"""Jumps over whole days of a repeated scenario (``scenario/dayjump.py``): the same report and the
same timeline as the run tick by tick (``jump=False``), a day really skipped, and a state that
differs a day apart (a memory that only matters after several days) refuses the jump.

The "day" here is 1 h (``repeat_days(..., day_s=3600)``, one of the recorder's fairness
windows): a busy half hour (two cars, a full one and one leaving unmet, an overload step and a
charger fault; the meter read every 2 s), then quiet long enough for a settled point. The turns
last at most 15 min (``min_run_s = 900``, as in ``test_scenario_jump.py``), so that the
controller's longest memory, and with it the settling time, is 1 080 s instead of the defaults'
2 820 s: the quiet point is 2 880 s into each day, 720 s before the next day's first event."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from helpers_scenario import same_numbers

from fuseguard.control.controller import Controller
from fuseguard.scenario import runner
from fuseguard.scenario.config import Scenario, parse_scenario
from fuseguard.scenario.dayjump import DayJump, day_jump
from fuseguard.scenario.days import repeat_days
from fuseguard.scenario.jump import SimProgress
from fuseguard.scenario.runner import SimulationResult, simulate
from fuseguard.scenario.statewalk import Capture

pytestmark = pytest.mark.xdist_group("scenario_dayjump")

DAY_S = 3600.0
#: the settled point of each day: the last change at 1 800 s + the settling time (1 080 s)
QUIET_AT_S = 2880.0


def _day(**extra: object) -> Scenario:
    """Two chargers sharing a small fuse for half an hour: one car gets full (idle pause and
    probe), one leaves unmet; the base load ramps meanwhile; an overload step and a charger fault
    every day."""
    data: dict[str, object] = {
        "site": {"name": "short day", "fuse_a": 20, "duration_s": DAY_S, "meter_period_s": 2},
        "base_load": {
            "points": [[0, [4, 3, 4]], [300, [4, 3, 4]], [900, [9, 6, 7]], [1800, [4, 3, 4]]]
        },
        "chargers": [{"id": "cp1", "max_a": 32}, {"id": "cp2", "max_a": 16}],
        "cars": [
            {"charger": "cp1", "arrive_s": 300, "depart_s": 1500, "energy_wh": 2500,
             "phases": 3, "max_a": 16},
            {"charger": "cp2", "arrive_s": 420, "depart_s": 1800, "energy_wh": 40000,
             "phases": 1, "max_a": 16},
        ],
        "events": [
            {"at_s": 1000, "base_step": {"delta_a": [14, 0, 0], "duration_s": 30}},
            {"at_s": 1100, "fault": {"device": "cp1", "kind": "offline", "duration_s": 120}},
        ],
        "control": {"min_run_s": 900},
        **extra,
    }  # fmt: skip
    return parse_scenario(data, source="test")


def _same(ticks: SimulationResult, jumps: SimulationResult) -> None:
    same_numbers(ticks, jumps)


def _watching(monkeypatch: pytest.MonkeyPatch) -> list[DayJump]:
    """Every DayJump the runner makes, to read its refusals afterwards."""
    made: list[DayJump] = []
    init = DayJump.__init__

    def keep(self: DayJump, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(DayJump, "__init__", keep)
    return made


def test_days_jumped_give_the_tick_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five short days: day 1 differs from day 0 (the controller's setpoint history starts
    empty), the state at day 2's quiet point equals day 1's modulo the clock's advance, so day 3
    is skipped and day 4 runs; report and every timeline array are those of the run tick by
    tick (``jump=False``). By default the jump lands in day 4 (days 3 and 4 skipped from day 2's
    quiet point: no car of day 4 outlasts the end); with ``keep_last_day`` (the round-7 rule) only
    day 3 is skipped and day 4 runs: the same report and timeline both times. The first jumped
    run has a progress listener (``simulate(progress=...)``): the walk never reaches it."""
    sc = repeat_days(_day(), 5, day_s=DAY_S)
    ticks = simulate(sc, compute_optimum=False, jump=False)
    made = _watching(monkeypatch)
    # a progress listener holding what the state walk cannot compare (a lock, as the CLI's
    # printer holds its stream) is outside the compared state: the days are jumped all the same
    lock = threading.Lock()
    seen: list[SimProgress] = []

    def listen(p: SimProgress) -> None:
        with lock:
            seen.append(p)

    jumps = simulate(sc, compute_optimum=False, progress=listen)
    assert jumps.days_jumped == 2, made[0].refusals
    assert (seen[-1].world_s, seen[-1].days_jumped) == (5 * DAY_S, 2)
    assert ticks.days_jumped == 0
    _same(ticks, jumps)
    report = jumps.report
    assert report["overload_as"]["total"] > 0
    assert len(report["energy_delivered_wh"]["per_car"]) == 10
    assert made[0].captures == 3
    assert [w for w, _why in made[0].refusals] == [DAY_S + QUIET_AT_S]  # day 1 vs day 0
    monkeypatch.setattr(DayJump, "keep_last_day", True)
    kept = simulate(sc, compute_optimum=False)
    assert kept.days_jumped == 1
    _same(ticks, kept)


def test_a_car_the_end_cuts_runs_tick_by_tick() -> None:
    """The end falls inside day 4's first car (it arrives 300 s into the day and would leave at
    1 500 s; the run ends at 600 s): the jump from day 2's quiet point may skip one day only
    (landing before that car's arrival), and the cut car's partial session is the tick run's."""
    sc = repeat_days(_day(), 5, day_s=DAY_S)
    short = sc.model_copy(
        update={"site": sc.site.model_copy(update={"duration_s": 4 * DAY_S + 600})}
    )
    ticks = simulate(short, compute_optimum=False, jump=False)
    jumps = simulate(short, compute_optimum=False)
    assert jumps.days_jumped == 1
    _same(ticks, jumps)
    assert f"cp1@{4 * DAY_S + 300:g}" in jumps.report["energy_delivered_wh"]["per_car"]


def test_a_memory_that_differs_a_day_apart_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller memory that changes every day (here a count of decisions, the kind of state
    that could matter only after several days): the states a day apart differ there, the walk
    names it and no day is jumped."""
    decide = Controller.decide

    def counting(self: Controller) -> None:
        self._days_memory = getattr(self, "_days_memory", 0) + 1  # type: ignore[attr-defined]
        decide(self)

    monkeypatch.setattr(Controller, "decide", counting)
    made = _watching(monkeypatch)
    # four days: without the memory, day 3 would be jumped (from day 2's quiet point)
    sc = repeat_days(_day(), 4, day_s=DAY_S)
    result = simulate(sc, compute_optimum=False, keep_timeline=False)
    assert result.days_jumped == 0
    reasons = [r for _w, r in made[0].refusals]
    assert reasons
    assert all("_days_memory" in r for r in reasons), reasons


def test_an_unwalkable_state_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Something reachable that the walk cannot see into (here a lock held by the controller):
    the jump is refused, never taken on a partial walk."""
    import threading

    decide = Controller.decide

    def locking(self: Controller) -> None:
        self._opaque = threading.Lock()  # type: ignore[attr-defined]
        decide(self)

    monkeypatch.setattr(Controller, "decide", locking)
    made = _watching(monkeypatch)
    # two days: the walk is tried at day 0's quiet point (three days, until round 15, tried it
    # once more at day 1's; no day could be jumped in either)
    sc = repeat_days(_day(), 2, day_s=DAY_S)
    result = simulate(sc, compute_optimum=False, keep_timeline=False)
    assert result.days_jumped == 0
    assert made[0].captures == 0
    assert made[0].refusals
    assert all("not walkable" in r and "_opaque" in r for _w, r in made[0].refusals)


def test_landing_stops_before_a_last_day_car_the_end_cuts() -> None:
    """``periodic_until_s``: the first arrival of a car whose departure lies beyond the end."""
    sc = repeat_days(_day(), 4, day_s=DAY_S)
    short = sc.model_copy(
        update={"site": sc.site.model_copy(update={"duration_s": 3 * DAY_S + 600})}
    )
    rec = runner._Run(short, "fuseguard", keep_timeline=False).recorder

    def state() -> Capture:
        return Capture(0.0, [])

    dj = day_jump(short, rec, [], capture=state, period_s=60.0)
    assert dj is not None
    assert dj._periodic_until_s == 3 * DAY_S + 300  # cp1's car of day 3 leaves after the end


def test_no_day_jump_without_repetition_or_with_announced_departures() -> None:
    assert _day().repeat_day_s is None
    assert repeat_days(_day(), 1, day_s=DAY_S).repeat_day_s is None
    assert repeat_days(_day(), 2, day_s=DAY_S).repeat_day_s == DAY_S
    cars = [
        {"charger": "cp1", "arrive_s": 300, "depart_s": 1500, "energy_wh": 6000,
         "announce_departure": True},
    ]  # fmt: skip
    announced = repeat_days(_day(cars=cars), 4, day_s=DAY_S)
    rec = runner._Run(announced, "fuseguard", keep_timeline=False).recorder

    def state() -> Capture:
        return Capture(0.0, [])

    assert day_jump(announced, rec, [], capture=state, period_s=60.0) is None
    plain = repeat_days(_day(), 4, day_s=DAY_S)
    assert day_jump(plain, rec, [], capture=state, period_s=60.0) is not None
