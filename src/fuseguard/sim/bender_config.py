"""Bender CC612/CC613 device data: firmware, REST auth modes, device config, what it refuses.

Shared by the virtual device's state (:mod:`fuseguard.sim.bender`) and its wire rendering
(:mod:`fuseguard.sim.bender_render`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fuseguard.model.faults import WIRE_FAULTS, DeviceFault
from fuseguard.sim.bender_panel import BenderPanel, KeySet

#: Faults a virtual Bender can have (it has no OCPP profiles to reject and no meter to freeze).
BENDER_FAULTS: frozenset[DeviceFault] = WIRE_FAULTS | {
    DeviceFault.STUCK_CONTACTOR,
    DeviceFault.RCD_TRIP,
    DeviceFault.IGNORES_LIMIT,
    DeviceFault.BACKEND_LOST,  # backend_conn_state not_reacheable, register 112 bit 7
}


def bender_fault(kind: DeviceFault | str) -> DeviceFault:
    """``kind`` as a fault this device can have; ValueError otherwise."""
    fault = DeviceFault(kind)
    if fault not in BENDER_FAULTS:
        known = ", ".join(sorted(f.value for f in BENDER_FAULTS))
        msg = f"a Bender charge controller cannot have fault {fault.value!r} ({known})"
        raise ValueError(msg)
    return fault


class Firmware(StrEnum):
    """Firmware generations with a different legacy REST key set."""

    V5_33 = "5.33"
    V5_22 = "5.22"


class RestAuth(StrEnum):
    """How the legacy REST API checks credentials."""

    NONE = "none"  #: as shipped, "Enabled (without UID)": no credentials needed
    HEADERS = "headers"  #: the seed's ``Username`` / ``Password`` headers
    BASIC = "basic"  #: standard HTTP Basic


class RegisterWriteError(ValueError):
    """A Modbus write the device refuses (the server answers ILLEGAL DATA VALUE/ADDRESS)."""

    def __init__(self, message: str, *, illegal_address: bool = False) -> None:
        super().__init__(message)
        self.illegal_address = illegal_address


@dataclass
class BenderDeviceConfig:
    """Device-level data of one charge controller."""

    firmware: Firmware = Firmware.V5_33
    max_current_a: int = 32
    cp_id: str = "+49*839*00000000001"
    cc_serial_n: str = "1703512493/b94060007"
    manuf_serial_n: str = "1703512493"
    cp_vendor: str = "Bender GmbH Co. KG"
    cp_model: str = "CC612_2M3PR"
    ocpp_meter_cfg: str = "modbus_meter_eastron_sdm630"
    ocpp_meter_serial: str = "65465484ds"
    has_meter: bool = True
    free_charging: bool = False
    rest_with_uid: bool = False
    rest_auth: RestAuth = RestAuth.NONE
    rest_username: str = "operator"
    rest_password: str = "fuseguard"  # noqa: S105 - a simulator's default, documented
    ambient_temp_c: float = 25.3
    voltage_v: float = 230.0
    slow_delay_s: float = 1.5
    #: how long the REST server keeps an idle HTTP/1.1 connection open. Not documented for the
    #: real controller (devices.md 4.1): 5 s is uvicorn's default and that of common embedded
    #: servers (lighttpd, Apache httpd); the driver works either way (docs/devices.md)
    rest_keepalive_s: int = 5
    key_set: KeySet = KeySet.FIRMWARE  #: 5.33 full_state: 43 keys, or exactly seed 003's 41
    panel: BenderPanel = field(default_factory=BenderPanel)  #: Schuko, backend, WLAN, display

    @property
    def firmware_version(self) -> str:
        """``firmware_ver`` as the REST API writes it."""
        return "5.33.0-18127" if self.firmware is Firmware.V5_33 else "5.22.1-13295"


__all__ = [
    "BENDER_FAULTS",
    "BenderDeviceConfig",
    "Firmware",
    "RegisterWriteError",
    "RestAuth",
    "bender_fault",
]
