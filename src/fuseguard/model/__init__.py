"""Domain types: phases, amps, plug/EVSE states, status enums, samples, the clock (no I/O)."""

from fuseguard.model.clock import Clock, RealClock, VirtualClock
from fuseguard.model.phases import ALL_PHASES, ZERO, Phase, Phases, Rotation
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import ChargeMode, CpState, OcppState, PlugStatus

__all__ = [
    "ALL_PHASES",
    "ZERO",
    "ChargeMode",
    "ChargerSample",
    "Clock",
    "CpState",
    "MeterSample",
    "OcppState",
    "Phase",
    "Phases",
    "PlugStatus",
    "RealClock",
    "Rotation",
    "VirtualClock",
]
