"""``[control] urgent_laxity_s``: the departure urgency window goes from the site config through
the one config -> controller translation into the allocator's parameters."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from fuseguard.allocation.snapshot import snapshot_from_data, snapshot_to_data
from fuseguard.allocation.types import (
    URGENT_LAXITY_S,
    Allocation,
    AllocationParams,
    Circuit,
    Snapshot,
)
from fuseguard.config import ControlConfig
from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.types import ChargerSpec, ControllerConfig, PlugDemand
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.phases import ALL_PHASES, Phases
from fuseguard.model.status import ChargeMode
from fuseguard.scenario.config import load_scenario, loads_scenario
from fuseguard.scenario.site import scenario_controller_config

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def test_one_default_everywhere() -> None:
    """The default window is the allocation layer's ``URGENT_LAXITY_S`` (1 h) in every layer
    that has one: the site config, the controller config, the allocator's parameters and the
    snapshot's JSON form (a dump without params), and the example site."""
    assert URGENT_LAXITY_S == 3600.0
    assert ControlConfig().urgent_laxity_s == URGENT_LAXITY_S
    cfg = ControllerConfig(
        circuits=[CircuitSpec(id="main", parent=None, fuse_a=16.0)], chargers=[ChargerSpec(id="a")]
    )
    assert cfg.urgent_laxity_s == URGENT_LAXITY_S
    assert AllocationParams().urgent_laxity_s == URGENT_LAXITY_S
    data = snapshot_to_data(
        Snapshot(circuits=(Circuit(id="main", parent=None, limit_a=Phases(16, 16, 16)),), plugs=())
    )
    del data["params"]
    assert snapshot_from_data(data).params.urgent_laxity_s == URGENT_LAXITY_S
    example = tomllib.loads((Path(__file__).parents[2] / "examples" / "site.toml").read_text())
    assert example["control"]["urgent_laxity_s"] == URGENT_LAXITY_S


def test_default_and_bounds() -> None:
    assert ControlConfig().urgent_laxity_s == URGENT_LAXITY_S
    assert ControlConfig(urgent_laxity_s=0).urgent_laxity_s == 0.0
    for bad in (-1, 8 * 86_400, float("nan")):
        with pytest.raises(ValidationError):
            ControlConfig(urgent_laxity_s=bad)


def test_scenario_control_section_reaches_the_controller() -> None:
    text = (SCENARIOS / "departures_announced.toml").read_text()
    assert scenario_controller_config(loads_scenario(text)).urgent_laxity_s == URGENT_LAXITY_S
    sc = loads_scenario(text + "\n[control]\nurgent_laxity_s = 3600\n")
    assert scenario_controller_config(sc).urgent_laxity_s == 3600.0
    base = load_scenario(SCENARIOS / "single_car.toml")
    assert scenario_controller_config(base).urgent_laxity_s == URGENT_LAXITY_S


def _demand(pid: str, departure_s: float) -> PlugDemand:
    spec = ChargerSpec(id=pid, max_a=16)
    return PlugDemand(
        spec=spec,
        available=True,
        phases=ALL_PHASES,
        max_a=16,
        mode=ChargeMode.FAST,
        priority=0,
        need_wh=11_040.0,  # 1 h at 16 A on three phases
        departure_s=departure_s,
    )


@pytest.mark.parametrize(("laxity_s", "urgent_gets"), [(URGENT_LAXITY_S, 10), (1800.0, 8)])
def test_the_setting_decides_who_is_urgent(laxity_s: float, urgent_gets: int) -> None:
    """Two cars on a 16 A fuse, one leaving in 2 h (laxity 1 h): urgent with the default 1 h
    window (at its edge, inside) (without reserves, ``urgent_reserve = 0``: filled first: 10 A, the other keeps its
    6 A), not with a 30 min window (an equal split: 8 A each)."""
    cfg = ControllerConfig(
        circuits=[CircuitSpec(id="main", parent=None, fuse_a=16.0)],
        chargers=[ChargerSpec(id="a", max_a=16), ChargerSpec(id="b", max_a=16)],
        urgent_laxity_s=laxity_s,
        urgent_reserve=0.0,
    )
    snap, out = _two_cars_on_16_a(cfg, depart_a_s=7200.0)
    assert snap.params.urgent_laxity_s == laxity_s
    assert out.setpoints["a"] == urgent_gets
    assert out.setpoints["b"] == 16 - urgent_gets


def test_urgent_reserve_default_bounds_and_path_to_the_allocator() -> None:
    """``[control] urgent_reserve``: default 1 (admitted with what it needs to finish), 0 off;
    through the scenario's ``[control]`` and the controller config into the allocator."""
    assert ControlConfig().urgent_reserve == 1.0
    assert ControlConfig(urgent_reserve=0).urgent_reserve == 0.0
    for bad in (-0.5, 101, float("nan")):
        with pytest.raises(ValidationError):
            ControlConfig(urgent_reserve=bad)
    text = (SCENARIOS / "departures_announced.toml").read_text()
    assert scenario_controller_config(loads_scenario(text)).urgent_reserve == 1.0
    sc = loads_scenario(text + "\n[control]\nurgent_reserve = 0\n")
    assert scenario_controller_config(sc).urgent_reserve == 0.0


@pytest.mark.parametrize(("reserve", "urgent_gets", "other_gets"), [(1.0, 16, 0), (0.0, 10, 6)])
def test_the_reserve_decides_whether_the_other_car_waits(
    reserve: float, urgent_gets: int, other_gets: int
) -> None:
    """16 A fuse; car a leaves in 90 min needing 11.04 kWh (11 A from now on): with its
    reserve it is admitted with 11 A, b's 6 A minimum no longer fits (b waits) and a takes the
    fuse; without, both run (a 10 A, b 6 A) and a cannot finish."""
    cfg = ControllerConfig(
        circuits=[CircuitSpec(id="main", parent=None, fuse_a=16.0)],
        chargers=[ChargerSpec(id="a", max_a=16), ChargerSpec(id="b", max_a=16)],
        urgent_reserve=reserve,
    )
    snap, out = _two_cars_on_16_a(cfg, depart_a_s=5400.0)
    assert snap.params.urgent_reserve == reserve
    assert (out.setpoints["a"], out.setpoints["b"]) == (urgent_gets, other_gets)


def _two_cars_on_16_a(cfg: ControllerConfig, depart_a_s: float) -> tuple[Snapshot, Allocation]:
    """One allocation step: car a leaving in ``depart_a_s``, car b in a day, 16 A fuse."""
    session = AllocatorSession(cfg)
    snap = session.build_snapshot(
        limits={"main": Phases(16, 16, 16)},
        non_ev={"main": Phases(0, 0, 0)},
        demands=[_demand("a", depart_a_s), _demand("b", 86_400.0)],
        pv_surplus_w=0.0,
    )
    return snap, session.step(0.0, snap)
