"""The receding-horizon planner against least laxity first on a small scenario where the 1-phase
vs 3-phase trade decides (scenarios/phase_trade_announced.toml): the plan and least laxity with
its default reserves (an urgent car admitted with what it needs to finish) meet all four needs.
Least laxity without reserves (``urgent_reserve = 0``) missed the two 3-phase cars' needs while it
ranked by raw laxity: they swapped the lead on every decision (16 <-> 10 A); with the laxity bands
of round 18 (``allocation.urgency.LAXITY_BAND_S``, ``bench/notes/r18-flap.md``) it meets them too.

The scenario runs at half its length (round 14, to halve the suite's CPU for it): every
departure, every need and the urgency window halved (3-phase cars leave at 41 min with
5.5 kWh each to take, 1-phase ones at 75 min with 1.8 kWh), the same site, base load and
chargers. The trade decides the same way (checked: with reserves and with the plan 4 met).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fuseguard.scenario.config import Scenario, parse_scenario
from fuseguard.scenario.runner import simulate

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "phase_trade_announced.toml"
#: the scenario's times and needs, scaled (module docstring)
SCALE = 0.5


def _with(planner: str, urgent_reserve: float = 1.0) -> Scenario:
    data = tomllib.loads(SCENARIO.read_text())
    data["site"]["duration_s"] *= SCALE
    data["base_load"]["points"] = [[t * SCALE, a] for t, a in data["base_load"]["points"]]
    data["control"]["urgent_laxity_s"] *= SCALE
    for car in data["cars"]:
        car["arrive_s"] *= SCALE
        car["depart_s"] *= SCALE
        car["energy_wh"] *= SCALE
    data["control"].update(planner=planner, urgent_reserve=urgent_reserve)
    return parse_scenario(data, "phase_trade_announced at half length")


@pytest.mark.timeout(600)
def test_the_horizon_plan_reserves_and_least_laxity_bands_meet_every_need() -> None:
    least = simulate(
        _with("least_laxity", 0.0), "fuseguard", compute_optimum=False, keep_timeline=False
    ).report
    reserved = simulate(
        _with("least_laxity"), "fuseguard", compute_optimum=False, keep_timeline=False
    ).report
    plan = simulate(
        _with("horizon"), "fuseguard", compute_optimum=False, keep_timeline=False
    ).report
    assert least["departures"]["announced"] == plan["departures"]["announced"] == 4
    # raw laxity (before round 18's bands) met 2 here (14093.7 Wh): the two 3-phase cars swapped
    # the lead each decision (16 <-> 10 A) and both missed; with the bands they take turns
    assert least["departures"]["met"] == 4
    assert plan["departures"]["met"] == 4
    assert plan["overload_as"]["total"] == 0.0
    assert plan["max_cycles_per_car_hour"] <= 1.0
    assert plan["energy_delivered_wh"]["total"] >= least["energy_delivered_wh"]["total"]
    assert reserved["departures"]["met"] == 4
    assert reserved["overload_as"]["total"] == 0.0
    assert reserved["max_cycles_per_car_hour"] <= 1.0
