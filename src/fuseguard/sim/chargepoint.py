"""The one charge-point core: a connector of an AC charger with a car behind it (no I/O).

Every virtual charger renders this core on its own wire protocol: the Bender CC612/613
(:mod:`fuseguard.sim.bender`: legacy REST + Modbus TCP), the scenario runner's in-process adapter
(:mod:`fuseguard.scenario.adapters`), the control-loop test fakes, and an OCPP 1.6 charge point.
A :class:`ChargePoint` is a :class:`fuseguard.sim.site.SimComponent`: put it on a
:class:`~fuseguard.sim.site.SiteModel` and its car's draw appears on the grid phases its wiring
``rotation`` maps the terminals to.

Time: the core has no clock. Every call that changes state takes ``now_s``, the owner's monotonic
seconds (a site's time, which is the clock's when the site starts at 0); queries report the
state as of the last change or :meth:`ChargePoint.advance`. Nothing is allocated on a tick where
nothing changes: the scenario runner ticks 200 charge points every second for a simulated day.

Rules (devices.md §7.3; the OCPP 1.6 connector states):

- **Offer** (the PWM current, ``offered_a``) = min(``max_current_a``, the limit in force, the
  energy-manager limit, the cable rating at a socket), 0 below the IEC 61851 6 A minimum, and 0
  without a car, without a session, when unavailable or after a residual-current trip.
- **Limit in force**: the last limit written (``write_limit``; the charger's maximum until the
  first write), applied ``limit_delay_s`` after the write (an OCPP charge point applying a
  profile; 0 for a Modbus register). **Watchdog**: when ``safe_timeout_s`` > 0 and no limit was
  written for more than that, the safe current replaces it until the next write. ``limit_a``
  reads back the last value written either way.
- **Car**: follows the offer after its response delay (:class:`~fuseguard.sim.vehicle.SimVehicle`).
- **Faults** (:class:`~fuseguard.model.faults.DeviceFault`): ``stuck_contactor`` (welded) keeps
  the draw the car had when it stuck, whatever is offered, until the car is full or leaves; the
  charger reports ``contactor_welded`` while it draws above the offer. ``rcd_trip`` opens the
  contactor at once (CP E, ``faulted``). ``ignores_limit`` reads limits back but never applies
  them. Wire faults (``offline``, ``slow``, ``garbage``, ``rejects_profiles``) are only recorded
  here: the wire renderers act on them.
- **CP state**: E after an RCD trip, A without a car, C while current flows, else B.
- **OCPP state**, first match wins: ``faulted`` (RCD) · ``unavailable`` · ``available`` (no car)
  · ``finishing`` (session stopped, car still plugged in) · ``preparing`` (no session yet) ·
  ``suspendedevse`` (nothing offered) · ``charging`` (current flows) · ``suspendedev`` (car full,
  suspended, or stopped drawing after it had drawn) · ``preparing`` (waiting for its first draw).
- **Session**: with ``free_charging`` it starts at plug-in; otherwise at :meth:`authorize` (an
  authorisation before the car arrives waits ``auth_timeout_s`` for it).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import InitVar, dataclass, field

import structlog

from fuseguard.model.circuits import MAIN
from fuseguard.model.faults import DeviceFault
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.numbers import finite
from fuseguard.model.phases import ZERO, Phases, Rotation
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState
from fuseguard.sim.session import Session
from fuseguard.sim.vehicle import SimVehicle
from fuseguard.wire.bender import ERROR_RCD, ERROR_RCMB, ERROR_WELD

log = structlog.get_logger(__name__)

#: How far above the offer a welded contactor's draw must be before the charger reports it (A).
WELD_DETECT_MARGIN_A = 0.5

_RCD = DeviceFault.RCD_TRIP
_STUCK = DeviceFault.STUCK_CONTACTOR
_IGNORES = DeviceFault.IGNORES_LIMIT


@dataclass(eq=False, slots=True, kw_only=True)
class ChargePoint:
    """One charge point connector with (at most) one car plugged in; see the module docstring.

    ``start_s`` is the owner's time at construction; ``limit_a`` a limit already written (None:
    the charger offers its maximum until the first write).
    """

    name: str = "cp"
    max_current_a: float = 32.0
    rotation: Rotation = Rotation.L1L2L3
    circuit: str = MAIN
    voltage_v: float = 230.0
    fixed_cable: bool = True
    free_charging: bool = True
    auth_timeout_s: float = 60.0
    limit_delay_s: float = 0.0  #: how long a written limit takes to apply
    limit_a: float | None = None  #: last limit written (None: never)
    meter_wh: float = 0.0
    start_s: InitVar[float] = 0.0
    # what the energy manager set besides the limit
    energy_manager_limit_a: float | None = field(default=None, init=False)
    safe_current_a: float = field(default=0.0, init=False)
    safe_timeout_s: float = field(default=0.0, init=False)
    available: bool = field(default=True, init=False)
    faults: set[DeviceFault] = field(default_factory=set, init=False)
    # the car and its session
    car: SimVehicle | None = field(default=None, init=False)
    session: Session = field(default_factory=Session, init=False)
    # measurements, as of the last change
    phase_wh: list[float] = field(default_factory=list, init=False)
    offered_a: float = field(default=0.0, init=False)  #: the PWM current
    watchdog_expired: bool = field(default=False, init=False)
    draw_a: float = field(default=0.0, init=False)  #: current per active phase (A)
    current_a: Phases = field(default=ZERO, init=False)  #: per charger terminal
    grid_tuple: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0), init=False)
    _grid: Phases = field(default=ZERO, init=False)
    _applied_limit_a: float | None = field(default=None, init=False)
    _pending_limits: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _written_s: float = field(default=0.0, init=False)
    _signalled_a: float = field(default=0.0, init=False)
    _stuck_a: float = field(default=0.0, init=False)
    _tick_s: float = field(default=0.0, init=False)
    _due_s: float = field(default=math.inf, init=False)
    _sample: ChargerSample | None = field(default=None, init=False)

    #: attributes that only cache what the others determine (``_sample``: the last
    #: :meth:`sample`, rebuilt from the state when None); the scenario runner's day-jump proof
    #: (``scenario/statewalk.py``) does not compare them
    __fuseguard_memo__ = ("_sample",)
    #: the energy registers: they only count (read by the wire renderers and copied into a
    #: sample's ``energy_wh``), nothing decides on them; the day-jump proof does not compare them
    __fuseguard_counters__ = ("meter_wh", "phase_wh")

    def __post_init__(self, start_s: float) -> None:
        self.max_current_a = float(self.max_current_a)
        self.meter_wh = float(self.meter_wh)
        self.phase_wh = [self.meter_wh / 3.0] * 3
        self._applied_limit_a = self.limit_a
        self._written_s = self._tick_s = start_s

    # --- the car -----------------------------------------------------------------------------

    def plug_in(self, car: SimVehicle, now_s: float) -> None:
        """Connect ``car`` (CP A -> B). With free charging (or a pending authorisation) the
        session starts at once; otherwise it waits for :meth:`authorize`."""
        if self.car is not None:
            msg = f"{self.name}: a vehicle is already plugged in"
            raise ValueError(msg)
        self.car = car
        car.reset_signal()
        self._signalled_a = 0.0
        session = self.session
        session.timed_out = False
        log.info("vehicle plugged in", device=self.name, vehicle=car.name)
        if self.free_charging or (session.authorized and session.waiting_since_s is not None):
            session.start(now_s)
            log.info("transaction started", device=self.name, reason="authorized")
        self._refresh(now_s)

    def unplug(self, now_s: float) -> SimVehicle | None:
        """Disconnect the car (-> CP A, ``available``); ends the session; returns the car."""
        car = self.car
        if car is None:
            return None
        log.info("vehicle unplugged", device=self.name, vehicle=car.name)
        self.session.end(now_s)
        car.reset_signal()
        self.car = None
        self._set_draw(0.0, 3)
        self._refresh(now_s)
        return car

    def authorize(self, now_s: float, uid: str | None = None) -> None:
        """An RFID card (``uid``) or the backend authorises charging: with a car plugged in the
        session starts; without one the authorisation waits ``auth_timeout_s`` for a car."""
        log.info("authorized", device=self.name, uid=uid or "-", reason="authorize")
        self.session.authorize(uid, now_s, car_present=self.car is not None)
        if self.session.active:
            log.info("transaction started", device=self.name, reason="authorized")
        self._refresh(now_s)

    def stop_session(self, now_s: float) -> None:
        """Stop charging while the car stays plugged in (``finishing``)."""
        if self.session.stop(now_s):
            log.info("transaction stopped", device=self.name, reason="stop_transaction")
        self._refresh(now_s)

    def car_changed(self, now_s: float) -> None:
        """Re-evaluate after the car was changed from outside (state of charge, suspended)."""
        self._refresh(now_s)

    # --- what an energy manager writes ---------------------------------------------------

    def write_limit(self, current_a: float, now_s: float) -> None:
        """Offer at most ``current_a`` per phase (0 pauses; below 6 A acts as 0); restarts the
        watchdog. Read back at once, applied after ``limit_delay_s`` (never under
        ``ignores_limit``)."""
        value = max(0.0, finite(current_a, f"{self.name}: limit"))
        self.limit_a = value
        self._written_s = now_s
        if _IGNORES not in self.faults:
            if self.limit_delay_s > 0.0:
                self._pending_limits.append((now_s + self.limit_delay_s, value))
            else:
                self._pending_limits.clear()
                self._applied_limit_a = value
        self._refresh(now_s)

    def set_safe_current(self, current_a: float, now_s: float) -> None:
        """The current the charger falls back to when the watchdog expires (0 pauses)."""
        self.safe_current_a = max(0.0, finite(current_a, f"{self.name}: safe current"))
        self._refresh(now_s)

    def set_safe_timeout(self, timeout_s: float, now_s: float) -> None:
        """The watchdog timeout (0 disables it); programming it restarts the watchdog."""
        self.safe_timeout_s = max(0.0, finite(timeout_s, f"{self.name}: safe timeout"))
        self._written_s = now_s
        self._refresh(now_s)

    def program_safe_current(self, current_a: float, timeout_s: float, now_s: float) -> None:
        """Charger-side fallback: use ``current_a`` when not written for ``timeout_s``."""
        self.safe_current_a = max(0.0, finite(current_a, f"{self.name}: safe current"))
        self.set_safe_timeout(timeout_s, now_s)

    def set_energy_manager_limit(self, current_a: float | None, now_s: float) -> None:
        """A second limit the watchdog never replaces (Bender ``energy_man_current``)."""
        self.energy_manager_limit_a = (
            None if current_a is None else max(0.0, finite(current_a, f"{self.name}: limit"))
        )
        self._refresh(now_s)

    def set_available(self, available: bool, now_s: float) -> None:
        """Operative (True) or out of service (False, OCPP ``unavailable``)."""
        self.available = available
        self._refresh(now_s)

    # --- faults ------------------------------------------------------------------------------

    def set_fault(self, fault: DeviceFault | str, now_s: float) -> None:
        """Inject a fault (several may be active at once)."""
        kind = DeviceFault(fault)
        if kind is _STUCK and kind not in self.faults:
            self._stuck_a = self.draw_a
        self.faults.add(kind)
        log.warning("fault injected", device=self.name, reason=kind.value)
        if kind is _RCD:
            self._set_draw(0.0, 3)
        self._refresh(now_s)

    def clear_fault(self, fault: DeviceFault | str | None, now_s: float) -> None:
        """Clear one fault, or all of them (None)."""
        if fault is None:
            self.faults.clear()
        else:
            self.faults.discard(DeviceFault(fault))
        log.info("fault cleared", device=self.name, reason=str(fault or "all"))
        self._refresh(now_s)

    @property
    def stuck(self) -> bool:
        """True while the contactor is welded."""
        return _STUCK in self.faults

    @property
    def tripped(self) -> bool:
        """True while a residual-current trip holds the contactor open."""
        return _RCD in self.faults

    def stick_at(self, current_a: float, now_s: float) -> None:
        """Weld the contactor with the car drawing ``current_a`` per phase (a test's shortcut)."""
        self.faults.add(_STUCK)
        self._stuck_a = max(0.0, finite(current_a, f"{self.name}: stuck current"))
        self._refresh(now_s)

    # --- time ----------------------------------------------------------------------------

    def tick(self, t_s: float, dt_s: float) -> None:
        """:class:`~fuseguard.sim.site.SimComponent`: advance to site time ``t_s``."""
        self.advance(t_s)

    def advance(self, now_s: float) -> None:
        """Integrate the energy drawn since the last call, run what fell due (watchdog, delayed
        limits, authorisation timeout), let the car follow its signal and measure the draw."""
        dt_s = now_s - self._tick_s
        self._tick_s = now_s
        if self._due_s <= now_s:
            self._run_due(now_s)
        car = self.car
        if car is None:
            return
        draw = self.draw_a
        if draw > 0.0 and dt_s > 0.0:
            self._integrate(car, draw, dt_s)
        car.advance(now_s)
        new = car.current_a
        if self.faults or not self.available:
            new = self._constrained_draw(car, new)
        if new != draw:
            self._set_draw(new, car.phases)
        elif self.session.active:
            self._sample = None  # the session's duration moved on

    def rewire(self, rotation: Rotation) -> None:
        """Change the wiring rotation (terminals -> grid phases); takes effect at once."""
        self.rotation = rotation
        self._set_draw(self.draw_a, self.car.phases if self.car is not None else 3)

    @property
    def now_s(self) -> float:
        """Time of the last :meth:`advance`."""
        return self._tick_s

    # --- read-only state -----------------------------------------------------------------

    def grid_current_a(self) -> Phases:
        """:class:`~fuseguard.sim.site.SimComponent`: draw per grid phase (A)."""
        return self._grid

    @property
    def power_w(self) -> float:
        """Active power (W), cos phi = 1."""
        return self.current_a.total * self.voltage_v

    @property
    def cable_rating_a(self) -> int | None:
        """Rating of the cable in use: None for a fixed cable (no limit of its own)."""
        if self.fixed_cable or self.car is None:
            return None
        return self.car.cable_rating_a

    @property
    def cp_state(self) -> CpState:
        """IEC 61851 control pilot state."""
        if _RCD in self.faults:
            return CpState.E
        if self.car is None:
            return CpState.A
        return CpState.C if self.draw_a > 0.0 else CpState.B

    @property
    def ocpp_state(self) -> OcppState:
        """OCPP 1.6 connector status (rules in the module docstring)."""
        car = self.car
        if _RCD in self.faults:
            return OcppState.FAULTED
        if not self.available:
            return OcppState.UNAVAILABLE
        if car is None:
            return OcppState.AVAILABLE
        session = self.session
        if session.stopped:
            return OcppState.FINISHING
        if not session.active:
            return OcppState.PREPARING
        if self.offered_a <= 0.0:
            return OcppState.SUSPENDEDEVSE
        if self.draw_a > 0.0:
            return OcppState.CHARGING
        if car.full or car.suspended or session.has_drawn:
            return OcppState.SUSPENDEDEV
        return OcppState.PREPARING

    @property
    def welded(self) -> bool:
        """The charger sees current it did not offer: its contactor does not open."""
        return _STUCK in self.faults and self.draw_a > self.offered_a + WELD_DETECT_MARGIN_A

    @property
    def errors(self) -> tuple[str, ...]:
        """Active error names (the Bender ``errors`` vocabulary; empty: none)."""
        errors: tuple[str, ...] = ()
        if _RCD in self.faults:
            errors = (ERROR_RCMB, ERROR_RCD)
        if self.welded:
            errors = (*errors, ERROR_WELD)
        return errors

    @property
    def relay_on(self) -> bool:
        """Contactor closed (current can flow)."""
        return self.draw_a > 0.0 or (_STUCK in self.faults and self.car is not None)

    @property
    def limit_in_force_a(self) -> float:
        """The written limit in force (the safe current after the watchdog expired; the maximum
        before the first write), 0 below the 6 A minimum; other limits not applied."""
        written = self._applied_limit_a
        limit = self.max_current_a if written is None else written
        if self.watchdog_expired:
            limit = self.safe_current_a
        return limit if limit >= MIN_CHARGE_CURRENT_A else 0.0

    def sample(self) -> ChargerSample:
        """What the charge point reports, as a driver would decode it (cached until a change)."""
        sample = self._sample
        if sample is None:
            car = self.car
            session = self.session
            drawing = self.draw_a > 0.0
            sample = ChargerSample(
                cp_state=self.cp_state,
                ocpp_state=self.ocpp_state,
                current_a=self.current_a,
                power_w=self.power_w,
                energy_wh=self.meter_wh,
                session_energy_wh=session.energy_wh if car is not None else None,
                charging_duration_s=(session.duration_s(self._tick_s) if session.active else None),
                signalled_current_a=self.offered_a,
                limit_a=self.limit_a if self.limit_a is not None else self.max_current_a,
                max_current_a=self.max_current_a,
                cable_rating_a=self.cable_rating_a,
                phases_in_use=car.phases if car is not None and drawing else None,
                authorized=session.authorized,
                errors=self.errors,
            )
            self._sample = sample
        return sample

    # --- internals ---------------------------------------------------------------------------

    def _integrate(self, car: SimVehicle, draw_a: float, dt_s: float) -> None:
        phases = car.phases
        taken = car.charge(draw_a * phases * self.voltage_v * dt_s / 3600.0)
        if taken > 0.0:
            self.meter_wh += taken
            if self.session.active:
                self.session.energy_wh += taken
            share = taken / phases
            wh = self.phase_wh
            for i in range(phases):
                wh[i] += share
            self._sample = None

    def _constrained_draw(self, car: SimVehicle, wanted_a: float) -> float:
        """The draw when faults or unavailability stand between the car and the grid."""
        faults = self.faults
        if _RCD in faults:
            return 0.0
        if _STUCK in faults:
            return 0.0 if car.full else self._stuck_a
        return wanted_a if self.available else 0.0

    def _set_draw(self, draw_a: float, phases: int) -> None:
        self.draw_a = draw_a
        if draw_a > 0.0:
            self.session.has_drawn = True
            terminals = Phases(draw_a, draw_a if phases > 1 else 0.0, draw_a if phases > 2 else 0.0)
        else:
            terminals = ZERO
        self.current_a = terminals
        grid = self.rotation.to_grid(terminals) if draw_a > 0.0 else ZERO
        self._grid = grid
        self.grid_tuple = (grid.l1, grid.l2, grid.l3)
        self._sample = None

    def _run_due(self, now_s: float) -> None:
        pending = self._pending_limits
        while pending and pending[0][0] <= now_s:
            self._applied_limit_a = pending.popleft()[1]
        if self.car is None and self.session.expire(now_s, self.auth_timeout_s):
            log.info("authorization timed out", device=self.name, reason="no vehicle")
        self._refresh(now_s)

    def _offer(self) -> float:
        car = self.car
        if car is None or not self.session.active or not self.available or _RCD in self.faults:
            return 0.0
        limit = min(self.max_current_a, self.limit_in_force_a)
        if self.energy_manager_limit_a is not None:
            limit = min(limit, self.energy_manager_limit_a)
        if not self.fixed_cable:
            limit = min(limit, float(car.cable_rating_a))
        return limit if limit >= MIN_CHARGE_CURRENT_A else 0.0

    def _refresh(self, now_s: float) -> None:
        """Recompute the offer, tell the car about a change, and when to look again."""
        timeout = self.safe_timeout_s
        self.watchdog_expired = timeout > 0.0 and now_s - self._written_s > timeout
        offer = self._offer()
        self.offered_a = offer
        car = self.car
        if car is not None and offer != self._signalled_a:
            self._signalled_a = offer
            car.signal(offer, now_s)
        due = math.inf
        if timeout > 0.0 and not self.watchdog_expired:
            due = self._written_s + timeout
        if self._pending_limits:
            due = min(due, self._pending_limits[0][0])
        waiting = self.session.waiting_since_s
        if waiting is not None:
            due = min(due, waiting + self.auth_timeout_s)
        self._due_s = due
        self._sample = None


__all__ = ["WELD_DETECT_MARGIN_A", "ChargePoint"]
