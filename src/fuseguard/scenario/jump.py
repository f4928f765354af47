"""Exact jumps over quiet stretches of a scenario run (issue 18 item 2; ``docs/scenarios.md``).

A stretch is *quiet* when nothing the site, the controller or the recorder sees can change: no
car is plugged in, no device fault and no Direct EVSE target is in force, the main limit and
every non-EV load (profiles and base steps) are constant, the PV plant is dark, and the recorder
has seen the same site state (every charger's offer and draw, the non-EV loads) for at least the
settling time. Settled that long with constant inputs, the controller and the virtual devices run
a periodic orbit: every cadence they have (site tick, meter period, charger idle reads,
rewrites and the charger watchdogs' refreshes and lease renewals, the per-minute peak history,
the EMS keep-alive, further meters' and OCPP meter-value periods) divides the orbit period P,
and whatever they remember of the time before (the peak window, the policies' pauses, probes
and minimum run/pause times, the flex watchdog) is older than the settling time (a charger's
watchdog counts from the last write, which the orbit repeats). The state k*P seconds later is
then the state now, moved k*P later.

So instead of running through those seconds, the runner moves the *world* — everything the
scenario prescribes over time: load profiles, PV, limits, targets, cars and events — k*P earlier
(``world time = clock time + offset``), replays the recorder over the skipped ticks (the site's
state is constant, so every sum gets the same terms in the same order as in the tick run) and
lets the clock run on. The controller, the devices and every timer they hold never notice: they
carry on from a state that equals the tick run's, translated.

The jump never starts closer than the margin M before the next change (an arrival, an event, a
load breakpoint, sunrise, a limit change): the timers the runner re-keys keep their order
against every timer the controller holds (all shorter than M).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from fuseguard.control.types import ControllerConfig
from fuseguard.model.clock import TimerHandle, VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.scenario.config import Scenario
from fuseguard.scenario.dayjump import DayJump
from fuseguard.scenario.schedule import Schedule
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import BaseLoad, PvPlant, SiteModel

#: the longest orbit period a jump uses (longer: the run goes tick by tick)
MAX_PERIOD_S = 3600
#: the per-minute peak history of the non-EV load (``control/load.py``) is keyed by minute
PEAK_BUCKET_S = 60.0


@dataclass(frozen=True, slots=True)
class SimProgress:
    """How far a run has got (``simulate(progress=...)``): world seconds done of ``end_s``, and
    what was jumped so far. Told between two steps of the clock, outside the simulated system
    (the callback must not touch the run)."""

    world_s: float
    end_s: float
    jumped_s: float = 0.0
    days_jumped: int = 0


#: a run's progress listener (``simulate(progress=...)``)
ProgressFn = Callable[[SimProgress], None]


@dataclass(frozen=True, slots=True)
class JumpTiming:
    """The orbit period P, the settling time S and the margin M of a run (seconds)."""

    period_s: float
    settle_s: float
    margin_s: float


def _lcm(values: Iterable[float]) -> float | None:
    """The least common multiple of positive cadences (None: one is not a whole second)."""
    out = 1
    for v in values:
        f = Fraction(v).limit_denominator(1000)
        if f <= 0 or f.denominator != 1 or float(f) != v:
            return None
        out = math.lcm(out, f.numerator)
    return float(out)


def jump_timing(
    sc: Scenario,
    cfg: ControllerConfig,
    tick_s: float,
    meter_periods: Sequence[float],
    charger_periods: Sequence[float] = (),
) -> JumpTiming | None:
    """P, S and M of ``sc`` run by the controller of ``cfg`` (None: no exact jump possible).

    ``tick_s`` is the site's tick, ``meter_periods`` the refresh periods of the scenario's
    meters, ``charger_periods`` the cadences that keep the chargers' own watchdogs quiet (the
    writer's refresh of a watchdog shorter than its rewrite interval, an OCPP lease renewal;
    ``ConnectorCharger.watchdog_cadence_s``, inf: none); the site tick must be a binary fraction
    of a second so that tick times add up exactly (the jumped run's times are the tick run's,
    bit for bit). The watchdog itself restarts with every write, so a quiet orbit never lets
    it run out; its timeout is one of the timers the margin covers.
    """
    if Fraction(tick_s).denominator & (Fraction(tick_s).denominator - 1):
        return None
    cadences = [PEAK_BUCKET_S, cfg.meter_period_s, cfg.rewrite_interval_s]
    cadences.append(sc.site.keepalive_period_s)
    if cfg.charger_idle_poll_s > 0:
        cadences.append(cfg.charger_idle_poll_s)
    cadences += [p for p in meter_periods if p > 0]
    cadences += [t.period_s for t in cfg.circuit_meter_timing.values()]
    if cfg.pv_meter_timing is not None:
        cadences.append(cfg.pv_meter_timing.period_s)
    cadences += [ch.meter_interval_s for ch in sc.chargers if ch.meter_interval_s > 0]
    cadences += [p for p in charger_periods if 0 < p < math.inf]
    period = _lcm([max(c, tick_s) for c in cadences])
    if period is None or period > MAX_PERIOD_S or period % tick_s:
        return None
    memory = max(
        cfg.peak_window_s + PEAK_BUCKET_S,
        cfg.min_run_s,
        cfg.min_pause_s,
        cfg.idle_reprobe_s,
        cfg.underuse_probe_s,
        cfg.pv_enable_delay_s,
        cfg.pv_disable_delay_s,
        cfg.recently_started_window_s,
        cfg.meter_stale_after_s,
        sc.site.flex_timeout_s + sc.site.keepalive_period_s,
    )
    timers = max(
        sc.site.flex_timeout_s,
        sc.site.keepalive_period_s,
        cfg.meter_timeout_s,
        cfg.write_timeout_s,
        cfg.charger_timeout_s,
        sc.site.slow_delay_s,
        sc.site.charger_safe_timeout_s,
        *cadences,
    )
    return JumpTiming(period_s=period, settle_s=memory + 2 * period, margin_s=timers + period)


def _constant_span(points: Sequence[tuple[float, Phases]], t: float) -> tuple[float, float]:
    """The longest interval around ``t`` over which the piecewise linear profile is constant
    (``(t, t)`` when it changes at ``t``)."""
    times = [p for p, _ in points]
    i = bisect.bisect_right(times, t)  # points[i-1] <= t < points[i]
    lo_i = max(i - 1, 0)
    hi_i = min(i, len(points) - 1)
    if i not in (0, len(points)) and points[i - 1][1] != points[i][1]:
        return (t, t)
    value = points[lo_i][1]
    lo = -math.inf
    j = lo_i
    while j > 0:
        if points[j - 1][1] != value:
            lo = points[j][0]
            break
        j -= 1
    hi = math.inf
    j = hi_i
    while j < len(points) - 1:
        if points[j + 1][1] != value:
            hi = points[j][0]
            break
        j += 1
    return (lo, hi)


def _dark_span(pv: PvPlant | None, t: float) -> tuple[float, float]:
    """The night around ``t`` (the PV plant yields nothing), or ``(t, t)`` by day."""
    if pv is None:
        return (-math.inf, math.inf)
    day0 = math.floor(t / 86400.0) * 86400.0
    day_s = t - day0
    if pv.sunrise_s < day_s < pv.sunset_s:
        return (t, t)
    if day_s <= pv.sunrise_s:
        return (day0 - 86400.0 + pv.sunset_s, day0 + pv.sunrise_s)
    return (day0 + pv.sunset_s, day0 + 86400.0 + pv.sunrise_s)


class QuietWorld:
    """When the world the scenario prescribes stays constant (cars, events, loads, PV, limits)."""

    def __init__(self, sc: Scenario, schedule: Schedule, pv: PvPlant | None) -> None:
        changes: set[float] = set()
        for car in sc.cars:
            changes.update((car.arrive_s, car.depart_s))
        for ev in sc.events:
            changes.add(ev.at_s)
            for part in (ev.fault, ev.base_step, ev.target):
                if part is not None:
                    changes.add(ev.at_s + part.duration_s)
                    changes.add(ev.at_s + math.ceil(part.duration_s))
        changes.update(le.t_s for le in schedule.limit_events)
        self._changes = sorted(changes)
        self._profiles = [sc.base_load.profile()] + [load.profile() for load in sc.circuit_loads]
        self._pv = pv
        self._targets = schedule.targets

    def span(self, t: float) -> tuple[float, float]:
        """The interval around ``t`` with no change of the world's inputs."""
        i = bisect.bisect_right(self._changes, t)
        lo = self._changes[i - 1] if i > 0 else -math.inf
        hi = self._changes[i] if i < len(self._changes) else math.inf
        for points in self._profiles:
            p_lo, p_hi = _constant_span(points, t)
            lo, hi = max(lo, p_lo), min(hi, p_hi)
        d_lo, d_hi = _dark_span(self._pv, t)
        return (max(lo, d_lo), min(hi, d_hi))

    def target_in_force(self, t: float) -> bool:
        """A Direct EVSE target window covers ``t``."""
        return any(w.start_s <= t < w.end_s + 1.0 for w in self._targets)


