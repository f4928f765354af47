"""A scenario's site goes through the edge's one config translation: same site, same controller."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from fuseguard.config import ChargerConfig, CircuitConfig, ControlConfig, load_config
from fuseguard.config.controller import controller_config_of
from fuseguard.control.types import MeterTiming
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import ChargeMode
from fuseguard.scenario.config import ScenarioError, load_scenario, loads_scenario
from fuseguard.scenario.site import (
    charger_configs,
    control_config,
    meter_config,
    scenario_controller_config,
    site_config,
)

SCENARIO = """
[site]
name = "garage"
voltage_v = 230
fuse_a = 63
duration_s = 3600
meter = "total_power"
meter_period_s = 2
meter_phase_assumption = "balanced"
charger_safe_current_a = 8
charger_safe_timeout_s = 90

[[circuits]]
id = "garage"
fuse_a = [40, 35, 40]
power_limit_w = 20000

[[circuits]]
id = "row-b"
parent = "garage"
fuse_a = 25

[[chargers]]
id = "bay-1"
circuit = "garage"
max_a = 32

[[chargers]]
id = "bay-2"
circuit = "row-b"
max_a = 16
rotation = "L2L3L1"
mode = "minpv"
priority = 5

[[chargers]]
id = "visitor"
rotation = "L3L1L2"
"""


def _uuid(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _edge_charger(cid: str, circuit: str, extra: str = "") -> str:
    return f"""
[[chargers]]
id = "{cid}"
evse_uuid = "{_uuid(cid)}"
host = "192.168.1.31"
circuit = "{circuit}"
safe_current_a = 8
safe_timeout_s = 90
{extra}
  [[chargers.plugs]]
  uuid = "{_uuid(cid + "#1")}"
  label = "Plug 1"
"""


EDGE = (
    """
[site]
edge_id = "edge-garage-01"
name = "Lindenhof 12, garage"
voltage_v = 230
main_fuse_a = 63

[[site.circuits]]
id = "garage"
parent = "main"
fuse_a = [40, 35, 40]
power_limit_w = 20000

[[site.circuits]]
id = "row-b"
parent = "garage"
fuse_a = 25

[meter]
driver = "cemm"
host = "192.168.1.20"
period_s = 2
phase_assumption = "balanced"
"""
    + _edge_charger("bay-1", "garage", "max_current_a = 32")
    + _edge_charger(
        "bay-2",
        "row-b",
        'max_current_a = 16\nrotation = "L2L3L1"\nmode = "minpv"\npriority = 5',
    )
    + _edge_charger("visitor", "main", 'rotation = "L3L1L2"')
)


def test_scenario_and_edge_config_build_identical_controller_configs(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(EDGE, encoding="utf-8")
    edge = controller_config_of(load_config(path))
    simulated = scenario_controller_config(loads_scenario(SCENARIO))
    assert simulated == edge
    # and it is the site described, not two empty configs agreeing
    assert [c.id for c in simulated.circuits] == ["main", "garage", "row-b"]
    assert simulated.circuits[1] == CircuitSpec(
        "garage", "main", Phases(40, 35, 40), power_limit_w=20000
    )
    assert [(c.id, c.circuit, c.max_a, c.rotation) for c in simulated.chargers] == [
        ("bay-1", "garage", 32, Rotation.L1L2L3),
        ("bay-2", "row-b", 16, Rotation.L2L3L1),
        ("visitor", "main", 32, Rotation.L3L1L2),
    ]
    assert simulated.meter_period_s == 2
    assert simulated.meter_phase_assumption == "balanced"


def test_config_sections_of_a_scenario() -> None:
    sc = loads_scenario(SCENARIO)
    site = site_config(sc)
    # the scenario's circuits are the config's circuits, not copies of another type
    assert all(isinstance(c, CircuitConfig) for c in sc.circuits)
    assert site.circuits == sc.circuits
    assert site.main_fuse == Phases.uniform(63)
    assert site.circuit_tree() == sc.circuit_tree
    assert meter_config(sc).driver == "virtual"
    bay2 = charger_configs(sc)[1]
    assert bay2.evse_uuid == sc.chargers[1].evse_uuid
    assert bay2.plugs[0].uuid == sc.chargers[1].plug_uuid
    assert (bay2.safe_current_a, bay2.safe_timeout_s) == (8, 90)
    assert bay2.mode is ChargeMode.MINPV
    # what a scenario does not say comes from the config classes' defaults
    assert bay2.min_current_a == ChargerConfig.model_fields["min_current_a"].default
    assert bay2.min_current_a == MIN_CHARGE_CURRENT_A
    assert control_config(sc) == ControlConfig()


def test_every_library_scenario_translates() -> None:
    for path in sorted(Path("scenarios").glob("*.toml")):
        sc = load_scenario(path)
        config = scenario_controller_config(sc)
        assert [c.id for c in config.chargers] == [ch.id for ch in sc.chargers], path


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('id = "bay-1"', 'id = "bay 1"', "chargers.0.id"),
        ('id = "garage"\nfuse_a', 'id = "main"\nfuse_a', "circuits.0.id"),
        ('parent = "garage"', 'parent = "attic"', "parent 'attic' is not a circuit"),
        ("charger_safe_current_a = 8", "charger_safe_current_a = 20", "0 or 6..max_a"),
        ("voltage_v = 230", "voltage_v = 23", "site.voltage_v"),
        ("priority = 5", "priority = 500", "chargers.1.priority"),
    ],
)
def test_scenarios_the_edge_config_would_refuse_are_refused(
    old: str, new: str, needle: str
) -> None:
    assert old in SCENARIO
    with pytest.raises(ScenarioError, match=needle):
        loads_scenario(SCENARIO.replace(old, new, 1))


METERED_SCENARIO = """
[site]
name = "metered"
voltage_v = 230
fuse_a = 80
duration_s = 3600
charger_safe_current_a = 8
charger_safe_timeout_s = 90

