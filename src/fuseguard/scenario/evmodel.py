"""A small, fast charge point + vehicle model for scenario runs (a :class:`SimComponent`).

It models what the control loop can observe and influence on an IEC 61851 AC charger: the offered
current (PWM), the vehicle's draw on 1, 2 or 3 terminals mapped through the wiring rotation, the
charger's own communication-loss fallback (safe current after a timeout) and a welded contactor.
A vehicle draws ``min(offered, car max)`` from the next site tick on when at least 6 A are offered
and it still needs energy; below 6 A it pauses (CP B).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState

MIN_CURRENT_A = 6.0


@dataclass(slots=True)
class SimCar:
    """A vehicle session: what it wants and how it can draw."""

    name: str
    energy_wh: float
    phases: int = 3
    max_a: float = 16.0
    delivered_wh: float = 0.0

    @property
    def remaining_wh(self) -> float:
        """Energy still wanted."""
        return max(0.0, self.energy_wh - self.delivered_wh)


@dataclass(slots=True)
class SimConnector:
    """One connector of a charge controller with an optional vehicle plugged in."""

    id: str
    circuit: str
    rotation: Rotation
    max_a: float
    voltage_v: float = 230.0
    car: SimCar | None = None
    offered_a: float = 0.0
    stuck: bool = False
    safe_current_a: float | None = None
    safe_timeout_s: float | None = None
    last_write_s: float = 0.0
    draw_a: float = 0.0
    t_s: float = 0.0
    charging_since_s: float | None = None
    meter_wh: float = 0.0
    _grid: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _grid_idx: tuple[int, ...] = field(default=())

    # --- the plug ------------------------------------------------------------------------

    def plug_in(self, car: SimCar) -> None:
        """A vehicle arrives (authorisation is free in scenarios)."""
        self.car = car
        self._grid_idx = tuple(p.index for p in self.rotation.grid_phases(car.phases))

    def unplug(self) -> SimCar | None:
        """The vehicle leaves; returns it."""
        car, self.car = self.car, None
        self.draw_a = 0.0
        self._update_grid()
        self.charging_since_s = None
        return car

    # --- what the adapter writes ---------------------------------------------------------

    def write_limit(self, current_a: float) -> None:
        """The EMS offers ``current_a`` per phase (0 pauses)."""
        self.offered_a = max(0.0, float(current_a))
        self.last_write_s = self.t_s

    def program_safe_current(self, current_a: float, timeout_s: float) -> None:
        """Charger-side fallback: use ``current_a`` when not written for ``timeout_s``."""
        self.safe_current_a = float(current_a)
        self.safe_timeout_s = float(timeout_s)
        self.last_write_s = self.t_s

    @property
    def in_safe_mode(self) -> bool:
        """True while the charger's own communication-loss fallback is active."""
        return (
            self.safe_timeout_s is not None
            and self.safe_current_a is not None
            and self.t_s - self.last_write_s > self.safe_timeout_s
        )

    @property
    def signalled_a(self) -> float:
        """The current the charger offers the vehicle now."""
        offered = self.offered_a if self.offered_a < self.max_a else self.max_a
        if (
            self.safe_timeout_s is not None
            and self.safe_current_a is not None
            and self.t_s - self.last_write_s > self.safe_timeout_s
            and self.safe_current_a < offered
        ):
            offered = self.safe_current_a
        return offered if offered >= MIN_CURRENT_A else 0.0

    # --- SimComponent --------------------------------------------------------------------

    def tick(self, t_s: float, dt_s: float) -> None:
        """Integrate the last interval's energy, then follow the offered current."""
        self.t_s = t_s
        car = self.car
        if car is None:
            if self.draw_a:
                self.draw_a = 0.0
                self._update_grid()
            return
        if dt_s > 0 and self.draw_a > 0:
            wh = self.draw_a * len(self._grid_idx) * self.voltage_v * dt_s / 3600.0
            wh = min(wh, car.energy_wh - car.delivered_wh)
            car.delivered_wh += wh
            self.meter_wh += wh
        new = 0.0
        if car.energy_wh - car.delivered_wh > 1e-9:
            # A welded contactor keeps the vehicle drawing what it drew when it stuck.
            new = self.draw_a if self.stuck else min(self.signalled_a, car.max_a)
        if new > 0 and self.draw_a <= 0:
            self.charging_since_s = t_s
        elif new <= 0:
            self.charging_since_s = None
        if new != self.draw_a:
            self.draw_a = new
            self._update_grid()

    def _update_grid(self) -> None:
        vals = [0.0, 0.0, 0.0]
        if self.draw_a > 0:
            for i in self._grid_idx:
                vals[i] = self.draw_a
        self._grid = (vals[0], vals[1], vals[2])

    def grid_current_a(self) -> Phases:
        """Draw per grid phase."""
        return Phases(*self._grid)

    @property
    def grid_tuple(self) -> tuple[float, float, float]:
        """Draw per grid phase as a plain tuple (fast path for the recorder)."""
        return self._grid

    # --- what the adapter reads ----------------------------------------------------------

    def sample(self) -> ChargerSample:
        """What the charge controller reports."""
        car = self.car
        n = len(self._grid_idx) if car is not None else 0
        local = Phases.of(self.draw_a if i < n else 0.0 for i in range(3))
        if car is None:
            cp, ocpp = CpState.A, OcppState.AVAILABLE
        elif self.draw_a > 0:
            cp, ocpp = CpState.C, OcppState.CHARGING
        elif self.signalled_a > 0:
            cp, ocpp = CpState.B, OcppState.SUSPENDEDEV
        else:
            cp, ocpp = CpState.B, OcppState.SUSPENDEDEVSE
        return ChargerSample(
            cp_state=cp,
            ocpp_state=ocpp,
            current_a=local,
            power_w=self.draw_a * n * self.voltage_v,
            energy_wh=self.meter_wh,
            session_energy_wh=car.delivered_wh if car is not None else None,
            charging_duration_s=(
                self.t_s - self.charging_since_s if self.charging_since_s is not None else None
            ),
            signalled_current_a=self.signalled_a,
            limit_a=self.offered_a,
            max_current_a=self.max_a,
            phases_in_use=n if self.draw_a > 0 else None,
            errors=("contactor_welded",) if self.stuck else (),
        )
