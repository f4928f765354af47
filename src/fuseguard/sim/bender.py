"""Virtual Bender CC612/CC613 charge controller: device config and wire rendering over the core.

One :class:`BenderController` is one device (firmware, serials, configured maximum current, REST
auth mode) with one or two :class:`BenderConnector` s. Each connector renders one
:class:`~fuseguard.sim.chargepoint.ChargePoint` (offer, watchdog, session, car, faults, CP and OCPP
state all live there) on the Bender wire formats: :meth:`BenderConnector.full_state` (legacy
REST, :mod:`fuseguard.sim.bender_rest`), :meth:`BenderConnector.modbus_registers` and
:meth:`BenderConnector.write_registers` (Modbus TCP, :mod:`fuseguard.sim.bender_modbus`), so both
wire views are always coherent. A connector is a :class:`fuseguard.sim.site.SimComponent`.

In-process API (demo, tests), all on :class:`BenderConnector`:

- ``plug_in(vehicle)``, ``unplug()``, ``authorize(uid=None)``, ``stop_transaction()``
- ``set_hems_limit(current_a)``: what a Modbus write to register 1000 does
- ``set_safe_current(current_a, timeout_s)``: what writes to registers 131/132 do
- ``set_fault(kind)`` / ``clear_fault(kind=None)`` with :class:`~fuseguard.model.faults.DeviceFault`
- read-only: ``current_a`` (per terminal), ``grid_current_a()``, ``power_w``, ``cp_state``,
  ``ocpp_state``, ``auth_state``, ``sig_current_a``, ``full_state()``

Bender specifics on top of the core (devices.md §7.3): a HEMS limit (register 1000) of 1..5 A
acts as 0; register 1000 reads back the last value written (the maximum before the first write);
the watchdog is register 132 with the safe current of register 131; ``energy_man_current`` is the
core's energy-manager limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock
from fuseguard.model.faults import WIRE_FAULTS, DeviceFault
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import (
    AuthState,
    ConnState,
    CpState,
    OcppState,
    Type2Proximity,
    conn_state_from_cp,
    cp_to_register_122,
    type2_state_from_cp,
)
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.vehicle import SimVehicle
from fuseguard.wire.bender import (
    ERR112_CONTACTOR_WELD,
    ERR112_RCD,
    ERR112_RCMB,
    ERR112_VEHICLE_E,
    KEYS_5_22,
    KEYS_5_33,
    MODBUS_PROTOCOL_VERSION,
    REGISTER_RANGES,
    WRITABLE_REGISTERS,
    BenderRegister,
)
from fuseguard.wire.modbus import NOT_AVAILABLE_U32, encode_ascii, encode_u32

log = structlog.get_logger(__name__)

#: Faults a virtual Bender can have (it has no OCPP profiles to reject and no meter to freeze).
BENDER_FAULTS: frozenset[DeviceFault] = WIRE_FAULTS | {
    DeviceFault.STUCK_CONTACTOR,
    DeviceFault.RCD_TRIP,
    DeviceFault.IGNORES_LIMIT,
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

    @property
    def firmware_version(self) -> str:
        """``firmware_ver`` as the REST API writes it."""
        return "5.33.0-18127" if self.firmware is Firmware.V5_33 else "5.22.1-13295"


class BenderConnector:
    """One charge point connector of a Bender controller (a :class:`SimComponent`) over a
    :class:`ChargePoint`. Use :meth:`BenderController.connector` rather than constructing it."""

    def __init__(
        self,
        clock: Clock,
        config: BenderDeviceConfig,
        *,
        connector_id: int = 1,
        circuit: str = MAIN,
        rotation: Rotation = Rotation.L1L2L3,
        fixed_cable: bool = True,
        meter_wh: float = 16_701.0,
        con_cycles_type2: int = 5,
    ) -> None:
        self.clock = clock
        self.config = config
        self.connector_id = connector_id
        self.circuit = circuit
        self.con_cycles_type2 = con_cycles_type2
        self.slave: BenderConnector | None = None
        self.core = ChargePoint(
            name=f"{config.cp_id}#{connector_id}",
            max_current_a=config.max_current_a,
            rotation=rotation,
            circuit=circuit,
            voltage_v=config.voltage_v,
            fixed_cable=fixed_cable,
            free_charging=config.free_charging,
            meter_wh=meter_wh,
            now_s=clock.monotonic(),
        )
        self._listeners: list[Callable[[BenderConnector], None]] = []

    @property
    def name(self) -> str:
        """``<cp_id>#<connector>`` for logs."""
        return self.core.name

    def _now(self) -> float:
        return self.clock.monotonic()

    # --- in-process control ------------------------------------------------------------------

    def plug_in(self, vehicle: SimVehicle) -> None:
        """Connect ``vehicle`` (CP A -> B). With free charging (or a pre-authorisation) the
        transaction starts at once; otherwise ``auth_state`` becomes ``wait_for_auth``."""
        self.core.free_charging = self.config.free_charging
        self.core.plug_in(vehicle, self._now())
        self.con_cycles_type2 += 1
        self._notify()

    def unplug(self) -> None:
        """Disconnect the vehicle (-> CP A, ``available``); ends the transaction."""
        self.core.unplug(self._now())
        self._notify()

    def authorize(self, uid: str | None = None) -> None:
        """An RFID card (``uid``) or the backend authorises charging (see the core)."""
        self.core.authorize(self._now(), uid)
        self._notify()

    def stop_transaction(self) -> None:
        """Stop charging while the vehicle stays plugged in (``finishing``)."""
        self.core.stop_session(self._now())
        self._notify()

    def set_hems_limit(self, current_a: float) -> None:
        """What a Modbus write to register 1000 does: set the HEMS limit (0 pauses; 1-5 act as 0;
        above ``max_current`` is clamped) and reset the communication watchdog."""
        if not 0 <= current_a <= 0xFFFF:
            msg = f"HEMS limit {current_a} A is out of range"
            raise RegisterWriteError(msg)
        self.core.write_limit(float(current_a), self._now())
        self._notify()

    def set_safe_current(self, current_a: int, timeout_s: int) -> None:
        """What writes to registers 131 (safe current) and 132 (timeout) do."""
        self._set_safe_current(current_a)
        self._set_comm_timeout(timeout_s)

    def set_soc(self, soc: float) -> None:
        """Set the plugged vehicle's state of charge (0..1)."""
        car = self.core.car
        if car is None:
            msg = f"{self.name}: no vehicle plugged in"
            raise ValueError(msg)
        car.set_soc(soc)
        self.core.car_changed(self._now())
        self._notify()

    def set_fault(self, kind: DeviceFault | str) -> None:
        """Inject a fault (one of :data:`BENDER_FAULTS`); several may be active at once."""
        self.core.set_fault(bender_fault(kind), self._now())
        self._notify()

    def clear_fault(self, kind: DeviceFault | str | None = None) -> None:
        """Clear one fault, or all of them."""
        self.core.clear_fault(kind, self._now())
        self._notify()

    def on_change(self, listener: Callable[[BenderConnector], None]) -> None:
        """Call ``listener(connector)`` after every state change and tick."""
        self._listeners.append(listener)

    # --- SimComponent -------------------------------------------------------------------------

    def tick(self, t_s: float, dt_s: float) -> None:
        """Advance the core to the injected clock's time (``t_s`` is the site's time, unused)."""
        self.core.advance(self._now())
        self._notify()

    def grid_current_a(self) -> Phases:
        """Draw per grid phase (A) as of the last tick, through the wiring rotation."""
        return self.core.grid_current_a()

    # --- state of the core, under the device's names -----------------------------------------

    @property
    def vehicle(self) -> SimVehicle | None:
        """The plugged-in vehicle."""
        return self.core.car

    @property
    def faults(self) -> set[DeviceFault]:
        """Active faults."""
        return self.core.faults

    @property
    def rotation(self) -> Rotation:
        """Wiring rotation of the terminals onto the grid phases."""
        return self.core.rotation

    @rotation.setter
    def rotation(self, rotation: Rotation) -> None:
        self.core.rewire(rotation)

    @property
    def fixed_cable(self) -> bool:
        """A fixed cable (True) or a Type 2 socket (the car's cable rating limits)."""
        return self.core.fixed_cable

    @property
    def available(self) -> bool:
        """Register 124: operative."""
        return self.core.available

    @property
    def auth_timeout_s(self) -> float:
        """How long an authorisation waits for a vehicle."""
        return self.core.auth_timeout_s

    @auth_timeout_s.setter
    def auth_timeout_s(self, value: float) -> None:
        self.core.auth_timeout_s = value

    @property
    def energy_man_current_a(self) -> int | None:
        """``energy_man_current`` set by a local energy manager (None: the maximum)."""
        value = self.core.energy_manager_limit_a
        return None if value is None else int(value)

    @energy_man_current_a.setter
    def energy_man_current_a(self, value: int | None) -> None:
        self.core.set_energy_manager_limit(value, self._now())
        self._notify()

    @property
    def energy_man_limit_a(self) -> int:
        """``energy_man_current`` as the REST API shows it (default: max current)."""
        value = self.energy_man_current_a
        return self.config.max_current_a if value is None else value

    @property
    def safe_current_a(self) -> int:
        """Register 131."""
        return int(self.core.safe_current_a)

    @property
    def comm_timeout_s(self) -> int:
        """Register 132."""
        return int(self.core.safe_timeout_s)

    @property
    def hems_limit_a(self) -> float | None:
        """Last value written to register 1000 (None: never written)."""
        return self.core.limit_a

    @property
    def watchdog_expired(self) -> bool:
        """True while the communication timeout (register 132) has run out."""
        return self.core.watchdog_expired

    @property
    def effective_hems_limit_a(self) -> float:
        """HEMS limit in force: the written one, or the safe current after a watchdog expiry."""
        return self.core.limit_in_force_a

    @property
    def sig_current_a(self) -> float:
        """Current signalled to the vehicle (PWM), A."""
        return self.core.offered_a

    @property
    def current_a(self) -> Phases:
        """Measured current per charger terminal (A), as of the last tick."""
        return self.core.current_a

    @property
    def power_w(self) -> float:
        """Active power (W), cos phi = 1."""
        return self.core.power_w

    @property
    def meter_wh(self) -> float:
        """Energy meter reading (Wh)."""
        return self.core.meter_wh

    @property
    def transaction_wh(self) -> float:
        """Energy of the running transaction (Wh)."""
        return self.core.session_wh

    @property
    def cp_state(self) -> CpState:
        """IEC 61851 control pilot state."""
        return self.core.cp_state

    @property
    def ocpp_state(self) -> OcppState:
        """OCPP 1.6 connector status."""
        return self.core.ocpp_state

    @property
    def auth_state(self) -> AuthState:
        """``auth_state``."""
        core = self.core
        if core.authorized:
            return AuthState.AUTHORIZED_FOR_CHARGING
        if core.auth_timed_out:
            return AuthState.AUTH_TIMEOUT
        if core.car is not None:
            return AuthState.WAIT_FOR_AUTH
        return AuthState.NOT_AUTHORIZED_FOR_CHARGING

    @property
    def cable_rating_a(self) -> int | None:
        """Rating of the cable in use: None for a fixed cable (no limit of its own)."""
        return self.core.cable_rating_a

    @property
    def errors(self) -> tuple[str, ...]:
        """Active error names (empty: ``no_errors``)."""
        return self.core.errors

    @property
    def charging_duration_s(self) -> int:
        """Seconds since the transaction started (0 without one)."""
        return int(self.core.session_duration_s(self._now()))

    # --- wire views --------------------------------------------------------------------------

    def full_state(self) -> dict[str, str]:
        """The legacy REST ``/rest/full_state`` keys and values, in the firmware's key order.

        Values are the strings written after ``key:``; 5.22's rcmb values keep the device's
        leading space (``rcmb_max_values: 0.0, 0.0``).
        """
        cfg = self.config
        core = self.core
        cp = core.cp_state
        tripped = core.tripped
        conn = ConnState.VEHICLE_CONNECTOR_ERROR if cp.fault else conn_state_from_cp(cp)
        if core.fixed_cable:
            proximity = Type2Proximity.CABLE_ATTACHED.value
        elif core.car is None:
            proximity = Type2Proximity.NO_CABLE.value
        else:
            proximity = str(core.cable_rating_a)
        rcmb_pair = "12.5, 6.0" if tripped else "0.0, 0.0"
        current = core.current_a
        volts = round(cfg.voltage_v)
        values: dict[str, str] = {
            "conn_state": conn.value,
            "auth_state": self.auth_state.value,
            "auth_uid": core.auth_uid if cfg.rest_with_uid else "",
            "time_since_charging_start": str(self.charging_duration_s),
            "meter_wh": str(int(core.meter_wh)),
            "power_w": str(round(core.power_w)),
            "transaction_wh": str(int(core.session_wh)),
            "display_text": "",
            "cp_id": cfg.cp_id,
            "ocpp_state": core.ocpp_state.value,
            "type2_state": type2_state_from_cp(cp).value,
            "type2_proximity": proximity,
            "sig_current": str(int(core.offered_a)),
            "schuko_state": "idle",
            "backend_conn_state": "pending",
            "free_charging": "on" if cfg.free_charging else "off",
            "slave_state": self.slave.ocpp_state.value if self.slave is not None else "",
            "ocpp_meter_cfg": cfg.ocpp_meter_cfg if cfg.has_meter else "no_meter",
            "ocpp_meter_serial": cfg.ocpp_meter_serial if cfg.has_meter else "",
            "current_a": f"{current.l1:.2f},{current.l2:.2f},{current.l3:.2f}",
            "energy_man_current": str(self.energy_man_limit_a),
            "ambient_temp": f"{cfg.ambient_temp_c:+.2f}",
            "firmware_ver": cfg.firmware_version,
            "cc_serial_n": cfg.cc_serial_n,
            "manuf_serial_n": cfg.manuf_serial_n,
            "con_cycles_schuko": "0",
            "con_cycles_type2": str(self.con_cycles_type2),
            "max_current": str(cfg.max_current_a),
            "rcmb_state": "triggered" if tripped else "okay",
            "rcmb_max": rcmb_pair,
            "rcmb_values": rcmb_pair,
            "rcmb_max_values": " " + rcmb_pair,
            "rcmb_current_values": " " + rcmb_pair,
            "cable_attached": "on" if core.fixed_cable else "off",
            "schuko_cfg": "disable",
            "rcd_state": "triggered" if tripped else "okay",
            "mcb_type2_state": "okay",
            "mcb_schuko_state": "disable",
            "cp_vendor": cfg.cp_vendor,
            "errors": ";".join(core.errors) or "no_errors",
            "cp_model": cfg.cp_model,
            "voltage_v": f"{volts},{volts},{volts}",
            "wlan_state": "wlan_disconnected",
        }
        keys = KEYS_5_33 if cfg.firmware is Firmware.V5_33 else KEYS_5_22
        return {key: values[key] for key in keys}

    def modbus_registers(self) -> dict[int, int]:
        """Every defined holding register of this connector (address -> 16-bit word)."""
        cfg = self.config
        core = self.core
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
        put(reg.ERROR_CODES_LAST, [err112])
        put(reg.PROTOCOL_VERSION, encode_ascii(MODBUS_PROTOCOL_VERSION, 2))
        put(reg.CP_STATE, [cp_to_register_122(core.cp_state)])
        put(reg.AVAILABILITY, [1 if core.available else 0])
        put(reg.SAFE_CURRENT, [self.safe_current_a, self.comm_timeout_s, cfg.max_current_a])
        put(reg.OPERATOR_CURRENT_LIMIT, [cfg.max_current_a])
        put(reg.RELAY_STATE, [1 if core.relay_on else 0])
        put(reg.MODEL, encode_ascii(cfg.cp_model[:20], 10))
        self._put_meter(put)
        session_wh = int(core.session_wh)
        duration_s = self.charging_duration_s
        put(reg.SESSION_ENERGY_16, [min(session_wh, 0xFFFF)])
        put(reg.SIGNALLED_CURRENT, [int(core.offered_a)])
        put(reg.SESSION_START_BCD, _bcd_hhmmss(self._wall_time(core.session_started_s)))
        put(reg.CHARGING_DURATION_16, [min(duration_s, 0xFFFF)])
        put(reg.SESSION_END_BCD, _bcd_hhmmss(self._wall_time(core.session_ended_s)))
        put(reg.MIN_CURRENT, [MIN_CHARGE_CURRENT_A])
        put(reg.MAX_CURRENT, [cfg.max_current_a])
        put(reg.SESSION_ENERGY, encode_u32(session_wh))
        put(reg.CHARGING_DURATION, encode_u32(duration_s))
        put(reg.USER_ID, encode_ascii(core.auth_uid[:20], 10))
        put(reg.EV_SOC, [0])
        put(reg.SMART_VEHICLE, [0])
        hems = core.limit_a
        readback = cfg.max_current_a if hems is None else hems
        put(reg.HEMS_CURRENT_LIMIT, [int(readback)])
        put(reg.HEMS_CURRENT_LIMIT_DECI, [min(round(readback * 10), 0xFFFF)])
        return regs

    def _put_meter(self, put: Callable[[int, list[int]], None]) -> None:
        """Registers 200-227: energy, power, current and voltage per phase (absent: 0xFFFFFFFF)."""
        reg = BenderRegister
        core = self.core
        volts = self.config.voltage_v
        bases = (reg.ENERGY_L1, reg.POWER_L1, reg.CURRENT_L1, reg.VOLTAGE_L1)
        if not self.config.has_meter:
            absent = encode_u32(NOT_AVAILABLE_U32)
            for base in bases:
                for i in range(3):
                    put(base + 2 * i, absent)
            put(reg.ENERGY_TOTAL, absent)
            put(reg.POWER_TOTAL, absent)
            return
        for i, amps in enumerate(core.current_a):
            put(reg.ENERGY_L1 + 2 * i, encode_u32(int(core.phase_wh[i])))
            put(reg.POWER_L1 + 2 * i, encode_u32(round(amps * volts)))
            put(reg.CURRENT_L1 + 2 * i, encode_u32(round(amps * 1000)))
            put(reg.VOLTAGE_L1 + 2 * i, encode_u32(round(volts)))
        put(reg.ENERGY_TOTAL, encode_u32(int(core.meter_wh)))
        put(reg.POWER_TOTAL, encode_u32(round(core.power_w)))

    def write_registers(self, address: int, values: list[int]) -> None:
        """Apply a Modbus FC6/FC16 write; raises :class:`RegisterWriteError` when refused."""
        for offset, value in enumerate(values):
            target = address + offset
            if target not in WRITABLE_REGISTERS:
                msg = f"register {target} is read-only"
                raise RegisterWriteError(msg, illegal_address=True)
            if target == BenderRegister.HEMS_CURRENT_LIMIT:
                self.set_hems_limit(value)
            elif target == BenderRegister.HEMS_CURRENT_LIMIT_DECI:
                self.set_hems_limit(value / 10.0)
            elif target == BenderRegister.SAFE_CURRENT:
                self._set_safe_current(value)
            elif target == BenderRegister.COMM_TIMEOUT:
                self._set_comm_timeout(value)
            elif target == BenderRegister.AVAILABILITY:
                if value not in (0, 1):
                    msg = f"availability must be 0 or 1, not {value}"
                    raise RegisterWriteError(msg)
                self.core.set_available(value == 1, self._now())
                self._notify()
        log.debug("registers written", device=self.name, address=address, values=values)

    # --- internals ---------------------------------------------------------------------------

    def _set_safe_current(self, current_a: int) -> None:
        top = self.config.max_current_a
        if current_a != 0 and not MIN_CHARGE_CURRENT_A <= current_a <= top:
            msg = f"safe current must be 0 or {MIN_CHARGE_CURRENT_A}..{top} A, not {current_a}"
            raise RegisterWriteError(msg)
        self.core.set_safe_current(current_a, self._now())
        self._notify()

    def _set_comm_timeout(self, timeout_s: int) -> None:
        if not 0 <= timeout_s <= 0xFFFF:
            msg = f"timeout {timeout_s} s out of range"
            raise RegisterWriteError(msg)
        self.core.set_safe_timeout(timeout_s, self._now())  # (re)starts the watchdog
        self._notify()

    def _wall_time(self, monotonic_s: float | None) -> datetime | None:
        if monotonic_s is None:
            return None
        return self.clock.now() - timedelta(seconds=self._now() - monotonic_s)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)


