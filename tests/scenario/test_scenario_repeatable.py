"""The simulator is repeatable: the same scenario gives the same report numbers every run.

This is what any faster mode of the runner is compared against (issue 18 item 2): a report
without its wall-clock fields must not depend on anything but the scenario and the policy.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers_scenario import HOST_FIELDS, comparable, tiny

from fuseguard.scenario.runner import simulate

__all__ = ["HOST_FIELDS", "comparable"]  # where the other scenario tests have imported them from


def _two_cars_with_trouble() -> Any:
    cars = [
        {"charger": "cp1", "arrive_s": 30, "depart_s": 900, "energy_wh": 3000, "max_a": 16},
        {"charger": "cp2", "arrive_s": 60, "depart_s": 1100, "energy_wh": 50000, "max_a": 32},
    ]
    chargers = [{"id": "cp1", "max_a": 32}, {"id": "cp2", "max_a": 32, "rotation": "L2L3L1"}]
    events = [
        {"at_s": 300, "base_step": {"delta_a": [8, 0, 0], "duration_s": 120}},
        {"at_s": 600, "fault": {"device": "cp2", "kind": "offline", "duration_s": 60}},
    ]
    return tiny(fuse_a=32, duration_s=1200, cars=cars, chargers=chargers, events=events)


@pytest.mark.parametrize("policy", ["fuseguard", "round_robin_30s"])
def test_same_scenario_same_numbers(policy: str) -> None:
    sc = _two_cars_with_trouble()
    first = simulate(sc, policy, compute_optimum=False, keep_timeline=False).report
    second = simulate(sc, policy, compute_optimum=False, keep_timeline=False).report
    assert first["energy_delivered_wh"]["total"] > 0  # the cars really charged
    assert comparable(first) == comparable(second)
