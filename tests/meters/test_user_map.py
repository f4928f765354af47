"""A model added by a map file alone: mixed function codes, word orders, signed currents."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuseguard.devices.meters import ModbusMeter, ModbusTransport
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases
from fuseguard.sim.meters import MeterFaults, MeterModbusServer, SiteMeter, VirtualModbusMeter
from fuseguard.sim.site import SiteModel
from fuseguard.wire.meters import load_map_file

from .meter_rig import SettableLoad

MAP = """
name = "acme-pm3"
vendor = "Acme"
model = "PM-3 (test map)"
source = "made up for this test"
function_code = 3
word_order = "little"
current_sign = "signed"

[[entries]]
quantity = "current_a"
phase = "L1"
address = 0
type = "s32"
scale = 0.001
unit = "A"

[[entries]]
quantity = "current_a"
phase = "L2"
address = 2
type = "s32"
scale = 0.001
unit = "A"

[[entries]]
quantity = "current_a"
phase = "L3"
address = 4
type = "s32"
scale = 0.001
unit = "A"

[[entries]]
quantity = "voltage_v"        # same addresses as the currents, but input registers
phase = "L1"
address = 0
function_code = 4
word_order = "big"
type = "float32"
unit = "V"

[[entries]]
quantity = "voltage_v"
phase = "L2"
address = 2
function_code = 4
word_order = "big"
type = "float32"
unit = "V"

[[entries]]
quantity = "voltage_v"
phase = "L3"
address = 4
function_code = 4
word_order = "big"
type = "float32"
unit = "V"

[[entries]]
quantity = "active_power_w"
phase = "L1"
address = 0x10
type = "s16"
scale = 10.0
unit = "W"

[[entries]]
quantity = "active_power_w"
phase = "L2"
address = 0x11
type = "s16"
scale = 10.0
unit = "W"

[[entries]]
quantity = "active_power_w"
phase = "L3"
address = 0x12
type = "s16"
scale = 10.0
unit = "W"

[[entries]]
quantity = "energy_import_wh"
address = 0x40
function_code = 4
type = "u64"
unit = "Wh"
not_available = [0xFFFFFFFFFFFFFFFF]
"""


async def test_a_user_map_works_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(MAP)
    meter_map = load_map_file(path)
    assert {(b.function_code, b.start, b.count) for b in meter_map.blocks()} == {
        (3, 0, 19),
        (4, 0, 6),
        (4, 0x40, 4),
    }
    site = SiteModel(RealClock())
    load = SettableLoad(current=Phases(9.5, -2.25, 0.0))
    site.add(load)
    site.tick()
    source = SiteMeter(site)
    device = VirtualModbusMeter(meter_map, source, MeterFaults("acme", site.clock))
    server = MeterModbusServer(device, port=0)
    await server.start()
    transport = ModbusTransport("127.0.0.1", server.port)
    try:
        sample = await ModbusMeter(transport, meter_map).read()
        truth = source.readings
        assert sample.current_a == Phases(9.5, -2.25, 0.0)
        assert sample.voltage_v is not None
        assert sample.voltage_v.l2 == pytest.approx(truth.voltage_v.l2, rel=1e-6)
        assert sample.power_per_phase_w is not None
        assert sample.power_per_phase_w.l2 == pytest.approx(truth.power_w.l2, abs=5.0)
        assert sample.power_w == pytest.approx(sample.power_per_phase_w.total)  # no total: sum
        assert sample.energy_import_wh == pytest.approx(round(truth.energy_import_wh))
        assert sample.energy_export_wh is None and sample.frequency_hz is None  # not mapped
    finally:
        await transport.close()
        await server.close()
