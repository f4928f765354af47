"""Circuit meters and [pv]: the one config -> controller translation and the factory."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from fuseguard.config import load_config
from fuseguard.config.controller import controller_config_of
from fuseguard.control.types import MeterTiming
from fuseguard.devices.factory import build_circuit_meters, build_pv_meter
from fuseguard.devices.meters import ModbusMeter, SunSpecInverter

SITE = """
[site]
edge_id = "e1"
main_fuse_a = 35

[[site.circuits]]
id = "garage"
fuse_a = 25
meter = { driver = "modbus", model = "sdm630", host = "10.0.0.7", unit_id = 3, period_s = 2, stale_after_s = 6 }

[[site.circuits]]
id = "attic"
fuse_a = 16

[[chargers]]
id = "cp1"
circuit = "garage"
evse_uuid = "00000000000000000000000000000001"
plugs = [{ uuid = "00000000000000000000000000000011", label = "Plug 1" }]
"""

PV = """
[pv]
driver = "sunspec"
host = "10.0.0.9"
stale_after_s = 30
"""


def test_circuit_meters_and_pv_reach_the_controller_config(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE + PV)
    cfg = controller_config_of(load_config(path))
    by_id = {c.id: c for c in cfg.circuits}
    assert by_id["garage"].meter == "modbus:sdm630@10.0.0.7:502/3"
    assert by_id["attic"].meter is None
    assert by_id["main"].meter is None
    assert cfg.circuit_meter_timing == {"garage": MeterTiming(period_s=2.0, stale_after_s=6.0)}
    assert cfg.pv_meter_timing == MeterTiming(period_s=1.0, stale_after_s=30.0)


def test_without_pv_there_is_no_pv_timing(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    assert controller_config_of(load_config(path)).pv_meter_timing is None


async def test_the_factory_builds_one_driver_per_circuit_meter_and_pv(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE + PV)
    cfg = load_config(path)
    async with aiohttp.ClientSession() as session:
        meters = build_circuit_meters(cfg, session)
        pv = build_pv_meter(cfg, session)
    assert list(meters) == ["garage"]
    assert isinstance(meters["garage"], ModbusMeter)
    assert isinstance(pv, SunSpecInverter)
    path.write_text(SITE)
    async with aiohttp.ClientSession() as session:
        assert build_pv_meter(load_config(path), session) is None
