"""A charge-point core on the Bender wire formats: ``/rest/full_state`` text and Modbus registers.

Pure functions of a :class:`~fuseguard.sim.chargepoint.ChargePoint` and the device's
:class:`~fuseguard.sim.bender_config.BenderDeviceConfig` (plus the few things only the device
keeps: its connection counter, the second connector's state, the wall time). The register numbers
and REST key sets come from :mod:`fuseguard.wire.bender`, which the driver reads with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fuseguard.model.faults import DeviceFault
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.status import (
    AuthState,
    BackendConnState,
    ConnState,
    EnableDisable,
    OcppMeterCfg,
    OcppState,
    OnOff,
    ProtectionState,
    RcmbState,
    SchukoState,
    Type2Proximity,
    WlanState,
    conn_state_from_cp,
    cp_to_register_122,
    type2_state_from_cp,
)
from fuseguard.sim.bender_config import BenderDeviceConfig, Firmware
from fuseguard.sim.bender_panel import ERR112_BACKEND
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.wire.bender import (
    ERR112_CONTACTOR_WELD,
    ERR112_RCD,
    ERR112_RCMB,
    ERR112_VEHICLE_E,
    KEYS_5_22,
    KEYS_5_33,
    MODBUS_PROTOCOL_VERSION,
    REGISTER_RANGES,
    BenderRegister,
)
from fuseguard.wire.modbus import NOT_AVAILABLE_U32, encode_ascii, encode_u32


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the device adds to its connector's core when it renders it."""

    config: BenderDeviceConfig
    con_cycles_type2: int
    slave_ocpp: OcppState | None  #: the second connector's state (connector 1 only)
    duration_s: int  #: seconds since the session started
    session_start: datetime | None
    session_end: datetime | None


def auth_state(core: ChargePoint) -> AuthState:
    """``auth_state`` of the core's session."""
    session = core.session
    if session.authorized:
        return AuthState.AUTHORIZED_FOR_CHARGING
    if session.timed_out:
        return AuthState.AUTH_TIMEOUT
    if core.car is not None:
        return AuthState.WAIT_FOR_AUTH
    return AuthState.NOT_AUTHORIZED_FOR_CHARGING


def energy_man_current_a(core: ChargePoint, config: BenderDeviceConfig) -> int:
    """``energy_man_current``: the energy-manager limit (default: the maximum current)."""
    value = core.energy_manager_limit_a
    return config.max_current_a if value is None else int(value)


def full_state(core: ChargePoint, view: DeviceView) -> dict[str, str]:
    """The legacy REST ``/rest/full_state`` keys and values, in the firmware's key order.

    Values are the strings written after ``key:``; 5.22's rcmb values keep the device's leading
    space (``rcmb_max_values: 0.0, 0.0``).
    """
    cfg = view.config
    cp = core.cp_state
    tripped = core.tripped
    if core.fixed_cable:
        proximity = Type2Proximity.CABLE_ATTACHED.value
    elif core.car is None:
        proximity = Type2Proximity.NO_CABLE.value
    else:
        proximity = str(core.cable_rating_a)
    rcmb_pair = "12.5, 6.0" if tripped else "0.0, 0.0"
    protection = ProtectionState.TRIGGERED if tripped else ProtectionState.OKAY
    no_meter = OcppMeterCfg.NO_METER.value
    current = core.current_a
    volts = round(cfg.voltage_v)
    values: dict[str, str] = {
        "conn_state": (
            ConnState.VEHICLE_CONNECTOR_ERROR if cp.fault else conn_state_from_cp(cp)
        ).value,
        "auth_state": auth_state(core).value,
        "auth_uid": core.session.uid if cfg.rest_with_uid else "",
        "time_since_charging_start": str(view.duration_s),
        "meter_wh": str(int(core.meter_wh)),
        "power_w": str(round(core.power_w)),
        "transaction_wh": str(int(core.session.energy_wh)),
        "display_text": "",
        "cp_id": cfg.cp_id,
        "ocpp_state": core.ocpp_state.value,
        "type2_state": type2_state_from_cp(cp).value,
        "type2_proximity": proximity,
        "sig_current": str(int(core.offered_a)),
        "schuko_state": SchukoState.IDLE.value,
        "backend_conn_state": BackendConnState.PENDING.value,
        "free_charging": _on_off(cfg.free_charging),
        "slave_state": view.slave_ocpp.value if view.slave_ocpp is not None else "",
        "ocpp_meter_cfg": cfg.ocpp_meter_cfg if cfg.has_meter else no_meter,
        "ocpp_meter_serial": cfg.ocpp_meter_serial if cfg.has_meter else "",
        "current_a": f"{current.l1:.2f},{current.l2:.2f},{current.l3:.2f}",
        "energy_man_current": str(energy_man_current_a(core, cfg)),
        "ambient_temp": f"{cfg.ambient_temp_c:+.2f}",
        "firmware_ver": cfg.firmware_version,
        "cc_serial_n": cfg.cc_serial_n,
        "manuf_serial_n": cfg.manuf_serial_n,
        "con_cycles_schuko": "0",
        "con_cycles_type2": str(view.con_cycles_type2),
        "max_current": str(cfg.max_current_a),
        "rcmb_state": (RcmbState.TRIGGERED if tripped else RcmbState.OKAY).value,
        "rcmb_max": rcmb_pair,
        "rcmb_values": rcmb_pair,
        "rcmb_max_values": " " + rcmb_pair,
        "rcmb_current_values": " " + rcmb_pair,
        "cable_attached": _on_off(core.fixed_cable),
        "schuko_cfg": EnableDisable.DISABLE.value,
        "rcd_state": protection.value,
        "mcb_type2_state": ProtectionState.OKAY.value,
        "mcb_schuko_state": ProtectionState.DISABLE.value,
        "cp_vendor": cfg.cp_vendor,
        "errors": ";".join(core.errors) or "no_errors",
        "cp_model": cfg.cp_model,
        "voltage_v": f"{volts},{volts},{volts}",
        "wlan_state": WlanState.WLAN_DISCONNECTED.value,
    }
    cfg.panel.apply(
        values,
        backend_lost=DeviceFault.BACKEND_LOST in core.faults,
        type2_busy=core.car is not None,
    )
    keys = cfg.key_set.select(KEYS_5_33 if cfg.firmware is Firmware.V5_33 else KEYS_5_22)
    return {key: values[key] for key in keys}


