"""The one simulated electric vehicle, as an AC charge point sees it (no I/O, no clock of its own).

The vehicle reacts to the PWM duty cycle the EVSE signals (IEC 61851-1): it draws
``min(signalled, car max, taper limit)`` on its 1, 2 or 3 phases, always starting at the charge
point's L1 terminal. A change of the signalled current takes effect after ``response_delay_s``
(IEC 61851-1 allows up to 5 s; 0 follows at once). Below the 6 A minimum
(:data:`fuseguard.model.iec.MIN_CHARGE_CURRENT_A`) the car does not charge (CP B).

The battery holds ``stored_wh`` of ``battery_wh``; the energy drawn from the grid is stored times
``efficiency``. Above ``taper_soc`` the accepted current falls linearly towards 0 at 100 %. Once
the battery holds ``target_soc`` (or would accept less than ``full_current_a``) the vehicle is
*full*: it stops requesting energy (CP B, OCPP ``suspendedev`` while current is still offered).
``suspended`` is a car that does not take current for reasons of its own (its charge timer,
preconditioning done) although it is not full.

A scenario car that "wants ``energy_wh``" is :meth:`SimVehicle.wanting`: a battery of exactly
that size, empty, no taper, no losses, following at the next tick.
"""

from __future__ import annotations

from collections import deque

from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.numbers import finite
from fuseguard.model.phases import ALL_PHASES, Phases

#: Energy below which a battery counts as holding its target (Wh): float round-off, not physics.
FULL_TOLERANCE_WH = 1e-9


