"""Virtual Modbus meters (every mapped model) and SunSpec meter/inverter on the shared site."""

from fuseguard.sim.meters.devices import (
    VirtualModbusMeter,
    VirtualSunSpecInverter,
    VirtualSunSpecMeter,
)
from fuseguard.sim.meters.physics import (
    InverterReadings,
    MeterFaults,
    MeterReadings,
    PvInverterSource,
    SiteMeter,
)
from fuseguard.sim.meters.server import MeterModbusServer, RegisterDevice

__all__ = [
    "InverterReadings",
    "MeterFaults",
    "MeterModbusServer",
    "MeterReadings",
    "PvInverterSource",
    "RegisterDevice",
    "SiteMeter",
    "VirtualModbusMeter",
    "VirtualSunSpecInverter",
    "VirtualSunSpecMeter",
]
