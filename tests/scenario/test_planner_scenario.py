"""The receding-horizon planner against least laxity first on a small scenario where only the
plan's 1-phase vs 3-phase trade meets every announced need (scenarios/phase_trade_announced.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuseguard.scenario.config import Scenario, load_scenario
from fuseguard.scenario.runner import simulate

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "phase_trade_announced.toml"


def _with(planner: str) -> Scenario:
    sc = load_scenario(SCENARIO)
    return sc.model_copy(update={"control": sc.control.model_copy(update={"planner": planner})})


@pytest.mark.timeout(600)
def test_the_horizon_plan_meets_more_needs_than_least_laxity() -> None:
    least = simulate(
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