class SimVehicle:
    """An EV with a battery, plugged into (at most) one charge point.

    ``cable_rating_a`` is the rating of the vehicle's own charging cable; it matters only at a
    socket (a charge point without a fixed cable), where the charge point reads it from the
    proximity pin.
    """

    __slots__ = (
        "_applied_a",
        "_pending",
        "battery_wh",
        "cable_rating_a",
        "current_a",
        "drawn_wh",
        "efficiency",
        "full_current_a",
        "max_current_a",
        "name",
        "phases",
        "response_delay_s",
        "stored_wh",
        "suspended",
        "taper_soc",
        "target_soc",
    )

    def __init__(
        self,
        *,
        phases: int = 3,
        max_current_a: float = 16.0,
        battery_wh: float = 60_000.0,
        soc: float = 0.5,
        target_soc: float = 1.0,
        taper_soc: float = 0.8,
        full_current_a: float = 1.0,
        response_delay_s: float = 2.0,
        efficiency: float = 0.92,
        cable_rating_a: int = 32,
        name: str = "ev",
        suspended: bool = False,
    ) -> None:
        if phases not in (1, 2, 3):
            msg = f"a vehicle charges on 1, 2 or 3 phases, not {phases}"
            raise ValueError(msg)
        if not 0.0 <= soc <= 1.0:
            msg = f"soc must be within 0..1, got {soc}"
            raise ValueError(msg)
        if battery_wh <= 0 or max_current_a <= 0:
            msg = "battery_wh and max_current_a must be positive"
            raise ValueError(msg)
        self.phases = phases
        self.max_current_a = finite(max_current_a, "max_current_a", lo=0.0)
        self.battery_wh = finite(battery_wh, "battery_wh", lo=0.0)
        self.target_soc = finite(target_soc, "target_soc", lo=0.0, hi=1.0)
        self.taper_soc = finite(taper_soc, "taper_soc", lo=0.0, hi=1.0)
        self.full_current_a = finite(full_current_a, "full_current_a", lo=0.0)
        self.response_delay_s = finite(response_delay_s, "response_delay_s", lo=0.0)
        self.efficiency = finite(efficiency, "efficiency", lo=1e-6, hi=1.0)
        self.cable_rating_a = cable_rating_a
        self.name = name
        self.suspended = suspended
        #: Energy in the battery (Wh).
        self.stored_wh = soc * self.battery_wh
        #: Energy drawn from the grid by this car so far (Wh).
        self.drawn_wh = 0.0
        #: Current the car draws per active phase (A), as of the last :meth:`advance`.
        self.current_a = 0.0
        self._applied_a = 0.0
        self._pending: deque[tuple[float, float]] = deque()

    @classmethod
    def wanting(
        cls, energy_wh: float, *, phases: int = 3, max_current_a: float = 16.0, name: str = "ev"
    ) -> SimVehicle:
        """A car that wants exactly ``energy_wh`` from the grid (the scenario files' car)."""
        return cls(
            phases=phases,
            max_current_a=max_current_a,
            battery_wh=energy_wh,
            soc=0.0,
            taper_soc=1.0,
            response_delay_s=0.0,
            efficiency=1.0,
            name=name,
        )

    # --- inputs ------------------------------------------------------------------------------

    def signal(self, current_a: float, at_s: float) -> None:
        """The EVSE changed the PWM to ``current_a`` at monotonic time ``at_s``.

        The vehicle adopts it ``response_delay_s`` later (see :meth:`advance`); without a delay at
        once (its draw still changes only at the next :meth:`advance`).
        """
        if self.response_delay_s <= 0.0:
            self._pending.clear()
            self._applied_a = current_a
        else:
            self._pending.append((at_s + self.response_delay_s, current_a))

    def reset_signal(self) -> None:
        """Forget any signal (unplugged): the vehicle draws nothing until signalled again."""
        self._pending.clear()
        self._applied_a = 0.0
        self.current_a = 0.0

    def set_soc(self, soc: float) -> None:
        """Set the state of charge (0..1), e.g. from the admin API."""
        self.stored_wh = min(max(soc, 0.0), 1.0) * self.battery_wh

    # --- time --------------------------------------------------------------------------------

    def advance(self, now_s: float) -> None:
        """Apply every PWM change due by ``now_s`` and recompute the drawn current."""
        pending = self._pending
        if pending:
            while pending and pending[0][0] <= now_s:
                self._applied_a = pending.popleft()[1]
        self.current_a = self.wanted_a()

    @property
    def next_due_s(self) -> float | None:
        """When the next pending PWM change takes effect (None: nothing pending)."""
        return self._pending[0][0] if self._pending else None

    def charge(self, energy_wh: float) -> float:
        """Store ``energy_wh`` drawn from the grid (losses applied), up to the target; returns the
        grid energy the car actually took (Wh)."""
        target_wh = self.battery_wh * self.target_soc
        room_wh = target_wh - self.stored_wh
        if energy_wh <= 0.0 or room_wh <= 0.0:
            return 0.0
        stored = energy_wh * self.efficiency
        if stored >= room_wh:
            energy_wh = room_wh / self.efficiency
            self.stored_wh = target_wh
        else:
            self.stored_wh += stored
        self.drawn_wh += energy_wh
        return energy_wh

    # --- state -------------------------------------------------------------------------------

    @property
    def soc(self) -> float:
        """State of charge (0..1)."""
        return self.stored_wh / self.battery_wh

    @property
    def remaining_wh(self) -> float:
        """Grid energy the car still takes before it holds its target (Wh)."""
        return max(0.0, self.battery_wh * self.target_soc - self.stored_wh) / self.efficiency

    @property
    def applied_signal_a(self) -> float:
        """The PWM current the vehicle currently acts on (after its response delay)."""
        return self._applied_a

    @property
    def acceptable_current_a(self) -> float:
        """What the battery accepts now: the car maximum, tapered above ``taper_soc``."""
        stored, battery = self.stored_wh, self.battery_wh
        if battery * self.target_soc - stored <= FULL_TOLERANCE_WH:
            return 0.0
        soc = stored / battery
        if soc <= self.taper_soc:
            return self.max_current_a
        span = max(1e-9, 1.0 - self.taper_soc)
        return self.max_current_a * max(0.0, 1.0 - soc) / span

    @property
    def full(self) -> bool:
        """True once the battery holds its target or accepts less than ``full_current_a``."""
        acceptable = self.acceptable_current_a
        return acceptable <= 0.0 or acceptable < self.full_current_a

    @property
    def requesting(self) -> bool:
        """True while the vehicle requests energy (CP state C)."""
        return self.current_a > 0.0

    def wanted_a(self) -> float:
        """What the car would draw per phase at its applied PWM signal now: 0 below 6 A, when
        suspended or full, else min(signal, car max, taper); :attr:`acceptable_current_a`
        written out, as this runs on every tick."""
        signal = self._applied_a
        if signal < MIN_CHARGE_CURRENT_A or self.suspended:
            return 0.0
        stored, battery = self.stored_wh, self.battery_wh
        if battery * self.target_soc - stored <= FULL_TOLERANCE_WH:
            return 0.0
        top = self.max_current_a
        soc = stored / battery
        if soc > self.taper_soc:
            top = top * max(0.0, 1.0 - soc) / max(1e-9, 1.0 - self.taper_soc)
        if top <= 0.0 or top < self.full_current_a:
            return 0.0
        return signal if signal < top else top

    def terminal_current_a(self) -> Phases:
        """Draw per charge-point terminal: the first ``phases`` terminals carry ``current_a``."""
        return Phases.on(ALL_PHASES[: self.phases], self.current_a)


__all__ = ["FULL_TOLERANCE_WH", "SimVehicle"]