def _on_off(flag: bool) -> str:
    return (OnOff.ON if flag else OnOff.OFF).value


def modbus_registers(core: ChargePoint, view: DeviceView) -> dict[int, int]:
    """Every defined holding register of the connector (address -> 16-bit word)."""
    cfg = view.config
    reg = BenderRegister
    regs: dict[int, int] = {
        address: 0 for first, last in REGISTER_RANGES for address in range(first, last + 1)
    }

    def put(address: int, words: list[int]) -> None:
        for i, word in enumerate(words):
            regs[address + i] = word

    put(reg.FIRMWARE, encode_ascii(cfg.firmware.value, 2))
    put(reg.OCPP_STATE, [core.ocpp_state.ordinal])
    put(reg.ERROR_CODES, [0] * 8)
    err112 = ERR112_RCMB | ERR112_RCD | ERR112_VEHICLE_E if core.tripped else 0
    if core.welded:
        err112 |= ERR112_CONTACTOR_WELD
    if DeviceFault.BACKEND_LOST in core.faults:
        err112 |= ERR112_BACKEND
    put(reg.ERROR_CODES_LAST, [err112])
    put(reg.PROTOCOL_VERSION, encode_ascii(MODBUS_PROTOCOL_VERSION, 2))
    put(reg.CP_STATE, [cp_to_register_122(core.cp_state)])
    put(reg.AVAILABILITY, [1 if core.available else 0])
    put(
        reg.SAFE_CURRENT,
        [int(core.safe_current_a), int(core.safe_timeout_s), cfg.max_current_a],
    )
    put(reg.OPERATOR_CURRENT_LIMIT, [cfg.max_current_a])
    put(reg.RELAY_STATE, [1 if core.relay_on else 0])
    put(reg.MODEL, encode_ascii(cfg.cp_model[:20], 10))
    _put_meter(core, cfg, put)
    session_wh = int(core.session.energy_wh)
    put(reg.SESSION_ENERGY_16, [min(session_wh, 0xFFFF)])
    put(reg.SIGNALLED_CURRENT, [int(core.offered_a)])
    put(reg.SESSION_START_BCD, _bcd_hhmmss(view.session_start))
    put(reg.CHARGING_DURATION_16, [min(view.duration_s, 0xFFFF)])
    put(reg.SESSION_END_BCD, _bcd_hhmmss(view.session_end))
    put(reg.MIN_CURRENT, [MIN_CHARGE_CURRENT_A])
    put(reg.MAX_CURRENT, [cfg.max_current_a])
    put(reg.SESSION_ENERGY, encode_u32(session_wh))
    put(reg.CHARGING_DURATION, encode_u32(view.duration_s))
    put(reg.USER_ID, encode_ascii(core.session.uid[:20], 10))
    put(reg.EV_SOC, [0])
    put(reg.SMART_VEHICLE, [0])
    hems = core.limit_a
    readback = cfg.max_current_a if hems is None else hems
    put(reg.HEMS_CURRENT_LIMIT, [int(readback)])
    put(reg.HEMS_CURRENT_LIMIT_DECI, [min(round(readback * 10), 0xFFFF)])
    return regs


def _put_meter(
    core: ChargePoint, cfg: BenderDeviceConfig, put: Callable[[int, list[int]], None]
) -> None:
    """Registers 200-227: energy, power, current and voltage per phase (absent: 0xFFFFFFFF)."""
    reg = BenderRegister
    bases = (reg.ENERGY_L1, reg.POWER_L1, reg.CURRENT_L1, reg.VOLTAGE_L1)
    if not cfg.has_meter:
        absent = encode_u32(NOT_AVAILABLE_U32)
        for base in bases:
            for i in range(3):
                put(base + 2 * i, absent)
        put(reg.ENERGY_TOTAL, absent)
        put(reg.POWER_TOTAL, absent)
        return
    volts = cfg.voltage_v
    for i, amps in enumerate(core.current_a):
        put(reg.ENERGY_L1 + 2 * i, encode_u32(int(core.phase_wh[i])))
        put(reg.POWER_L1 + 2 * i, encode_u32(round(amps * volts)))
        put(reg.CURRENT_L1 + 2 * i, encode_u32(round(amps * 1000)))
        put(reg.VOLTAGE_L1 + 2 * i, encode_u32(round(volts)))
    put(reg.ENERGY_TOTAL, encode_u32(int(core.meter_wh)))
    put(reg.POWER_TOTAL, encode_u32(round(core.power_w)))


def _bcd_hhmmss(moment: datetime | None) -> list[int]:
    """Registers 707-708 / 710-711: time of day as BCD ``00hh mmss`` (0 when unknown)."""
    if moment is None:
        return [0, 0]
    digits = f"00{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    return [int(digits[:4], 16), int(digits[4:], 16)]


__all__ = ["DeviceView", "auth_state", "energy_man_current_a", "full_state", "modbus_registers"]
