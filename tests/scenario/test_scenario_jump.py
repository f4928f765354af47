"""Jumps over quiet stretches change no result (issue 18 item 2, ``scenario/jump.py``).

Each scenario runs twice: tick by tick (``jump=False``) and with the jumps. The report and every
timeline array (time, grid, limit, EV, charger draw and offer per tick) must be identical, not
merely close, and the jump must really have been taken. The library scenarios are put behind a
quiet stretch (everything they prescribe moved later), so that what follows the jump covers
PV, a separate PV meter, OCPP meter values, a sub-distribution meter, faults, load steps, flex
limits and a lost keep-alive, Direct EVSE targets and announced departures.
"""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from helpers_scenario import tiny
from test_scenario_repeatable import comparable

from fuseguard.model.phases import Phases
from fuseguard.scenario.config import Scenario, parse_scenario
from fuseguard.scenario.jump import _constant_span, _dark_span, jump_timing
from fuseguard.scenario.runner import SimulationResult, simulate
from fuseguard.scenario.site import scenario_controller_config
from fuseguard.sim.site import PvPlant

ROOT = Path(__file__).resolve().parents[2]
ARRAYS = ("t_s", "grid_a", "limit_a", "ev_a", "charger_a", "setpoint_a")


@pytest.fixture(autouse=True)
def _errors_only() -> Iterator[None]:
    """Hours of virtual time: leave the debug log out (it costs more than the run)."""
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    yield
    structlog.configure(**old)


def _shift_points(points: list[list[Any]], by_s: float) -> list[list[Any]]:
    return [[t + by_s, v] for t, v in points]


def after_quiet(name: str, quiet_s: float, keep_s: float) -> Scenario:
    """Library scenario ``name`` cut to ``keep_s``, behind ``quiet_s`` of nothing happening."""
    data = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text())
    site = data["site"]
    site["duration_s"] = quiet_s + min(site.get("duration_s", 86400.0), keep_s)
    for car in data.get("cars", []):
        car["arrive_s"] += quiet_s
        car["depart_s"] += quiet_s
    for ev in data.get("events", []):
        ev["at_s"] += quiet_s
    data["base_load"]["points"] = _shift_points(data["base_load"]["points"], quiet_s)
    for load in data.get("circuit_loads", []):
        load["points"] = _shift_points(load["points"], quiet_s)
    pv = data.get("pv")
    if pv is not None:
        pv["sunrise_s"] += quiet_s
        pv["sunset_s"] += quiet_s
        pv["clouds"] = [[a + quiet_s, b + quiet_s, f] for a, b, f in pv.get("clouds", [])]
    return parse_scenario(data, name)


def _leave_quiet_return() -> Scenario:
    """A car leaves, nothing happens for long, a car comes back to the same charger; a base
    step lasts across the whole quiet stretch (its end is a timer the jump moves)."""
    chargers = [{"id": "cp1", "max_a": 32}, {"id": "cp2", "max_a": 16, "rotation": "L3L1L2"}]
    cars = [
        {"charger": "cp1", "arrive_s": 100, "depart_s": 700, "energy_wh": 90000, "max_a": 16},
        {"charger": "cp2", "arrive_s": 150, "depart_s": 400, "energy_wh": 200, "phases": 1},
        {"charger": "cp1", "arrive_s": 4700, "depart_s": 5600, "energy_wh": 3000, "max_a": 16},
        {"charger": "cp2", "arrive_s": 4800, "depart_s": 5500, "energy_wh": 90000, "phases": 1},
    ]
    events = [
        {"at_s": 60, "base_step": {"delta_a": [4, 0, 2], "duration_s": 5200}},
        {"at_s": 5000, "fault": {"device": "meter", "kind": "offline", "duration_s": 40}},
    ]
    return tiny(fuse_a=25, duration_s=5700, cars=cars, chargers=chargers, events=events)


QUIET_S = 3600.0
KEEP_S = 1500.0
SCENARIOS = {
    "leave_quiet_return": _leave_quiet_return,
    **{
        name: (lambda name=name: after_quiet(name, QUIET_S, KEEP_S))
        for name in (
            "pv_separate_inverter",
            "ocpp_meter_values_60s",
            "subdistribution_meter",
            "flex_limit_keepalive_loss",
            "meter_offline",
            "base_load_steps",
            "direct_evse_targets",
            "departures_announced",
        )
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
    assert comparable(jumped.report) == comparable(ticked.report)
    assert jumped.report["energy_delivered_wh"]["total"] > 0
    a, b = jumped.timeline, ticked.timeline
    assert a is not None
    assert b is not None
    assert a.n == b.n >= sc.site.duration_s
    for key in ARRAYS:
        assert np.array_equal(getattr(a, key)[: a.n], getattr(b, key)[: b.n]), key


def test_an_empty_run_jumps_to_its_end() -> None:
    """No car at all, an end that is not a whole second: the run ends on time, same numbers."""
    sc = tiny(duration_s=6000.5, cars=[])
    jumped, ticked = _run(sc, jump=True), _run(sc, jump=False)
    assert jumped.jumped_s >= 2400.0
    assert comparable(jumped.report) == comparable(ticked.report)
    a, b = jumped.timeline, ticked.timeline
    assert a is not None
    assert b is not None
    assert a.n == b.n
    for key in ARRAYS:
        assert np.array_equal(getattr(a, key)[: a.n], getattr(b, key)[: b.n]), key


def test_no_jump_while_a_car_is_plugged_in() -> None:
    """A car that stays the whole run: nothing is quiet, every tick runs."""
    cars = [{"charger": "cp1", "arrive_s": 0, "depart_s": 9000, "energy_wh": 500, "max_a": 16}]
    res = _run(tiny(duration_s=5000, cars=cars), jump=True)
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