class SteadyWatch:
    """Since when the site state the recorder reads has stayed the same (site tick listener)."""

    def __init__(
        self,
        connectors: Sequence[ChargePoint],
        loads: Sequence[BaseLoad],
        pv: PvPlant | None,
        busy: Callable[[], bool],
    ) -> None:
        self._conns = list(connectors)
        self._loads = list(loads)
        self._pv = pv
        self._busy = busy
        self._sig: tuple[object, ...] | None = None
        self.since = 0.0

    def on_tick(self, t: float) -> None:
        """Note the state after the tick at world time ``t``."""
        if self._busy():
            self._sig = None
            self.since = t
            return
        sig = (
            tuple(c.offered_a for c in self._conns),
            tuple(c.grid_tuple for c in self._conns),
            tuple(load.grid_current_a() for load in self._loads),
            None if self._pv is None else self._pv.power_w,
        )
        if sig != self._sig:
            self._sig = sig
            self.since = t


class _WorldTimer:
    __slots__ = ("done", "fn", "handle", "t_s")

    def __init__(self, t_s: float, fn: Callable[[], None]) -> None:
        self.t_s = t_s
        self.fn = fn
        self.done = False
        self.handle: TimerHandle | None = None

    def fire(self) -> None:
        self.done = True
        self.fn()