def _bcd_hhmmss(moment: datetime | None) -> list[int]:
    """Registers 707-708 / 710-711: time of day as BCD ``00hh mmss`` (0 when unknown)."""
    if moment is None:
        return [0, 0]
    digits = f"00{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    return [int(digits[:4], 16), int(digits[4:], 16)]


@dataclass(eq=False)
class BenderController:
    """One Bender charge controller: device-level config and one or two connectors.

    The second connector is the controller's "slave" (REST ``slave_state``; Modbus base port + 1).
    """

    clock: Clock
    config: BenderDeviceConfig = field(default_factory=BenderDeviceConfig)
    connector_count: int = 1
    rotations: tuple[Rotation, ...] = (Rotation.L1L2L3, Rotation.L2L3L1)
    circuit: str = MAIN
    fixed_cable: bool = True
    connectors: list[BenderConnector] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.connector_count not in (1, 2):
            msg = f"a Bender controller has 1 or 2 connectors, not {self.connector_count}"
            raise ValueError(msg)
        for i in range(self.connector_count):
            self.connectors.append(
                BenderConnector(
                    self.clock,
                    self.config,
                    connector_id=i + 1,
                    circuit=self.circuit,
                    rotation=self.rotations[i % len(self.rotations)],
                    fixed_cable=self.fixed_cable,
                )
            )
        if self.connector_count == 2:
            self.connectors[0].slave = self.connectors[1]

    def connector(self, connector_id: int = 1) -> BenderConnector:
        """Connector 1 or 2."""
        if not 1 <= connector_id <= len(self.connectors):
            msg = f"no connector {connector_id}"
            raise KeyError(msg)
        return self.connectors[connector_id - 1]

    def full_state(self) -> dict[str, str]:
        """``/rest/full_state`` of the device (connector 1, with the second as ``slave_state``)."""
        return self.connectors[0].full_state()

    def set_fault(self, kind: DeviceFault | str) -> None:
        """Inject ``kind`` on every connector (a device-wide fault)."""
        for c in self.connectors:
            c.set_fault(kind)

    def clear_fault(self, kind: DeviceFault | str | None = None) -> None:
        """Clear ``kind`` (or every fault) on every connector."""
        for c in self.connectors:
            c.clear_fault(kind)


__all__ = [
    "BENDER_FAULTS",
    "KEYS_5_22",
    "KEYS_5_33",
    "REGISTER_RANGES",
    "BenderConnector",
    "BenderController",
    "BenderDeviceConfig",
    "BenderRegister",
    "Firmware",
    "RegisterWriteError",
    "RestAuth",
    "bender_fault",
]
