"""The receding-horizon planner against least laxity first on a small scenario where the 1-phase
vs 3-phase trade decides (scenarios/phase_trade_announced.toml): least laxity without reserves
(``urgent_reserve = 0``) misses the two 3-phase cars' needs; the plan and least laxity with its
default reserves (an urgent car admitted with what it needs to finish) meet all four.

The scenario runs at half its length (round 14, to halve the suite's CPU for it): every
departure, every need and the urgency window halved (3-phase cars leave at 41 min with
5.5 kWh each to take, 1-phase ones at 75 min with 1.8 kWh), the same site, base load and
chargers. The trade decides the same way (checked: least laxity without reserves misses the
3-phase cars, met 2; with reserves and with the plan 4)."""

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
def test_the_horizon_plan_and_reserves_meet_more_needs_than_plain_least_laxity() -> None:
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
    assert least["departures"]["met"] == 2  # the two 3-phase cars miss theirs
    assert plan["departures"]["met"] == 4
    assert plan["overload_as"]["total"] == 0.0
    assert plan["max_cycles_per_car_hour"] <= 1.0
    assert plan["energy_delivered_wh"]["total"] > least["energy_delivered_wh"]["total"]
    assert reserved["departures"]["met"] == 4
    assert reserved["overload_as"]["total"] == 0.0
    assert reserved["max_cycles_per_car_hour"] <= 1.0