class WorldTime:
    """The world's time over the run's clock (``world = clock + offset_s``) and the world's
    timers (the scenario's timetable: cars, events, the ends of faults and steps)."""

    def __init__(self, clock: VirtualClock, shifted: Sequence[BaseLoad | PvPlant]) -> None:
        self.clock = clock
        self.offset_s = 0.0
        self._shifted = list(shifted)
        self._pending: list[_WorldTimer] = []

    def now(self) -> float:
        """World time now."""
        return self.clock.monotonic() + self.offset_s

    def at(self, t_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at world time ``t_s``."""
        timer = _WorldTimer(t_s, fn)
        timer.handle = self.clock.call_later(t_s - self.now(), timer.fire)
        self._pending.append(timer)

    def shift(self, delta_s: float) -> None:
        """Move the world ``delta_s`` ahead of the clock: the profiles and PV read later, the
        pending timers fire earlier (re-armed in the order they were set, which is their order
        at equal deadlines)."""
        self.offset_s += delta_s
        for part in self._shifted:
            part.shift_s = self.offset_s
        self._pending = [t for t in self._pending if not t.done]
        for timer in self._pending:
            assert timer.handle is not None
            timer.handle.cancel()
            timer.handle = self.clock.call_later(timer.t_s - self.now(), timer.fire)

    def owns(self, callback: object) -> bool:
        """``callback`` (a clock timer's) is one of the world's timers."""
        return isinstance(getattr(callback, "__self__", None), _WorldTimer)

    def skip(self, delta_s: float) -> None:
        """Move the world ``delta_s`` ahead, dropping the timers due before then (whole days
        skipped, ``scenario/dayjump.py``: the recorder accounts for what they did)."""
        end = self.now() + delta_s
        for timer in self._pending:
            if not timer.done and timer.t_s < end:
                assert timer.handle is not None
                timer.handle.cancel()
                timer.done = True
        self.shift(delta_s)


class Jumper:
    """Runs the clock to the end, jumping over quiet stretches (see the module docstring)."""

    def __init__(
        self,
        *,
        timing: JumpTiming,
        world: QuietWorld,
        time: WorldTime,
        site: SiteModel,
        watch: SteadyWatch,
        record: Callable[[float], None],
        idle: Callable[[float], bool],
        days: DayJump | None = None,
    ) -> None:
        self.timing = timing
        self._days = days
        self._world = world
        self._time = time
        self._site = site
        self._watch = watch
        self._record = record
        self._idle = idle
        self.jumped_s = 0.0
        self.jumps = 0
        #: whole days skipped by day jumps (``scenario/dayjump.py``)
        self.days_jumped = 0
        #: told after every step (``simulate(progress=...)``; None: nobody listens)
        self.progress: ProgressFn | None = None

    async def run_until(self, end_s: float) -> None:
        """Run to world time ``end_s``, checking for a jump every period."""
        time = self._time
        step = self.timing.period_s
        while (now := time.now()) < end_s:
            until = min(end_s, now + step) - time.offset_s
            await time.clock.run_until(until)
            done = until >= end_s - time.offset_s  # the end (also when offset arithmetic rounds)
            if not done:
                self._try(end_s)
            if self.progress is not None:
                w = end_s if done else min(time.now(), end_s)
                self.progress(SimProgress(w, end_s, self.jumped_s, self.days_jumped))
            if done:
                break

    def _try(self, end_s: float) -> None:
        w = self._time.now()
        if not self._idle(w):
            return
        tm = self.timing
        lo, hi = self._world.span(w)
        if w - max(lo, self._watch.since) < tm.settle_s:
            return
        margin_ok = min(hi, end_s) - w >= tm.margin_s  # re-armed world timers keep their order
        if self._days is not None and margin_ok and (days := self._days.days_at(w)):
            self._days.replay(w, days)
            delta_s = days * self._days.day_s
            self._time.skip(delta_s)
            self._watch.since += delta_s
            self.jumped_s += delta_s
            self.jumps += 1
            self.days_jumped += days
            return
        k = math.floor((min(hi, end_s) - tm.margin_s - w) / tm.period_s)
        if k < 1:
            return
        self._jump(k * tm.period_s)

    def _jump(self, delta_s: float) -> None:
        tick = self._site.period_s
        last = self._site.t_s + self._time.offset_s  # the last tick recorded
        self._time.shift(delta_s)
        n = round(delta_s / tick)
        for k in range(1, n + 1):
            self._record(last + k * tick)
        self.jumped_s += delta_s
        self.jumps += 1


__all__ = [
    "JumpTiming",
    "Jumper",
    "ProgressFn",
    "QuietWorld",
    "SimProgress",
    "SteadyWatch",
    "WorldTime",
    "jump_timing",
]
