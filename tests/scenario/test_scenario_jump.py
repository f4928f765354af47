"""Jumps over quiet stretches change no result (issue 18 item 2, ``scenario/jump.py``).

Each scenario runs twice: tick by tick (``jump=False``) and with the jumps. The report and every
timeline array (time, grid, limit, EV, charger draw and offer per tick) must be identical, not
merely close, and the jump must really have been taken. A part of each library scenario
(``WINDOWS``) is put behind a quiet stretch (everything it prescribes moved later), so that what
follows the jump covers PV, a separate PV meter, OCPP meter values, a sub-distribution meter and
its loss, a lost grid meter, load steps, flex limits and a lost keep-alive, Direct EVSE targets
and announced departures.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers_scenario import same_numbers, tiny

from fuseguard.model.phases import Phases
from fuseguard.scenario.config import Scenario, parse_scenario
from fuseguard.scenario.jump import _constant_span, _dark_span, jump_timing
from fuseguard.scenario.runner import SimulationResult, simulate
from fuseguard.scenario.site import scenario_controller_config
from fuseguard.sim.site import PvPlant

ROOT = Path(__file__).resolve().parents[2]


def _value_at(points: list[list[Any]], t_s: float) -> list[float]:
    """The piecewise linear load profile ``points`` at ``t_s`` (flat outside its points)."""
    if t_s <= points[0][0]:
        return list(points[0][1])
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t0 <= t_s <= t1:
            f = 0.0 if t1 == t0 else (t_s - t0) / (t1 - t0)
            return [a + f * (b - a) for a, b in zip(v0, v1, strict=True)]
    return list(points[-1][1])


def _window_points(points: list[list[Any]], from_s: float, quiet_s: float) -> list[list[Any]]:
    """The profile from ``from_s`` on, moved to start at ``quiet_s`` (constant before it)."""
    head = [[quiet_s, _value_at(points, from_s)]]
    return head + [[t - from_s + quiet_s, v] for t, v in points if t > from_s]


def after_quiet(name: str, quiet_s: float, keep_s: float, from_s: float = 0.0) -> Scenario:
    """Library scenario ``name`` from ``from_s`` for ``keep_s``, behind ``quiet_s`` of nothing
    happening.

    Cars plugged in before ``from_s`` arrive when the quiet stretch ends; state events before it
    (flex settings, keep-alive stop/start) take effect then, in their order; a fault, base step
    or target must have ended before ``from_s`` (it is left out). The controller's turns
    (``min_run_s``) last at most 15 min, so that its longest memory (the 15-min peak history)
    sets the settling time: the quiet stretch need not be 45 min long.
    """
    data = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text())
    by_s = quiet_s - from_s
    site = data["site"]
    site["duration_s"] = quiet_s + min(site.get("duration_s", 86400.0) - from_s, keep_s)
    control = data.setdefault("control", {})
    control["min_run_s"] = min(control.get("min_run_s", 2700.0), SHORT_MIN_RUN_S)
    cars = [car for car in data.get("cars", []) if car["depart_s"] > from_s]
    for car in cars:
        car["arrive_s"] = max(car["arrive_s"], from_s) + by_s
        car["depart_s"] += by_s
    data["cars"] = cars
    events = []
    for ev in data.get("events", []):
        timed = ev.get("fault") or ev.get("base_step") or ev.get("target")
        if ev["at_s"] < from_s:
            assert timed is not None or ev.get("flex") or ev.get("keepalive"), ev
            if timed is not None:
                assert ev["at_s"] + timed["duration_s"] <= from_s, ev  # over before the window
                continue
        events.append({**ev, "at_s": max(ev["at_s"], from_s) + by_s})
    data["events"] = events
    data["base_load"]["points"] = _window_points(data["base_load"]["points"], from_s, quiet_s)
    for load in data.get("circuit_loads", []):
        load["points"] = _window_points(load["points"], from_s, quiet_s)
    pv = data.get("pv")
    if pv is not None:
        assert from_s == 0.0  # the quiet stretch is the night before sunrise
        pv["sunrise_s"] += by_s
        pv["sunset_s"] += by_s
        pv["clouds"] = [[a + by_s, b + by_s, f] for a, b, f in pv.get("clouds", [])]
    return parse_scenario(data, name)


def _leave_quiet_return() -> Scenario:
    """A car leaves, nothing happens for long, a car comes back to the same charger; a base
    step lasts across the whole quiet stretch (its end is a timer the jump moves); the base of
    :func:`_watchdogs_across_the_jump`. Turns of at
    most 15 min (:data:`SHORT_TURNS`): the settling time is 1 080 s, so the quiet stretch from
    700 s to 3 000 s holds about 20 min of jump (round 14; until then the defaults' 2 820 s and
    a return at 4 700 s, 1 700 s more of ticks in each run)."""
    chargers = [{"id": "cp1", "max_a": 32}, {"id": "cp2", "max_a": 16, "rotation": "L3L1L2"}]
    cars = [
        {"charger": "cp1", "arrive_s": 100, "depart_s": 700, "energy_wh": 90000, "max_a": 16},
        {"charger": "cp2", "arrive_s": 150, "depart_s": 400, "energy_wh": 200, "phases": 1},
        {"charger": "cp1", "arrive_s": 3000, "depart_s": 3900, "energy_wh": 3000, "max_a": 16},
        {"charger": "cp2", "arrive_s": 3100, "depart_s": 3800, "energy_wh": 90000, "phases": 1},
    ]
    events = [
        {"at_s": 60, "base_step": {"delta_a": [4, 0, 2], "duration_s": 3500}},
        {"at_s": 3300, "fault": {"device": "meter", "kind": "offline", "duration_s": 40}},
    ]
    return tiny(
        fuse_a=25, duration_s=4000, cars=cars, chargers=chargers, events=events, control=SHORT_TURNS
    )


def _watchdogs_across_the_jump() -> Scenario:
    """The same with charger watchdogs that need more than the rewrites: a 21 s safe timeout
    (the Bender refresh every 7 s, an OCPP lease renewed every 7 s: P = 420 s, so the settling
    time is longer and the cars come back 1 200 s later), cp2 an OCPP charger, and cp1 offline
    for 2 min after the jump (it falls back to its safe current)."""
    later_s = 1200.0
    data = _leave_quiet_return().model_dump(mode="json")
    data["site"]["charger_safe_timeout_s"] = 21
    data["site"]["duration_s"] += later_s
    data["chargers"][1]["driver"] = "ocpp"
    for car in data["cars"]:
        if car["arrive_s"] > 2000:
            car["arrive_s"] += later_s
            car["depart_s"] += later_s
    for ev in data["events"]:
        if ev["at_s"] > 2000:
            ev["at_s"] += later_s
        elif ev["base_step"] is not None:
            ev["base_step"]["duration_s"] += later_s
    data["events"].append(
        {"at_s": 3200 + later_s, "fault": {"device": "cp1", "kind": "offline", "duration_s": 120}}
    )
    return parse_scenario(data, "watchdogs_across_the_jump")


#: turns of at most 15 min in the library scenarios below (the default is 45 min)
SHORT_MIN_RUN_S = 900.0
SHORT_TURNS = {"min_run_s": SHORT_MIN_RUN_S}
#: settling (15-min peak history + 1 min + 2 orbit periods) + margin + 10 min of jump
QUIET_S = 1920.0
#: (library scenario, from_s, keep_s): the part of each that follows the quiet stretch
WINDOWS = {
    # sunrise, the two PV cars arriving (separate PV meter, own period)
    "pv_separate_inverter": (0.0, 1500.0),
    # arrivals, OCPP meter values every 60 s, the base load step at 1 200 s
    "ocpp_meter_values_60s": (0.0, 1500.0),
    # the sub-meter lost (10 min) with a garage load step in the blind phase
    "subdistribution_meter": (2400.0, 1200.0),
    # the flex limit (activated, lowered to 18 A) as the cars arrive, the keep-alive stops
    # 200 s later: the 120 s watchdog's 10 A fallback for 10 min
    "flex_limit_keepalive_loss": (5200.0, 900.0),
    # the grid meter offline (5 min) while the base load ramps, then the load step
    "meter_offline": (1500.0, 1200.0),
    # a one-phase load step of 10 min, start and end
    "base_load_steps": (3900.0, 900.0),
    # a Direct EVSE target of 0 A for 15 min, start and end
    "direct_evse_targets": (4400.0, 1100.0),
    # arrivals with announced departures and needs (least laxity first)
    "departures_announced": (0.0, 1500.0),
}
#: ``_leave_quiet_return`` itself is no case since round 15: ``watchdogs_across_the_jump`` is it
#: with more (longer orbit, an OCPP charger, a fault after the jump), and of nine mutations of
#: ``scenario/jump.py`` it failed only on the two that fail all ten cases (timers not re-armed,
#: one skipped tick not recorded) -- bench/notes/tests.md, round 15
SCENARIOS = {
    "watchdogs_across_the_jump": _watchdogs_across_the_jump,
    **{
        name: (lambda name=name, w=w: after_quiet(name, QUIET_S, w[1], w[0]))
        for name, w in WINDOWS.items()
    },
}


def _run(sc: Scenario, *, jump: bool) -> SimulationResult:
    return simulate(sc, compute_optimum=False, keep_timeline=True, jump=jump)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_jumps_change_no_report_number_and_no_tick(name: str) -> None:
    sc = SCENARIOS[name]()
    jumped = _run(sc, jump=True)
    ticked = _run(sc, jump=False)
    assert jumped.jumped_s >= 600.0  # the quiet stretch was really jumped over
    assert ticked.jumped_s == 0.0
    same_numbers(jumped, ticked)
    assert jumped.report["energy_delivered_wh"]["total"] > 0
    assert jumped.timeline is not None
    assert jumped.timeline.n >= sc.site.duration_s


#: what the window of a library scenario is kept for: its events of these kinds, after the jump
KEPT_FOR = {
    "subdistribution_meter": {"fault", "base_step"},
    "flex_limit_keepalive_loss": {"flex", "keepalive"},
    "meter_offline": {"fault"},
    "base_load_steps": {"base_step"},
    "direct_evse_targets": {"target"},
}


@pytest.mark.parametrize("name", sorted(KEPT_FOR))
def test_each_window_holds_the_events_it_is_kept_for(name: str) -> None:
    sc = SCENARIOS[name]()
    kinds = set()
    for ev in sc.events:
        timed = ev.fault or ev.base_step or ev.target
        end_s = ev.at_s + (timed.duration_s if timed is not None else 0.0)
        if ev.at_s >= QUIET_S and end_s < sc.site.duration_s:  # starts and ends in the run
            kinds |= {k for k in KEPT_FOR[name] if getattr(ev, k) is not None}
    assert kinds == KEPT_FOR[name]


def test_an_empty_run_jumps_to_its_end() -> None:
    """No car at all, an end that is not a whole second: the run ends on time, same numbers."""
    sc = tiny(duration_s=3900.5, cars=[], control=SHORT_TURNS)
    jumped, ticked = _run(sc, jump=True), _run(sc, jump=False)
    assert jumped.jumped_s >= 2400.0
    same_numbers(jumped, ticked)


def test_no_jump_while_a_car_is_plugged_in() -> None:
    """A car that stays the whole run: nothing is quiet, every tick runs."""
    cars = [{"charger": "cp1", "arrive_s": 0, "depart_s": 9000, "energy_wh": 500, "max_a": 16}]
    sc = tiny(duration_s=2400, cars=cars, control=SHORT_TURNS)
    timing = jump_timing(sc, scenario_controller_config(sc), 1.0, [0.0])
    assert timing is not None
    # the car is full after about 3 min: without it the run would have 10 min to jump over
    assert 180.0 + timing.settle_s + timing.margin_s + 600.0 <= sc.site.duration_s
    res = _run(sc, jump=True)
    assert res.report["unmet_wh"]["cp1@0"] == 0.0  # full, plugged in, idle
    assert res.jumped_s == 0.0


def test_baselines_run_every_tick() -> None:
    res = simulate(
        tiny(duration_s=4000, cars=[]), "static", compute_optimum=False, keep_timeline=False
    )
    assert res.jumped_s == 0.0


def test_orbit_period_settling_and_margin_of_the_defaults() -> None:
    sc = tiny(duration_s=600)
    timing = jump_timing(sc, scenario_controller_config(sc), 1.0, [0.0])
    assert timing is not None
    # minute peaks 60, rewrites 20, idle charger reads 10, keep-alive 30, meter 1
    assert timing.period_s == 60.0
    assert timing.settle_s >= 2700.0  # min_run_s: the longest memory of the controller
    assert timing.margin_s >= sc.site.flex_timeout_s


def test_no_jump_for_cadences_that_are_not_whole_seconds() -> None:
    sc = tiny(duration_s=600, site={"keepalive_period_s": 7.5})
    assert jump_timing(sc, scenario_controller_config(sc), 1.0, [0.0]) is None
    sc = tiny(duration_s=600)
    assert jump_timing(sc, scenario_controller_config(sc), 0.3, [0.0]) is None


def test_constant_span_of_a_profile() -> None:
    a, b = Phases(1, 1, 1), Phases(2, 2, 2)
    points = [(0.0, a), (100.0, a), (200.0, b), (300.0, b), (300.0, a)]
    assert _constant_span(points, 50.0) == (-math.inf, 100.0)
    assert _constant_span(points, 150.0) == (150.0, 150.0)  # ramping
    assert _constant_span(points, 250.0) == (200.0, 300.0)
    assert _constant_span(points, 400.0) == (300.0, math.inf)
    assert _constant_span([(10.0, a)], 0.0) == (-math.inf, math.inf)


def test_dark_span_of_the_pv_plant() -> None:
    pv = PvPlant(peak_w=1000.0, sunrise_s=21600.0, sunset_s=64800.0)
    assert _dark_span(None, 5.0) == (-math.inf, math.inf)
    assert _dark_span(pv, 3600.0) == (64800.0 - 86400.0, 21600.0)
    assert _dark_span(pv, 40000.0) == (40000.0, 40000.0)
    assert _dark_span(pv, 70000.0) == (64800.0, 86400.0 + 21600.0)
