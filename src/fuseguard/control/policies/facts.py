"""What one cycle knows about one plug, as the per-plug policies see it (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample


@dataclass(slots=True)
class PlugFacts:
    """One plug at one instant (read-only: the policies read it, nothing writes it; not frozen
    only because a frozen dataclass costs 4x to build, and the loop builds one per plug per
    cycle).

    ``sample`` is the newest good sample, ``fresh`` whether it is from the current or the
    previous poll (a measurement of now), ``grid_a`` its draw on grid phases (through the wiring
    rotation); ``written_a`` the setpoint last written to the charger (None: never),
    ``changed_at`` when that written value last changed (monotonic seconds).

    A charger that reports its measurements late (OCPP MeterValues every ``meter_interval_s``)
    and applies a limit late (the profile delay) has more: ``age_s``, how old the measurement in
    ``sample`` is now (0: a measurement of now); ``delay_s``, how long after a write the charger
    applies it; ``previous_a``, the value written before ``written_a``; ``expected_a``, what the
    plug is expected to draw now when the measurement predates the last limit taking effect
    (None: ``grid_a`` stands; see :mod:`.expected`); ``starting_a``, what a car offered current
    after a pause may draw beyond ``draw_a`` while its start is not measured yet (None: nothing;
    :func:`~fuseguard.control.policies.expected.start_offer_a`); ``unconfirmed_a``, the part of
    ``expected_a`` above the measurement after a raise not measured yet (the car may take the
    raise or not: the load estimator counts it only as far as the meter shows it);
    ``responding``, whether that raise took effect at most ``START_WINDOW_S`` ago (the car may
    still be answering it: its whole ``unconfirmed_a`` may explain a rise of the meter; after
    that it explains no more than it did, :meth:`unseen`; docs/safety.md, "Start window").
    """

    now: float
    sample: ChargerSample | None
    fresh: bool
    grid_a: Phases
    written_a: int | None
    changed_at: float
    age_s: float = 0.0
    delay_s: float = 0.0
    previous_a: int | None = None
    expected_a: Phases | None = None
    starting_a: Phases | None = None
    unconfirmed_a: Phases | None = None
    responding: bool = True

    @property
    def pending_a(self) -> Phases | None:
        """What the plug may draw beyond :attr:`counted_a`, unseen, and may have started to draw
        just now: a start or a raise not measured yet, within its window (None: nothing); the
        meter decides how much of it is drawn."""
        a = self.starting_a
        b = self.unconfirmed_a if self.responding else None
        if a is None or b is None:
            return a if b is None else b
        return a + b

    @property
    def late_a(self) -> Phases | None:
        """A raise not measured yet whose window is over (None: none): the car has answered it
        by now, so it explains no more of the meter than it did at the window's end."""
        return None if self.responding else self.unconfirmed_a

    @property
    def any_unseen(self) -> bool:
        """A start or a raise is not measured yet (:meth:`unseen` is not empty)."""
        return self.starting_a is not None or self.unconfirmed_a is not None

    def unseen(self) -> list[tuple[Phases, bool]]:
        """What the plug may draw beyond :attr:`counted_a` unseen, as (amount, late) pairs:
        :attr:`pending_a` (late False) and :attr:`late_a` (late True), those that are not None
        (the load estimator's ``starting``)."""
        if not self.any_unseen:
            return []  # neither a start nor a raise pending (most plugs, every decision)
        pairs = ((self.pending_a, False), (self.late_a, True))
        return [(a, late) for a, late in pairs if a is not None]

    @property
    def counted_a(self) -> Phases:
        """What the plug draws now for certain as far as it is known: :attr:`draw_a` without
        a raise not measured yet."""
        return self.draw_a if self.unconfirmed_a is None else self.grid_a

    @property
    def measured_at(self) -> float:
        """When the measurement in ``sample`` was taken (clock seconds)."""
        return self.now - self.age_s

    @property
    def settled_at(self) -> float:
        """When the written setpoint takes effect at the charger (clock seconds)."""
        return self.changed_at + self.delay_s

    @property
    def settled(self) -> bool:
        """The measurement was taken with the written setpoint in force: it can be judged
        against it (drawing above it, below it, nothing)."""
        return self.now - self.age_s >= self.changed_at + self.delay_s  # measured_at, settled_at

    @property
    def draw_a(self) -> Phases:
        """What the plug draws now, per grid phase, as well as it is known."""
        return self.grid_a if self.expected_a is None else self.expected_a

    def power_w(self, voltage_v: float) -> float:
        """The plug's power now: measured, or scaled to its expected draw (:attr:`draw_a`); a
        car expected to draw with nothing measured yet (it started after its MeterValues) at
        ``voltage_v`` per amp (before: 0 W, so a total-power meter took its draw for building
        load as soon as another car had a measured power). Only for a plug with a sample."""
        assert self.sample is not None
        power_w = self.sample.power_w
        expected = self.expected_a
        if expected is None or expected == self.grid_a or self.unconfirmed_a is not None:
            return power_w
        measured = self.grid_a.total
        if measured > 0.0 and power_w > 0.0:
            return power_w * expected.total / measured
        return expected.total * voltage_v


__all__ = ["PlugFacts"]
