"""The headroom margin (issue 18): A per phase kept free below every circuit limit in the
allocator snapshot the controller builds, configured as ``[control] headroom_a`` (default 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fuseguard.allocation import allocate
from fuseguard.config import ControlConfig
from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.types import ChargerSpec, ControllerConfig, PlugDemand
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.phases import ALL_PHASES, Phases
from fuseguard.model.status import ChargeMode
from fuseguard.scenario.config import load_scenario, loads_scenario
from fuseguard.scenario.site import scenario_controller_config

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def _snapshot(headroom_a: float, limit: Phases) -> tuple[AllocatorSession, list[PlugDemand]]:
    spec = ChargerSpec(id="cp1", max_a=32)
    cfg = ControllerConfig(
        circuits=[CircuitSpec(id="main", parent=None, fuse_a=32.0)],
        chargers=[spec],
        headroom_a=headroom_a,
    )
    demand = PlugDemand(
        spec=spec, available=True, phases=ALL_PHASES, max_a=32, mode=ChargeMode.FAST, priority=0
    )
    return AllocatorSession(cfg), [demand]


@pytest.mark.parametrize(
    ("headroom_a", "limit", "expected_limit", "setpoint"),
    [
        (0.0, Phases(32, 32, 32), Phases(32, 32, 32), 22),
        (2.0, Phases(32, 32, 32), Phases(30, 30, 30), 20),
        (2.5, Phases(32, 20, 32), Phases(29.5, 17.5, 29.5), 7),
        (3.0, Phases(32, 2, 32), Phases(29, 0, 29), 0),  # never below 0
    ],
)
def test_headroom_lowers_every_circuit_limit_in_the_snapshot(
    headroom_a: float, limit: Phases, expected_limit: Phases, setpoint: int
) -> None:
    session, demands = _snapshot(headroom_a, limit)
    snap = session.build_snapshot(
        limits={"main": limit}, non_ev={"main": Phases(10, 10, 10)}, demands=demands, pv_surplus_w=0
    )
    assert snap.circuits[0].limit_a == expected_limit
    assert allocate(snap).setpoints == {"cp1": setpoint}


def test_headroom_is_a_control_setting_with_default_zero() -> None:
    assert ControlConfig().headroom_a == 0.0
    assert ControlConfig(headroom_a=2).headroom_a == 2.0
    for bad in (-1, float("nan"), 1e9):
        with pytest.raises(ValidationError):
            ControlConfig(headroom_a=bad)


def test_a_scenario_sets_the_headroom_in_its_control_section() -> None:
    text = (SCENARIOS / "base_load_steps.toml").read_text()
    assert (
        scenario_controller_config(load_scenario(SCENARIOS / "base_load_steps.toml")).headroom_a
        == 0
    )
    sc = loads_scenario(text + "\n[control]\nheadroom_a = 2\n")
    assert scenario_controller_config(sc).headroom_a == 2.0
