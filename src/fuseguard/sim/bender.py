"""Virtual Bender CC612/CC613 charge controller: the device over the one charge-point core.

One :class:`BenderController` is one device (:class:`BenderDeviceConfig`: firmware, serials,
configured maximum current, REST auth mode) with one or two :class:`BenderConnector` s. Each
connector is one :class:`~fuseguard.sim.chargepoint.ChargePoint` (offer, watchdog, session, car,
faults, CP and OCPP state all live there) with the device's names on it; it is rendered on the
Bender wire formats by :mod:`fuseguard.sim.bender_render` (:meth:`BenderConnector.full_state` for
the legacy REST API of :mod:`fuseguard.sim.bender_rest`, :meth:`BenderConnector.modbus_registers`
for the Modbus server of :mod:`fuseguard.sim.bender_modbus`), and Modbus writes come back through
:meth:`BenderConnector.write_registers`, so both wire views are always coherent. A connector is a
:class:`fuseguard.sim.site.SimComponent`; its times are the injected clock's.

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

import structlog

from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock
from fuseguard.model.faults import DeviceFault
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import AuthState, CpState, OcppState
from fuseguard.sim import bender_render
from fuseguard.sim.bender_config import (
    BENDER_FAULTS,
    BenderDeviceConfig,
    Firmware,
    RegisterWriteError,
    RestAuth,
    bender_fault,
)
from fuseguard.sim.bender_render import DeviceView
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.vehicle import SimVehicle
from fuseguard.wire.bender import (
    KEYS_5_22,
    KEYS_5_33,
    REGISTER_RANGES,
    WRITABLE_REGISTERS,
    BenderRegister,
)

log = structlog.get_logger(__name__)


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
            start_s=clock.monotonic(),
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
        return bender_render.energy_man_current_a(self.core, self.config)

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
        return self.core.session.energy_wh

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
        return bender_render.auth_state(self.core)

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
        return int(self.core.session.duration_s(self._now()))

    # --- wire views --------------------------------------------------------------------------

    def _view(self) -> DeviceView:
        session = self.core.session
        return DeviceView(
            config=self.config,
            con_cycles_type2=self.con_cycles_type2,
            slave_ocpp=self.slave.ocpp_state if self.slave is not None else None,
            duration_s=self.charging_duration_s,
            session_start=self._wall_time(session.started_s),
            session_end=self._wall_time(session.ended_s),
        )

    def full_state(self) -> dict[str, str]:
        """The legacy REST ``/rest/full_state`` keys and values, in the firmware's key order."""
        return bender_render.full_state(self.core, self._view())

    def modbus_registers(self) -> dict[int, int]:
        """Every defined holding register of this connector (address -> 16-bit word)."""
        return bender_render.modbus_registers(self.core, self._view())

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
