"""Meter drivers beyond CEMM: mapped Modbus meters and SunSpec meters/inverters."""

from fuseguard.devices.meters.modbus_meter import ModbusMeter
from fuseguard.devices.meters.sunspec import (
    ModelHeader,
    SunSpecClient,
    SunSpecInverter,
    SunSpecMeter,
)
from fuseguard.devices.meters.transport import ModbusTransport

__all__ = [
    "ModbusMeter",
    "ModbusTransport",
    "ModelHeader",
    "SunSpecClient",
    "SunSpecInverter",
    "SunSpecMeter",
]