[[circuits]]
id = "garage"
fuse_a = 40
non_ev_load_a = [16, 12, 16]
meter = { period_s = 2, stale_after_s = 8 }

[[circuits]]
id = "row-b"
parent = "garage"
fuse_a = 25

[pv]
peak_w = 9000
sunrise_s = 0
sunset_s = 28800
meter = { period_s = 3, stale_after_s = 15 }

[[chargers]]
id = "bay-1"
circuit = "garage"

[[chargers]]
id = "bay-2"
circuit = "row-b"
mode = "pv"
"""


def _metered_edge(garage_meter: str, pv: str) -> str:
    return (
        f"""
[site]
edge_id = "edge-metered"
main_fuse_a = 80

[[site.circuits]]
id = "garage"
fuse_a = 40
non_ev_load_a = [16, 12, 16]
meter = {garage_meter}

[[site.circuits]]
id = "row-b"
parent = "garage"
fuse_a = 25

[meter]
driver = "cemm"
host = "192.168.1.20"

{pv}
"""
        + _edge_charger("bay-1", "garage")
        + _edge_charger("bay-2", "row-b", 'mode = "pv"')
    )


def test_a_circuit_meter_and_a_pv_meter_build_identical_controller_configs(
    tmp_path: Path,
) -> None:
    sc = loads_scenario(METERED_SCENARIO)
    simulated = scenario_controller_config(sc)
    path = tmp_path / "site.toml"
    # the scenario's in-process meters, written as an edge config: the very same controller config
    path.write_text(
        _metered_edge(
            '{ driver = "virtual", alias = "garage", period_s = 2, stale_after_s = 8 }',
            '[pv]\ndriver = "virtual"\nalias = "pv"\nperiod_s = 3\nstale_after_s = 15',
        ),
        encoding="utf-8",
    )
    assert controller_config_of(load_config(path)) == simulated
    # and it is the metered site described
    garage = simulated.circuits[1]
    assert (garage.id, garage.meter, garage.non_ev_load_a) == (
        "garage",
        "virtual:garage",
        Phases(16, 12, 16),
    )
    assert simulated.circuits[2].meter is None
    assert simulated.circuit_meter_timing == {"garage": MeterTiming(2, 8)}
    assert simulated.pv_meter_timing == MeterTiming(3, 15)
    # real meters on the edge (an SDM630 and a SunSpec inverter): the same config but the names
    path.write_text(
        _metered_edge(
            '{ driver = "modbus", model = "sdm630", host = "192.168.1.41", unit_id = 2, '
            "period_s = 2, stale_after_s = 8 }",
            '[pv]\ndriver = "sunspec"\nhost = "192.168.1.60"\nperiod_s = 3\nstale_after_s = 15',
        ),
        encoding="utf-8",
    )
    edge = controller_config_of(load_config(path))
    assert edge.circuits[1].meter == "modbus:sdm630@192.168.1.41:502/2"
    renamed = [
        dataclasses.replace(c, meter=s.meter)
        for c, s in zip(edge.circuits, simulated.circuits, strict=True)
    ]
    assert dataclasses.replace(edge, circuits=tuple(renamed)) == simulated
