"""Load estimation: the non-EV load per circuit and phase, and what the main meter should show.

Owns:

* :class:`LoadEstimator` — the non-EV load of every circuit of the tree, per phase. A metered
  circuit with a fresh sample gets its meter's reading minus the EV draws measured below it,
  split once per sample and kept until the next (docs/safety.md, "One meter sample, one split") (a
  per-phase meter: current minus EV currents through each charger's wiring rotation; a
  total-power meter: the configured phase assumption, ``worst`` = the whole non-EV power on every
  phase, ``balanced`` = a third on each). A metered circuit whose meter is lost gets the worst
  plausible load (:meth:`LoadEstimator.assumed`): the peak of the last ``peak_window_s``
  (per-minute maxima, recorded only from samples of the same instant as the chargers') plus the
  rise that history shows, carried on for as long as the meter has been lost (at most one more
  window), at least the highest non-EV load measured since start (a load that was on can switch
  on again unseen), and at least its fuse minus what its EVs are held at. Every other circuit gets
  its configured assumption; assumptions flow up the tree into every ancestor up to the first
  freshly metered one (whose meter already sees them). Uncontrollable EV draws (offline, stuck,
  not coming down) are added on the plug's whole path (:meth:`LoadEstimator.with_reserves`).
  ``main`` is metered by the grid meter, a sub-circuit by its own meter (one more
  :class:`Metered` each).
* :class:`LoadWatch` — the most the main meter should show until the next decision (the non-EV
  load plus every car at the higher of its old and new setpoint), and whether a new meter sample
  needs a decision at once: above the limit, above what our cars could explain, or a rise while
  none of our cars is ramping up.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fuseguard.model.circuits import CircuitTree
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import MeterSample


@dataclass(slots=True)
class EvDraw:
    """A charger's measured draw this cycle (only chargers with a fresh sample have one;
    read-only, built per plug per cycle, hence not frozen). As one of ``starting``
    (:meth:`LoadEstimator.update`): what the car may draw beyond it unseen, ``late`` for a raise
    whose start window is over."""

    circuit: str
    grid_a: Phases
    power_w: float
    late: bool = False
    #: the plug it belongs to ("": unnamed) and since when the limit in force at its charger
    #: stands (its last write plus the charger's delay; -inf: never written): a meter sample
    #: split while the charger was not measured takes its draw in later only if that limit
    #: stood before the sample (:meth:`LoadEstimator._rejoin`)
    plug: str = ""
    settled_at: float = -math.inf


@dataclass(frozen=True, slots=True)
class Metered:
    """One metered circuit this cycle.

    ``sample`` is the meter's newest good sample, ``fresh`` whether it is recent enough to
    measure with; ``record`` whether it was taken at the same instant as the chargers' samples
    (only those feed the peak history); ``held_a`` the fuse minus what the EVs below are held
    at when the meter is lost (the least non-EV load assumed then: under a lower EMS limit the
    EVs get that limit less it, docs/safety.md "Under an EMS limit"); ``sample_at`` the clock
    instant the sample stands for (its age judged by its own timestamp, not by its arrival),
    from which a lost meter's load is carried on; ``whole`` whether every charger below was
    measured this cycle (only then may a recorded value raise the highest load since start:
    an unmeasured charger's draw would count as building load for good).
    """

    circuit: str
    sample: MeterSample | None
    fresh: bool
    record: bool
    held_a: Phases
    sample_at: float | None = None
    whole: bool = True


class MinuteMaxima:
    """Per circuit, one per-phase maximum per minute over the last ``window_s``: the peak history
    of the meter-loss fallback (:class:`LoadEstimator`) and of the horizon plan's load forecast
    (:mod:`fuseguard.control.planner`)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._window_min = window_s / 60.0
        self._minutes: dict[str, deque[tuple[int, Phases]]] = {}

    def add(self, circuit: str, now: float, value: Phases) -> None:
        """Fold ``value`` into the maximum of ``now``'s minute; forget minutes beyond the window."""
        minute = int(now // 60.0)
        minutes = self._minutes.setdefault(circuit, deque())
        if minutes and minutes[-1][0] == minute:
            minutes[-1] = (minute, minutes[-1][1].maximum(value))
        else:
            minutes.append((minute, value))
        while minutes and minutes[0][0] < minute - self._window_min:
            minutes.popleft()

    def peak(self, circuit: str, floor: Phases = ZERO) -> Phases:
        """The highest value of the window, per phase, and at least ``floor``."""
        peak = floor
        for _, value in self._minutes.get(circuit, ()):
            peak = peak.maximum(value)
        return peak

    def rise_a_per_s(self, circuit: str) -> Phases:
        """The newest minute's maximum minus the oldest, per second between them (>= 0)."""
        minutes = self._minutes.get(circuit)
        if not minutes or minutes[-1][0] <= minutes[0][0]:
            return ZERO
        (first, old), (last, new) = minutes[0], minutes[-1]
        return ((new - old) / (60.0 * (last - first))).maximum(0.0)


@dataclass(frozen=True, slots=True)
class _Split:
    """One meter sample's split (docs/safety.md, "One meter sample, one split"): the sample,
    the non-EV load measured from it, what it attributed to cars not measured yet, the draws it
    subtracted, and whether every charger below was measured then (``whole``)."""

    sample: MeterSample
    value: Phases
    attributed: _Attributed
    below: list[EvDraw]
    whole: bool


@dataclass(frozen=True, slots=True)
class _Attributed:
    """What one meter sample's non-EV load attributed to cars not measured yet: to ``count``
    late raises (``late``) and to the starts and raises in their window (``window``)."""

    late: Phases = ZERO
    window: Phases = ZERO
    count: int = 0


class LoadEstimator:
    """Non-EV load per circuit and phase, with the peak history per metered circuit."""

    def __init__(
        self,
        tree: CircuitTree,
        *,
        voltage_v: float,
        phase_assumption: Literal["worst", "balanced"],
        peak_window_s: float,
    ) -> None:
        self._tree = tree
        self._voltage_v = voltage_v
        self._assumption = phase_assumption
        # per-minute maxima of the measured non-EV load, per metered circuit
        self._peaks = MinuteMaxima(peak_window_s)
        # per metered circuit: the highest non-EV load recorded since start (all chargers below
        # measured; else less what the unmeasured ones may draw), per phase
        self._highest: dict[str, Phases] = {}
        # per metered circuit: the split of the sample the non-EV load was last measured from
        self._measured: dict[str, _Split] = {}

    def measured(self, sample: MeterSample, draws: Iterable[EvDraw]) -> Phases:
        """Non-EV load through one meter, per phase (A, >= 0): a query, changes nothing."""
        # per-phase sums in plain floats: the same additions in the same order as summing
        # Phases values, without building one per draw
        e1 = e2 = e3 = ev_power = 0.0
        for draw in draws:
            a = draw.grid_a
            e1 += a.l1
            e2 += a.l2
            e3 += a.l3
            ev_power += draw.power_w
        ev = Phases(e1, e2, e3)
        if sample.current_a is not None:
            return (sample.current_a - ev).maximum(0.0)
        v = self._voltage_v
        non_ev_w = max(0.0, sample.power_w - (ev.total * v if ev_power <= 0 else ev_power))
        if self._assumption == "worst":
            return Phases.uniform(non_ev_w / v)
        return Phases.uniform(non_ev_w / (3 * v))

    def peak(self, circuit: str) -> Phases:
        """The highest non-EV load measured on ``circuit`` within the peak window."""
        return self._peaks.peak(circuit)

    def rise_a_per_s(self, circuit: str) -> Phases:
        """How fast the non-EV load on ``circuit`` rose over the peak window, per phase (A/s,
        >= 0): the newest per-minute maximum minus the oldest, over the minutes between them."""
        return self._peaks.rise_a_per_s(circuit)

    def highest(self, circuit: str) -> Phases:
        """The highest non-EV load recorded on ``circuit`` since start, per phase."""
        return self._highest.get(circuit, ZERO)

    def assumed(self, circuit: str, lost_for_s: float) -> Phases:
        """The worst plausible non-EV load on ``circuit`` after its meter has been lost for
        ``lost_for_s``: the peak of the window, plus the window's rise carried on for that long
        (at most one more window: beyond it the fallback's held EV current is the bound), and at
        least the highest load recorded since start: an oven or a welder that was on an hour ago
        can switch on again while the meter is gone, and nothing would show it (docs/safety.md,
        "Meter-loss fallback"; the soak's seed 19)."""
        horizon_s = min(max(0.0, lost_for_s), self._peaks.window_s)
        ramp = self.peak(circuit) + self.rise_a_per_s(circuit) * horizon_s
        return ramp.maximum(self.highest(circuit))

    def record(
        self,
        circuit: str,
        now: float,
        non_ev: Phases,
        *,
        whole: bool = True,
        unmeasured_a: Phases | None = None,
    ) -> None:
        """Add a measurement to ``circuit``'s per-minute peak history, and to its highest load
        since start: as it is when ``whole`` (every charger below was measured); else, when
        ``unmeasured_a`` is known (the most the chargers not measured may be drawing), what is
        left of it after taking that off: a bound from below, the building load was at least
        that (docs/safety.md, "Meter-loss fallback")."""
        if whole:
            self._highest[circuit] = self.highest(circuit).maximum(non_ev)
        elif unmeasured_a is not None:
            lower = (non_ev - unmeasured_a).maximum(0.0)
            self._highest[circuit] = self.highest(circuit).maximum(lower)
        self._peaks.add(circuit, now, non_ev)

    def unmeasured(self, draws: Iterable[tuple[str, Phases]]) -> dict[str, Phases]:
        """Per circuit, the most the chargers below it not measured this cycle may be drawing
        (``draws``: each one's circuit and its assumed draw, :meth:`PlugControl.offline_draw`);
        a circuit without such a charger is absent."""
        out: dict[str, Phases] = {}
        for circuit, amps in draws:
            for anc in self._tree.path(circuit):
                out[anc] = out.get(anc, ZERO) + amps
        return out

    def update(
        self,
        now: float,
        metered: Sequence[Metered],
        draws: Sequence[EvDraw],
        starting: Sequence[EvDraw] = (),
        unmeasured: Mapping[str, Phases] | None = None,
        unseen: Mapping[str, Phases] | None = None,
    ) -> dict[str, Phases]:
        """The non-EV load of every circuit this cycle; records peaks of fresh measurements.

        ``unmeasured``: per circuit, the most its chargers not measured this cycle may be
        drawing (:meth:`unmeasured`), taken off a value recorded as the highest load while not
        every charger below was measured. ``unseen``: the same for those of them that no
        reserve counts (reachable and controllable: :meth:`PlugControl.reserved_unmeasured`),
        added to the assumed load of a circuit whose meter is lost: a fresh meter sees their
        draw, a lost one does not (docs/safety.md, "A charger not measured while the meter is
        lost").

        ``starting``: cars whose start or raise is not measured yet, which may be drawing up to
        these amounts beyond ``draws`` unseen (``PlugFacts.unseen``); a meter's rise is theirs
        up to that much, a late raise's no more than it was (:meth:`_from_sample`;
        docs/safety.md, "Start window")."""
        tree = self._tree
        non_ev = {c.id: c.non_ev_load_a for c in tree}
        measured: set[str] = set()
        for m in metered:
            if m.fresh and m.sample is not None:
                value = self._from_sample(now, m, m.sample, draws, starting, unmeasured)
                measured.add(m.circuit)
            else:
                # worst plausible non-EV load, and the EVs together held at the fallback
                lost_for_s = 0.0 if m.sample_at is None else now - m.sample_at
                value = self.assumed(m.circuit, lost_for_s).maximum(m.held_a).maximum(0.0)
                if unseen is not None and m.circuit in unseen:
                    value = value + unseen[m.circuit]
            non_ev[m.circuit] = value
        # what is not measured flows up into the ancestors, up to the first measured one
        for c in tree:
            own = non_ev[c.id] if c.id in measured else c.non_ev_load_a
            if c.parent is None or own is ZERO or own == ZERO:
                continue
            for anc in tree.ancestors(c.id):
                if anc in measured:
                    break
                non_ev[anc] = non_ev[anc] + own
        return non_ev

    def _from_sample(
        self,
        now: float,
        m: Metered,
        sample: MeterSample,
        draws: Sequence[EvDraw],
        starting: Sequence[EvDraw] = (),
        unmeasured: Mapping[str, Phases] | None = None,
    ) -> Phases:
        """The non-EV load a fresh meter sample shows, measured once per sample.

        A decision on a sample already measured (the meter late, failing but not yet stale, or
        a decision between two samples) keeps the value measured when the sample was new: the
        chargers' draws of now are not what the meter saw then. Subtracting a car's draw raised
        since the sample from the old meter reading would take the raise for less building load
        and allow a further raise on it (seen in the soak: a meter that restarted, two raises
        on its last sample, 8.95 A over the fuse for one tick).
        """
        last = self._measured.get(m.circuit)
        if last is not None and last.sample is sample:
            return last.value if last.whole else self._rejoin(m, last, draws)
        below = [d for d in draws if self._tree.in_subtree(d.circuit, m.circuit)]
        plain = value = self.measured(sample, below)
        unseen = [d for d in starting if self._tree.in_subtree(d.circuit, m.circuit)]
        start = [d for d in unseen if not d.late]
        late = [d for d in unseen if d.late]
        kept = ZERO
        if unseen and last is not None:
            # Start window (docs/safety.md): a start or a raise not measured yet may be drawn
            # unseen. A late raise (its window over: the car has answered it) keeps explaining
            # what was attributed to it at the last sample (a raise just out of its window: what
            # the cars in their window were), at most its offer, and no more
            if late:
                before = last.attributed
                carried = before.late + before.window if len(late) > before.count else before.late
                kept = carried.minimum(plain - self.measured(sample, below + late))
                value = (plain - kept).maximum(0.0)
            if start:
                # the non-EV load rises no further than the meter shows beyond their offers: at
                # most the larger of the last value and the reading with every starting car at
                # its offer, never above the plain reading. Attributed: min(rise, offers)
                all_on = (self.measured(sample, below + start) - kept).maximum(0.0)
                value = value.minimum(all_on.maximum(last.value))
        if m.record:
            below_a = None if unmeasured is None else unmeasured.get(m.circuit, ZERO)
            self.record(m.circuit, now, value, whole=m.whole, unmeasured_a=below_a)
        window = (plain - value - kept).maximum(0.0)
        attributed = _Attributed(kept, window, len(late))
        self._measured[m.circuit] = _Split(sample, value, attributed, below, m.whole)
        return value

    def _rejoin(self, m: Metered, last: _Split, draws: Sequence[EvDraw]) -> Phases:
        """A sample split while a charger below was not measured, now that it is: its draw,
        counted as building load in the split, is taken out if the limit in force at its
        charger stood before the sample (docs/safety.md, "One meter sample, one split").

        Its draw now is then its draw at the sample as far as any split knows (a split
        subtracts the draws of the polls around its sample); only a limit changed after the
        sample may have moved it, and taking such a change for less building load is what the
        rule forbids. Without this, an edge starting beside OCPP charge points whose cars
        already charged took their draw for building load until the meter's next sample and
        paused every car on a tight site (round 15's start-up pause)."""
        sample_at = m.sample_at
        if sample_at is None:
            return last.value
        seen = {d.plug for d in last.below}
        newly = [
            d
            for d in draws
            if d.plug
            and d.plug not in seen
            and d.settled_at <= sample_at
            and self._tree.in_subtree(d.circuit, m.circuit)
        ]
        if not newly:
            return last.value
        below = last.below + newly
        taken = self.measured(last.sample, last.below) - self.measured(last.sample, below)
        value = (last.value - taken.maximum(0.0)).maximum(0.0)
        self._measured[m.circuit] = _Split(last.sample, value, last.attributed, below, False)
        return value

    def with_reserves(
        self, non_ev: dict[str, Phases], reserves: Iterable[tuple[str, Phases]]
    ) -> dict[str, Phases]:
        """Add the reserves ``(circuit, amps)`` of plugs that cannot be controlled (offline,
        stuck, not coming down) on every circuit up to main (in place; returns ``non_ev``).

        A meter-derived non-EV load has the draws of the plugs measured this cycle subtracted
        (:meth:`update`): for a stuck or uncontrollable plug that is still read, the reserve
        puts its draw back. An offline plug (not read this cycle) is NOT subtracted: the meter's
        non-EV load already INCLUDES whatever it draws, and its reserve comes on top (counted
        twice while the meter is fresh: conservative; once, the reserve, where no fresh meter
        sees it).
        """
        for circuit, amps in reserves:
            if amps is ZERO or amps == ZERO:  # (most reserves are ZERO itself)
                continue
            for anc in self._tree.path(circuit):
                non_ev[anc] = non_ev[anc] + amps
        return non_ev


def pv_surplus_w(
    sample: MeterSample | None, ev_power_w: float, pv: MeterSample | None = None
) -> float:
    """Power available to PV-mode plugs: the export at the grid meter plus what the EVs draw
    now, capped at the production a fresh PV meter ``pv`` measures (production is negative
    power; docs/devices/meters.md, precedence). Without a grid sample there is no surplus."""
    if sample is None:
        return 0.0
    surplus = max(0.0, ev_power_w - sample.power_w)
    if pv is not None:
        surplus = min(surplus, max(0.0, -pv.power_w))
    return surplus


def over(sample: MeterSample, limit: Phases, voltage_v: float) -> bool:
    """The meter shows its circuit above ``limit`` (total power: even when balanced)."""
    if sample.current_a is not None:
        return not sample.current_a.all_le(limit)
    return sample.power_w / (3.0 * voltage_v) > limit.max


def rose(before: MeterSample, after: MeterSample, voltage_v: float) -> bool:
    """The measured load rose by at least 1 A on some phase (or 1 A worth of total power)."""
    if before.current_a is not None and after.current_a is not None:
        return any(b - a >= 1.0 for a, b in zip(before.current_a, after.current_a, strict=True))
    return after.power_w - before.power_w >= voltage_v


class LoadWatch:
    """What the main meter should show until the next decision, and what needs one at once."""

    def __init__(self, *, voltage_v: float) -> None:
        self._voltage_v = voltage_v
        self.planned_a = Phases.uniform(math.inf)
        self._explained_a = self.planned_a + 1.0  # what our cars could explain: planned + 1 A

    def plan(self, non_ev_a: Phases, ev_a: Iterable[Phases]) -> None:
        """The decision's expectation: non-EV load plus every car's higher old/new setpoint."""
        planned = non_ev_a
        for amps in ev_a:
            planned = planned + amps
        self.planned_a = planned
        self._explained_a = planned + 1.0  # (per decision, not per meter sample)

    def urgent(
        self,
        previous: MeterSample | None,
        sample: MeterSample,
        *,
        limit_a: Phases,
        raised_recently: bool,
    ) -> bool:
        """Decide now (with the chargers' last samples) on this meter sample: it is over the
        limit, above what our cars could explain, or a rise while none of our cars ramps up."""
        v = self._voltage_v
        return (
            over(sample, limit_a, v)
            or over(sample, self._explained_a, v)
            or (previous is not None and rose(previous, sample, v) and not raised_recently)
        )


__all__ = [
    "EvDraw",
    "LoadEstimator",
    "LoadWatch",
    "Metered",
    "over",
    "pv_surplus_w",
    "rose",
]
