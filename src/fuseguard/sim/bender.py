"""Virtual Bender CC612/CC613 charge controller: the state machine, without any wire I/O.

One :class:`BenderController` is one device (firmware, serials, configured maximum current, REST
auth mode) with one or two :class:`BenderConnector` s. A connector is a
:class:`fuseguard.sim.site.SimComponent`: put it on a :class:`~fuseguard.sim.site.SiteModel` and
its vehicle's draw appears on the grid phases its wiring ``rotation`` maps the terminals to.

The REST text API (:mod:`fuseguard.sim.bender_rest`) and the Modbus TCP server
(:mod:`fuseguard.sim.bender_modbus`) only render :meth:`BenderConnector.full_state` and
:meth:`BenderConnector.modbus_registers` and forward writes to
:meth:`BenderConnector.write_registers`, so both wire views are always coherent.

In-process API (scenario runner, demo, tests), all on :class:`BenderConnector`:

- ``plug_in(vehicle)``, ``unplug()``, ``authorize(uid=None)``, ``stop_transaction()``
- ``set_hems_limit(current_a)``: what a Modbus write to register 1000 does
- ``set_safe_current(current_a, timeout_s)``: what writes to registers 131/132 do
- ``set_fault(kind)`` / ``clear_fault(kind=None)`` with :class:`FaultKind`
- read-only: ``current_a`` (:class:`Phases`, per terminal), ``grid_current_a()``, ``power_w``,
  ``cp_state``, ``ocpp_state``, ``auth_state``, ``sig_current_a``, ``full_state()``

State rules (devices.md §7.3; [inf] where Bender is silent):

- ``sig_current`` = min(max_current, cable rating, HEMS limit, energy-manager current), and 0
  without a vehicle, without authorisation, after ``stop_transaction``, when unavailable or
  faulted. A HEMS limit of 1..5 A acts as 0.
- Watchdog: when register 132 (timeout) > 0 and register 1000 was not written for that many
  seconds, the HEMS limit falls back to register 131 (safe current) until 1000 is written again.
  Register 1000 keeps reading back the last value written.
- OCPP state, first match wins: ``faulted`` (RCD trip) · ``unavailable`` (register 124 = 0) ·
  ``available`` (no vehicle) · ``preparing`` (not authorised) · ``finishing`` (transaction
  stopped) · ``suspendedevse`` (sig_current 0) · ``charging`` (CP C) · ``suspendedev``
  (vehicle full, or stopped drawing after it had drawn) · ``preparing`` (waiting for the
  vehicle's first draw).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import structlog

from fuseguard.model.clock import Clock
from fuseguard.model.phases import ZERO, Phases, Rotation
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
from fuseguard.sim.bender_panel import ERR112_BACKEND, BenderPanel, KeySet
from fuseguard.sim.site import MAIN
from fuseguard.sim.vehicle import MIN_CHARGE_CURRENT_A, SimVehicle
from fuseguard.wire.bender import (
    ERR112_CONTACTOR_WELD,
    ERR112_RCD,
    ERR112_RCMB,
    ERR112_VEHICLE_E,
    ERROR_RCD,
    ERROR_RCMB,
    ERROR_WELD,
    KEYS_5_22,
    KEYS_5_33,
    MODBUS_PROTOCOL_VERSION,
    REGISTER_RANGES,
    WRITABLE_REGISTERS,
    BenderRegister,
)
from fuseguard.wire.modbus import NOT_AVAILABLE_U32, encode_ascii, encode_u32

log = structlog.get_logger(__name__)


class FaultKind(StrEnum):
    """Faults injectable at run time."""

    OFFLINE = "offline"  #: no answer at all (requests hang until the client times out)
    SLOW = "slow"  #: answers, but only after ``slow_delay_s`` of wall time
    GARBAGE = "garbage"  #: answers with text/registers that are not valid data
    RCD_TRIP = "rcd_trip"  #: residual current detected: contactor open, faulted, errors
    STUCK_CONTACTOR = "stuck_contactor"  #: welded contactor: keeps drawing at limit 0
    BACKEND_LOST = "backend_lost"  #: OCPP backend unreachable (backend_conn_state, reg 112 bit 7)


#: Faults that only change how the wire servers answer, not the electrical state.
WIRE_FAULTS = frozenset({FaultKind.OFFLINE, FaultKind.SLOW, FaultKind.GARBAGE})


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
    key_set: KeySet = KeySet.FIRMWARE  #: 5.33 full_state: 43 keys, or exactly seed 003's 41
    panel: BenderPanel = field(default_factory=BenderPanel)  #: Schuko, backend, WLAN, display

    @property
    def firmware_version(self) -> str:
        """``firmware_ver`` as the REST API writes it."""
        return "5.33.0-18127" if self.firmware is Firmware.V5_33 else "5.22.1-13295"


@dataclass(eq=False)
class BenderConnector:
    """One charge point connector of a Bender controller (a :class:`SimComponent`).

    Use :meth:`BenderController.connector` rather than constructing it directly.
    """

    clock: Clock
    config: BenderDeviceConfig
    connector_id: int = 1
    circuit: str = MAIN
    rotation: Rotation = Rotation.L1L2L3
    fixed_cable: bool = True
    meter_wh: float = 16_701.0
    auth_timeout_s: float = 60.0
    energy_man_current_a: int | None = None
    con_cycles_type2: int = 5
    vehicle: SimVehicle | None = None
    faults: set[FaultKind] = field(default_factory=set)
    available: bool = True
    safe_current_a: int = 0
    comm_timeout_s: int = 0
    slave: BenderConnector | None = None
    _hems_limit_a: float | None = None
    _hems_written_at: float = 0.0
    _authorized: bool = False
    _auth_uid: str = ""
    _preauthorized_at: float | None = None
    _auth_timed_out: bool = False
    _transaction_active: bool = False
    _transaction_stopped: bool = False
    _transaction_start: float | None = None
    _transaction_wh: float = 0.0
    _session_started_at: datetime | None = None
    _session_ended_at: datetime | None = None
    _has_drawn: bool = False
    _last_pwm_a: float = 0.0
    _current_a: Phases = ZERO
    _phase_wh: list[float] = field(default_factory=list)
    _listeners: list[Callable[[BenderConnector], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self._phase_wh:
            self._phase_wh = [self.meter_wh / 3.0] * 3
        self._hems_written_at = self.clock.monotonic()

    # --- identity ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``<cp_id>#<connector>`` for logs."""
        return f"{self.config.cp_id}#{self.connector_id}"

    # --- in-process control ------------------------------------------------------------------

    def plug_in(self, vehicle: SimVehicle) -> None:
        """Connect ``vehicle`` (CP A -> B). With free charging (or a pre-authorisation) the
        transaction starts at once; otherwise ``auth_state`` becomes ``wait_for_auth``."""
        if self.vehicle is not None:
            msg = f"{self.name}: a vehicle is already plugged in"
            raise ValueError(msg)
        self.vehicle = vehicle
        vehicle.reset_signal()
        self.con_cycles_type2 += 1
        self._auth_timed_out = False
        log.info("vehicle plugged in", device=self.name, vehicle=vehicle.name)
        if self.config.free_charging or (self._authorized and self._preauthorized_at is not None):
            self._start_transaction()
        self._sync()

    def unplug(self) -> None:
        """Disconnect the vehicle (-> CP A, ``available``); ends the transaction."""
        if self.vehicle is None:
            return
        log.info("vehicle unplugged", device=self.name, vehicle=self.vehicle.name)
        if self._transaction_active:
            self._session_ended_at = self.clock.now()
        self.vehicle.reset_signal()
        self.vehicle = None
        self._authorized = False
        self._auth_uid = ""
        self._preauthorized_at = None
        self._transaction_active = False
        self._transaction_stopped = False
        self._transaction_start = None
        self._transaction_wh = 0.0
        self._has_drawn = False
        self._current_a = ZERO
        self._sync()

    def authorize(self, uid: str | None = None) -> None:
        """An RFID card (``uid``) or the backend authorises charging.

        With a vehicle plugged in the transaction starts; without one the authorisation waits
        ``auth_timeout_s`` for a plug-in, then ``auth_state`` shows ``auth_timeout``.
        """
        self._authorized = True
        self._auth_uid = uid or ""
        self._auth_timed_out = False
        log.info("authorized", device=self.name, uid=uid or "-", reason="authorize")
        if self.vehicle is not None:
            self._preauthorized_at = None
            self._start_transaction()
        else:
            self._preauthorized_at = self.clock.monotonic()
        self._sync()

    def stop_transaction(self) -> None:
        """Stop charging while the vehicle stays plugged in (``finishing``)."""
        if self._transaction_active:
            self._transaction_active = False
            self._transaction_stopped = True
            self._session_ended_at = self.clock.now()
            log.info("transaction stopped", device=self.name, reason="stop_transaction")
        self._sync()

    def set_hems_limit(self, current_a: float) -> None:
        """What a Modbus write to register 1000 does: set the HEMS limit (0 pauses; 1-5 act as 0;
        above ``max_current`` is clamped) and reset the communication watchdog."""
        if current_a < 0 or current_a > 0xFFFF:
            msg = f"HEMS limit {current_a} A is out of range"
            raise RegisterWriteError(msg)
        self._hems_limit_a = float(current_a)
        self._hems_written_at = self.clock.monotonic()
        self._sync()

    def set_safe_current(self, current_a: int, timeout_s: int) -> None:
        """What writes to registers 131 (safe current) and 132 (timeout) do."""
        self._set_safe_current(current_a)
        self._set_comm_timeout(timeout_s)

    def set_soc(self, soc: float) -> None:
        """Set the plugged vehicle's state of charge (0..1)."""
        if self.vehicle is None:
            msg = f"{self.name}: no vehicle plugged in"
            raise ValueError(msg)
        self.vehicle.set_soc(soc)
        self._sync()

    def set_fault(self, kind: FaultKind | str) -> None:
        """Inject a fault (see :class:`FaultKind`); several may be active at once."""
        fault = FaultKind(kind)
        self.faults.add(fault)
        log.warning("fault injected", device=self.name, reason=fault.value)
        if fault is FaultKind.RCD_TRIP:
            self._current_a = ZERO
        self._sync()

    def clear_fault(self, kind: FaultKind | str | None = None) -> None:
        """Clear one fault, or all of them."""
        if kind is None:
            self.faults.clear()
        else:
            self.faults.discard(FaultKind(kind))
        log.info("fault cleared", device=self.name, reason=str(kind or "all"))
        self._sync()

    def on_change(self, listener: Callable[[BenderConnector], None]) -> None:
        """Call ``listener(connector)`` after every state change and tick."""
        self._listeners.append(listener)

    # --- SimComponent -------------------------------------------------------------------------

    def tick(self, t_s: float, dt_s: float) -> None:
        """Advance by ``dt_s``: integrate energy drawn since the last tick, check timeouts, let
        the vehicle react to the PWM signal, then measure the new current.

        Time stamps come from the injected clock (``t_s`` is the site's time, unused here).
        """
        now = self.clock.monotonic()
        power_w = self.power_w
        if dt_s > 0 and power_w > 0:
            for i, amps in enumerate(self._current_a):
                self._phase_wh[i] += amps * self.config.voltage_v * dt_s / 3600.0
            energy_wh = power_w * dt_s / 3600.0
            self.meter_wh += energy_wh
            if self._transaction_active:
                self._transaction_wh += energy_wh
            if self.vehicle is not None:
                self.vehicle.charge(energy_wh)
        if (
            self._preauthorized_at is not None
            and self.vehicle is None
            and now - self._preauthorized_at >= self.auth_timeout_s
        ):
            self._authorized = False
            self._preauthorized_at = None
            self._auth_timed_out = True
            log.info("authorization timed out", device=self.name, reason="no vehicle")
        self._update_pwm()
        if self.vehicle is not None:
            self.vehicle.advance(now)
        self._measure()
        self._notify()

    def grid_current_a(self) -> Phases:
        """Draw per grid phase (A) as of the last tick, through the wiring rotation."""
        return self.rotation.to_grid(self._current_a)

    # --- read-only state ---------------------------------------------------------------------

    @property
    def current_a(self) -> Phases:
        """Measured current per charger terminal (A), as of the last tick."""
        return self._current_a

    @property
    def power_w(self) -> float:
        """Active power (W), cos phi = 1."""
        return self._current_a.total * self.config.voltage_v

    @property
    def faulted(self) -> bool:
        """True while an RCD trip is active."""
        return FaultKind.RCD_TRIP in self.faults

    @property
    def contactor_stuck(self) -> bool:
        """True while the stuck-contactor fault is active."""
        return FaultKind.STUCK_CONTACTOR in self.faults

    @property
    def cp_state(self) -> CpState:
        """IEC 61851 control pilot state."""
        if self.faulted:
            return CpState.E
        if self.vehicle is None:
            return CpState.A
        if self._current_a.max > 0:
            return CpState.C
        return CpState.B

    @property
    def auth_state(self) -> AuthState:
        """``auth_state``."""
        if self._authorized:
            return AuthState.AUTHORIZED_FOR_CHARGING
        if self._auth_timed_out:
            return AuthState.AUTH_TIMEOUT
        if self.vehicle is not None:
            return AuthState.WAIT_FOR_AUTH
        return AuthState.NOT_AUTHORIZED_FOR_CHARGING

    @property
    def cable_rating_a(self) -> int | None:
        """Rating of the cable in use: None for a fixed cable (no limit of its own)."""
        if self.fixed_cable or self.vehicle is None:
            return None
        return self.vehicle.cable_rating_a

    @property
    def hems_limit_a(self) -> float | None:
        """Last value written to register 1000 (None: never written)."""
        return self._hems_limit_a

    @property
    def watchdog_expired(self) -> bool:
        """True while the communication timeout (register 132) has run out."""
        return (
            self.comm_timeout_s > 0
            and self.clock.monotonic() - self._hems_written_at >= self.comm_timeout_s
        )

    @property
    def effective_hems_limit_a(self) -> float:
        """HEMS limit in force: the written one, or the safe current after a watchdog expiry."""
        limit = float(self.config.max_current_a)
        if self._hems_limit_a is not None:
            limit = self._hems_limit_a
        if self.watchdog_expired:
            limit = float(self.safe_current_a)
        return 0.0 if limit < MIN_CHARGE_CURRENT_A else limit

    @property
    def energy_man_limit_a(self) -> int:
        """``energy_man_current``: limit set by an energy manager (default: max current)."""
        if self.energy_man_current_a is None:
            return self.config.max_current_a
        return self.energy_man_current_a

    @property
    def sig_current_a(self) -> float:
        """Current signalled to the vehicle (PWM), A."""
        if (
            self.vehicle is None
            or not self._transaction_active
            or self.faulted
            or not self.available
        ):
            return 0.0
        limits = [
            float(self.config.max_current_a),
            self.effective_hems_limit_a,
            float(self.energy_man_limit_a),
        ]
        if (rating := self.cable_rating_a) is not None:
            limits.append(float(rating))
        value = min(limits)
        return 0.0 if value < MIN_CHARGE_CURRENT_A else value

    @property
    def ocpp_state(self) -> OcppState:
        """OCPP 1.6 connector status (rules in the module docstring)."""
        vehicle = self.vehicle
        if self.faulted:
            return OcppState.FAULTED
        if not self.available:
            return OcppState.UNAVAILABLE
        if vehicle is None:
            return OcppState.AVAILABLE
        if self._transaction_stopped:
            return OcppState.FINISHING
        if not self._transaction_active:
            return OcppState.PREPARING
        if self.sig_current_a <= 0:
            return OcppState.SUSPENDEDEVSE
        if self.cp_state.charging:
            return OcppState.CHARGING
        if vehicle.full or self._has_drawn:
            return OcppState.SUSPENDEDEV
        return OcppState.PREPARING

    @property
    def errors(self) -> tuple[str, ...]:
        """Active error names (empty: ``no_errors``)."""
        errors: list[str] = []
        if self.faulted:
            errors += [ERROR_RCMB, ERROR_RCD]
        if self.contactor_stuck and self.sig_current_a <= 0 and self._current_a.max > 0:
            errors.append(ERROR_WELD)
        return tuple(errors)

    @property
    def charging_duration_s(self) -> int:
        """Seconds since the transaction started (0 without one)."""
        if self._transaction_start is None:
            return 0
        return int(self.clock.monotonic() - self._transaction_start)

    @property
    def transaction_wh(self) -> float:
        """Energy of the running transaction (Wh)."""
        return self._transaction_wh

    @property
    def relay_on(self) -> bool:
        """Contactor closed (current can flow)."""
        return self._current_a.max > 0 or (self.contactor_stuck and self.vehicle is not None)

    # --- wire views --------------------------------------------------------------------------

    def full_state(self) -> dict[str, str]:
        """The legacy REST ``/rest/full_state`` keys and values, in the firmware's key order.

        Values are the strings written after ``key:``; 5.22's rcmb values keep the device's
        leading space (``rcmb_max_values: 0.0, 0.0``).
        """
        cfg = self.config
        cp = self.cp_state
        conn = ConnState.VEHICLE_CONNECTOR_ERROR if cp.fault else conn_state_from_cp(cp)
        if self.fixed_cable:
            proximity = Type2Proximity.CABLE_ATTACHED.value
        elif self.vehicle is None:
            proximity = Type2Proximity.NO_CABLE.value
        else:
            proximity = str(self.cable_rating_a)
        rcmb = "triggered" if self.faulted else "okay"
        rcmb_pair = "12.5, 6.0" if self.faulted else "0.0, 0.0"
        errors = ";".join(self.errors) or "no_errors"
        current = self._current_a
        volts = round(cfg.voltage_v)
        values: dict[str, str] = {
            "conn_state": conn.value,
            "auth_state": self.auth_state.value,
            "auth_uid": self._auth_uid if cfg.rest_with_uid else "",
            "time_since_charging_start": str(self.charging_duration_s),
            "meter_wh": str(int(self.meter_wh)),
            "power_w": str(round(self.power_w)),
            "transaction_wh": str(int(self._transaction_wh)),
            "display_text": "",
            "cp_id": cfg.cp_id,
            "ocpp_state": self.ocpp_state.value,
            "type2_state": type2_state_from_cp(cp).value,
            "type2_proximity": proximity,
            "sig_current": str(int(self.sig_current_a)),
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
            "rcmb_state": rcmb,
            "rcmb_max": rcmb_pair,
            "rcmb_values": rcmb_pair,
            "rcmb_max_values": " " + rcmb_pair,
            "rcmb_current_values": " " + rcmb_pair,
            "cable_attached": "on" if self.fixed_cable else "off",
            "schuko_cfg": "disable",
            "rcd_state": "triggered" if self.faulted else "okay",
            "mcb_type2_state": "okay",
            "mcb_schuko_state": "disable",
            "cp_vendor": cfg.cp_vendor,
            "errors": errors,
            "cp_model": cfg.cp_model,
            "voltage_v": f"{volts},{volts},{volts}",
            "wlan_state": "wlan_disconnected",
        }
        cfg.panel.apply(
            values,
            backend_lost=FaultKind.BACKEND_LOST in self.faults,
            type2_busy=self.vehicle is not None,
        )
        keys = cfg.key_set.select(KEYS_5_33 if cfg.firmware is Firmware.V5_33 else KEYS_5_22)
        return {key: values[key] for key in keys}

    def modbus_registers(self) -> dict[int, int]:
        """Every defined holding register of this connector (address -> 16-bit word)."""
        cfg = self.config
        reg = BenderRegister
        regs: dict[int, int] = {
            address: 0 for first, last in REGISTER_RANGES for address in range(first, last + 1)
        }

        def put(address: int, words: list[int]) -> None:
            for i, word in enumerate(words):
                regs[address + i] = word

        put(reg.FIRMWARE, encode_ascii(cfg.firmware.value, 2))
        put(reg.OCPP_STATE, [self.ocpp_state.ordinal])
        put(reg.ERROR_CODES, [0] * 8)
        err112 = 0
        if self.faulted:
            err112 |= ERR112_RCMB | ERR112_RCD | ERR112_VEHICLE_E
        if ERROR_WELD in self.errors:
            err112 |= ERR112_CONTACTOR_WELD
        if FaultKind.BACKEND_LOST in self.faults:
            err112 |= ERR112_BACKEND
        put(reg.ERROR_CODES_LAST, [err112])
        put(reg.PROTOCOL_VERSION, encode_ascii(MODBUS_PROTOCOL_VERSION, 2))
        put(reg.CP_STATE, [cp_to_register_122(self.cp_state)])
        put(reg.AVAILABILITY, [1 if self.available else 0])
        put(reg.SAFE_CURRENT, [self.safe_current_a, self.comm_timeout_s, cfg.max_current_a])
        put(reg.OPERATOR_CURRENT_LIMIT, [cfg.max_current_a])
        put(reg.RELAY_STATE, [1 if self.relay_on else 0])
        put(reg.MODEL, encode_ascii(cfg.cp_model[:20], 10))
        volts = self.config.voltage_v
        for i, amps in enumerate(self._current_a):
            if cfg.has_meter:
                put(reg.ENERGY_L1 + 2 * i, encode_u32(int(self._phase_wh[i])))
                put(reg.POWER_L1 + 2 * i, encode_u32(round(amps * volts)))
                put(reg.CURRENT_L1 + 2 * i, encode_u32(round(amps * 1000)))
                put(reg.VOLTAGE_L1 + 2 * i, encode_u32(round(volts)))
            else:
                for base in (reg.ENERGY_L1, reg.POWER_L1, reg.CURRENT_L1, reg.VOLTAGE_L1):
                    put(base + 2 * i, encode_u32(NOT_AVAILABLE_U32))
        if cfg.has_meter:
            put(reg.ENERGY_TOTAL, encode_u32(int(self.meter_wh)))
            put(reg.POWER_TOTAL, encode_u32(round(self.power_w)))
        else:
            put(reg.ENERGY_TOTAL, encode_u32(NOT_AVAILABLE_U32))
            put(reg.POWER_TOTAL, encode_u32(NOT_AVAILABLE_U32))
        put(reg.SESSION_ENERGY_16, [min(int(self._transaction_wh), 0xFFFF)])
        put(reg.SIGNALLED_CURRENT, [int(self.sig_current_a)])
        put(reg.SESSION_START_BCD, _bcd_hhmmss(self._session_started_at))
        put(reg.CHARGING_DURATION_16, [min(self.charging_duration_s, 0xFFFF)])
        put(reg.SESSION_END_BCD, _bcd_hhmmss(self._session_ended_at))
        put(reg.MIN_CURRENT, [int(MIN_CHARGE_CURRENT_A)])
        put(reg.MAX_CURRENT, [cfg.max_current_a])
        put(reg.SESSION_ENERGY, encode_u32(int(self._transaction_wh)))
        put(reg.CHARGING_DURATION, encode_u32(self.charging_duration_s))
        put(reg.USER_ID, encode_ascii(self._auth_uid[:20], 10))
        put(reg.EV_SOC, [0])
        put(reg.SMART_VEHICLE, [0])
        hems = self._hems_limit_a
        readback = cfg.max_current_a if hems is None else hems
        put(reg.HEMS_CURRENT_LIMIT, [int(readback)])
        put(reg.HEMS_CURRENT_LIMIT_DECI, [min(round(readback * 10), 0xFFFF)])
        return regs

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
                self.available = value == 1
                self._sync()
        log.debug("registers written", device=self.name, address=address, values=values)

    # --- internals ---------------------------------------------------------------------------

    def _set_safe_current(self, current_a: int) -> None:
        if current_a != 0 and not MIN_CHARGE_CURRENT_A <= current_a <= self.config.max_current_a:
            msg = f"safe current must be 0 or 6..{self.config.max_current_a} A, not {current_a}"
            raise RegisterWriteError(msg)
        self.safe_current_a = current_a
        self._sync()

    def _set_comm_timeout(self, timeout_s: int) -> None:
        if not 0 <= timeout_s <= 0xFFFF:
            msg = f"timeout {timeout_s} s out of range"
            raise RegisterWriteError(msg)
        self.comm_timeout_s = timeout_s
        # Programming the watchdog (re)starts it from now.
        self._hems_written_at = self.clock.monotonic()
        self._sync()

    def _start_transaction(self) -> None:
        self._authorized = True
        self._transaction_active = True
        self._transaction_stopped = False
        self._transaction_start = self.clock.monotonic()
        self._session_started_at = self.clock.now()
        self._session_ended_at = None
        self._transaction_wh = 0.0
        self._has_drawn = False
        log.info("transaction started", device=self.name, reason="authorized")

    def _update_pwm(self) -> None:
        """Tell the vehicle about a changed PWM signal (a stuck contactor hides a 0)."""
        vehicle = self.vehicle
        if vehicle is None:
            return
        pwm = self.sig_current_a
        if pwm == self._last_pwm_a:
            return
        if pwm <= 0 and self.contactor_stuck and not self.faulted:
            return
        self._last_pwm_a = pwm
        vehicle.signal(pwm, self.clock.monotonic())

    def _measure(self) -> None:
        vehicle = self.vehicle
        if vehicle is None or self.faulted:
            self._current_a = ZERO
            return
        if not self.available and not self.contactor_stuck:
            self._current_a = ZERO
            return
        self._current_a = vehicle.terminal_current_a()
        if self._current_a.max > 0:
            self._has_drawn = True

    def _sync(self) -> None:
        """After an in-process change: forward a new PWM value and notify listeners."""
        if self.vehicle is None:
            self._last_pwm_a = 0.0
        else:
            self._update_pwm()
        if self.faulted:
            self._current_a = ZERO
        self._notify()

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
                    clock=self.clock,
                    config=self.config,
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

    def set_fault(self, kind: FaultKind | str) -> None:
        """Inject ``kind`` on every connector (a device-wide fault)."""
        for c in self.connectors:
            c.set_fault(kind)

    def clear_fault(self, kind: FaultKind | str | None = None) -> None:
        """Clear ``kind`` (or every fault) on every connector."""
        for c in self.connectors:
            c.clear_fault(kind)
