"""The one fault vocabulary: what a simulated (or real) device can do wrong.

Used by the virtual devices (their admin APIs), the scenario files (``fault = {kind = ...}``) and
the in-process adapters. Spelled as the scenario files and admin APIs spell them.
"""

from __future__ import annotations

from enum import StrEnum


class DeviceFault(StrEnum):
    """A fault that can be injected into a device."""

    OFFLINE = "offline"  #: no answer at all (connection refused, or requests hang)
    SLOW = "slow"  #: answers, but only after a delay
    GARBAGE = "garbage"  #: answers with something that is not valid data
    FROZEN = "frozen"  #: (meters) the same telegram again, timestamp not advancing
    STUCK_CONTACTOR = "stuck_contactor"  #: (chargers) welded contactor: keeps drawing at 0 A
    RCD_TRIP = "rcd_trip"  #: (chargers) residual current detected: contactor open, faulted
    REJECTS_PROFILES = "rejects_profiles"  #: (OCPP) SetChargingProfile answered Rejected
    IGNORES_LIMIT = "ignores_limit"  #: (chargers) accepts a limit but keeps drawing
    REBOOTS = "reboots"  #: (chargers) restarts: connection lost, state reset
    BACKEND_LOST = "backend_lost"  #: (chargers) their OCPP backend is unreachable


#: Faults that only change how a device answers on the wire, not its electrical state.
WIRE_FAULTS: frozenset[DeviceFault] = frozenset(
    {DeviceFault.OFFLINE, DeviceFault.SLOW, DeviceFault.GARBAGE}
)
#: Faults a meter can have.
METER_FAULTS: frozenset[DeviceFault] = WIRE_FAULTS | {DeviceFault.FROZEN}
#: Faults a charge point can have.
CHARGER_FAULTS: frozenset[DeviceFault] = WIRE_FAULTS | {
    DeviceFault.STUCK_CONTACTOR,
    DeviceFault.RCD_TRIP,
    DeviceFault.REJECTS_PROFILES,
    DeviceFault.IGNORES_LIMIT,
    DeviceFault.REBOOTS,
    DeviceFault.BACKEND_LOST,
}

__all__ = ["CHARGER_FAULTS", "METER_FAULTS", "WIRE_FAULTS", "DeviceFault"]
