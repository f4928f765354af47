"""A simulated electric vehicle as an AC charge point sees it (no I/O, no clock of its own).

The vehicle reacts to the PWM duty cycle the EVSE signals (IEC 61851-1): it draws
``min(signalled, car max, taper limit)`` on its 1, 2 or 3 phases, always starting at the charge
point's L1 terminal. A change of the signalled current takes effect after ``response_delay_s``
(default 2 s; IEC 61851-1 allows up to 5 s). Below 6 A signalled the car does not charge (CP B).

The battery fills from ``soc`` with the energy drawn (times ``efficiency``); above ``taper_soc``
the accepted current falls linearly towards 0 at 100 %. Once it would accept less than
``full_current_a`` (or reaches ``target_soc``) the vehicle is *full*: it stops requesting energy
(CP B, OCPP ``suspendedev`` while current is still offered).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fuseguard.model.phases import ALL_PHASES, Phases

#: Lowest PWM current at which a vehicle charges (IEC 61851-1).
MIN_CHARGE_CURRENT_A = 6.0


@dataclass(eq=False)
class SimVehicle:
    """An EV with a battery, plugged into (at most) one connector.

    ``cable_rating_a`` is the rating of the vehicle's own charging cable; it matters only at a
    socket (a connector without a fixed cable), where the charge point reads it from the
    proximity pin.
    """

    phases: int = 3
    max_current_a: float = 16.0
    battery_wh: float = 60_000.0
    soc: float = 0.5
    target_soc: float = 1.0
    taper_soc: float = 0.8
    full_current_a: float = 1.0
    response_delay_s: float = 2.0
    efficiency: float = 0.92
    cable_rating_a: int = 32
    name: str = "ev"
    _applied_signal_a: float = field(default=0.0, init=False)
    _pending: list[tuple[float, float]] = field(default_factory=list, init=False)
    _current_a: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.phases not in (1, 2, 3):
            msg = f"a vehicle charges on 1, 2 or 3 phases, not {self.phases}"
            raise ValueError(msg)
        if not 0.0 <= self.soc <= 1.0:
            msg = f"soc must be within 0..1, got {self.soc}"
            raise ValueError(msg)
        if self.battery_wh <= 0 or self.max_current_a <= 0:
            msg = "battery_wh and max_current_a must be positive"
            raise ValueError(msg)

    # --- inputs ------------------------------------------------------------------------------

    def signal(self, current_a: float, at_s: float) -> None:
        """The EVSE changed the PWM to ``current_a`` at monotonic time ``at_s``.

        The vehicle adopts it ``response_delay_s`` later (see :meth:`advance`).
        """
        self._pending.append((at_s + self.response_delay_s, current_a))

    def reset_signal(self) -> None:
        """Forget any signal (unplugged): the vehicle draws nothing until signalled again."""
        self._pending.clear()
        self._applied_signal_a = 0.0
        self._current_a = 0.0

    def set_soc(self, soc: float) -> None:
        """Set the state of charge (0..1), e.g. from the admin API."""
        self.soc = min(max(soc, 0.0), 1.0)

    # --- time --------------------------------------------------------------------------------

    def advance(self, now_s: float) -> None:
        """Apply every PWM change due by ``now_s`` and recompute the drawn current."""
        due = [item for item in self._pending if item[0] <= now_s]
        if due:
            self._applied_signal_a = due[-1][1]
            self._pending = [item for item in self._pending if item[0] > now_s]
        self._current_a = self._wanted_current_a()

    def charge(self, energy_wh: float) -> None:
        """Store ``energy_wh`` drawn from the grid (losses applied) in the battery."""
        if energy_wh > 0:
            self.soc = min(1.0, self.soc + energy_wh * self.efficiency / self.battery_wh)

    # --- state -------------------------------------------------------------------------------

    @property
    def applied_signal_a(self) -> float:
        """The PWM current the vehicle currently acts on (after its response delay)."""
        return self._applied_signal_a

    @property
    def acceptable_current_a(self) -> float:
        """What the battery accepts now: the car maximum, tapered above ``taper_soc``."""
        if self.soc >= self.target_soc:
            return 0.0
        if self.soc <= self.taper_soc:
            return self.max_current_a
        span = max(1e-9, 1.0 - self.taper_soc)
        return self.max_current_a * max(0.0, 1.0 - self.soc) / span

    @property
    def full(self) -> bool:
        """True once the battery accepts less than ``full_current_a``."""
        return self.acceptable_current_a < self.full_current_a

    @property
    def requesting(self) -> bool:
        """True while the vehicle requests energy (CP state C)."""
        return self._current_a > 0.0

    @property
    def current_a(self) -> float:
        """Current the vehicle draws per active phase (A), as of the last :meth:`advance`."""
        return self._current_a

    def terminal_current_a(self) -> Phases:
        """Draw per charge-point terminal: the first ``phases`` terminals carry ``current_a``."""
        return Phases.on(ALL_PHASES[: self.phases], self._current_a)

    def _wanted_current_a(self) -> float:
        if self._applied_signal_a < MIN_CHARGE_CURRENT_A or self.full:
            return 0.0
        return min(self._applied_signal_a, self.max_current_a, self.acceptable_current_a)
