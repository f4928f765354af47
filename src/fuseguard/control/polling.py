"""Polling: the cadence at which the meters and the chargers are read (no I/O of its own).

Owns :class:`Poller` — the grid meter twice per meter period (a new telegram is seen within half a
period), the chargers at the rate their information needs (fast after a setpoint or state change,
slowly when steady; see ``docs/safety.md``), every read through :func:`~fuseguard.control.reading.
guarded` with its device's timeout, so a hanging device never holds up the others — and
:func:`poll_meter` for the extra meters (sub-circuits, PV) on their own cadence.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any

from fuseguard.control.phase import MeterPhase, PollKind
from fuseguard.control.ports import Charger, GridMeter
from fuseguard.control.reading import (
    METER_DROP_A,
    STEADY_A,
    ChargerReading,
    Failed,
    MeterCallback,
    MeterReading,
    SetpointOf,
    charger_steady,
    guarded,
)
from fuseguard.control.types import ControllerConfig
from fuseguard.control.waiting import wait_all
from fuseguard.model.clock import Clock
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import ChargerSample, MeterSample

RISE_FOLLOW_S = 30.0
"""How long after a setpoint change a charger still below it is read when the meter rises (a car
answers within 5 s, IEC 61851; a child edge holds a raise for its ``raise_after_s``, 5 s, and
ramps; an OCPP charge point applies a profile after its delay)."""
RISE_READS_MAX = 8
"""The most chargers one meter rise reads (the most recently changed first)."""
CHARGERS_LATE_S = 0.05
"""While the meter's phase is locked, the chargers are read at most this long after they are
due (one period after their last read), by an extra PLAIN poll if no EXPECT poll comes."""
MIN_EARLY_S = 0.005
"""A PLAIN poll while the meter's phase is locked reads the chargers from this long before
they are due (scheduling jitter)."""


class _Excursion:
    """The meter's extreme since it last moved METER_DROP_A away from it: ``sign`` -1 keeps
    the high (per-phase currents and total power) and reports a drop, +1 the low and a rise."""

    def __init__(self, sign: int, voltage_v: float) -> None:
        self._sign = sign
        self._voltage_v = voltage_v
        self._ref: tuple[Phases, float] | None = None

    def moved(self, sample: MeterSample) -> bool:
        """Take a sample; True when it moved METER_DROP_A from the extreme (which restarts)."""
        current = sample.current_a if sample.current_a is not None else ZERO
        power_w = sample.power_w
        if self._ref is None:
            self._ref = (current, power_w)
            return False
        up = self._sign > 0
        ref_a, ref_w = self._ref
        moved_a = 0.0
        if sample.current_a is not None:
            ref_a = ref_a.minimum(current) if up else ref_a.maximum(current)
            moved_a = (current - ref_a).max if up else (ref_a - current).max
        ref_w = min(ref_w, power_w) if up else max(ref_w, power_w)
        moved_a = max(moved_a, self._sign * (power_w - ref_w) / self._voltage_v)
        if moved_a < METER_DROP_A:
            self._ref = (ref_a, ref_w)
            return False
        self._ref = (current, power_w)
        return True


class Poller:
    """The poll loop (see module docstring). ``on_meter(previous, sample)`` is called for every
    new good meter sample; ``on_polled()`` after every full-period poll (the meter and the
    chargers due then).

    Charger cadence (``charger_idle_poll_s`` above the meter period): a charger is read every
    period until a read finds it steady (see :func:`charger_steady`) and drawing at most its
    setpoint (+ STEADY_A); then every ``charger_idle_poll_s``, and its sample is vouched for
    until the next read. It is read at the next period again, and its sample no longer vouched
    for beyond that instant, when its setpoint is raised, when its setpoint is lowered below its
    last measured draw (+ STEADY_A: the car must come down), or when the meter dropped by
    METER_DROP_A below its high since the last such sweep (the meter sees every charger's draw;
    see docs/safety.md). When the meter rose by METER_DROP_A above its low since the last rise,
    the steady chargers drawing below their setpoint (- STEADY_A), which may be the cause, are
    read too — in the same poll if the rise arrives with it, so that the decision does not take a
    car's ramp for building load and lower everyone. A charger with an error (a failed read or
    write) is read every period.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        config: ControllerConfig,
        meter: GridMeter,
        meter_reading: MeterReading,
        chargers: Mapping[str, Charger],
        readings: Mapping[str, ChargerReading],
        on_meter: MeterCallback,
        on_polled: Callable[[], None],
        setpoint_of: SetpointOf | None = None,
    ) -> None:
        self._clock = clock
        self._config = config
        self._meter = meter
        self._meter_reading = meter_reading
        self._chargers = dict(chargers)
        self._readings = dict(readings)
        self._on_meter = on_meter
        self._on_polled = on_polled
        self._setpoint_of = setpoint_of
        #: how long after a write each charger applies it (OCPP: the profile delay)
        self._limit_delay_s = {ch.id: ch.limit_delay_s for ch in config.chargers}
        period = config.meter_period_s
        self._idle_s = config.charger_idle_poll_s if config.charger_idle_poll_s > period else 0.0
        self._due = dict.fromkeys(self._chargers, -math.inf)  # next read of a steady charger
        self._read_at = dict.fromkeys(self._chargers, -math.inf)  # last read started
        self._read_sp: dict[str, int | None] = dict.fromkeys(self._chargers)  # setpoint then
        self._sweep = False  # the meter dropped: read every charger at the next period
        self._drop = _Excursion(-1, config.voltage_v)  # the high since the last sweep
        self._rise = False  # the meter rose: read the chargers below their setpoint
        self._climb = _Excursion(+1, config.voltage_v)  # the low since the last rise
        self._tick = 0.0
        self.phase = MeterPhase(period) if config.meter_phase_lock else None

    async def read_meter(self, kind: PollKind = PollKind.PLAIN) -> None:
        """Read the meter once and take the outcome (``kind``: why, for the phase lock)."""
        sent_at = self._clock.monotonic()
        result = await guarded(self._meter.read, device=self._meter_reading.name)
        previous = self._meter_reading.sample
        now = self._clock.monotonic()
        sample = self._meter_reading.update(result, now)
        phase = self.phase
        if phase is not None:
            if sample is not None:
                phase.observe(kind, sent_at, now, sample.timestamp.timestamp())
            elif isinstance(result, MeterSample) and result.stale:
                phase.repeated(kind, sent_at)
            else:
                phase.nothing(kind)
        if sample is not None:
            if self._idle_s and self._drop.moved(sample):
                self._sweep = True
            if self._idle_s and self._climb.moved(sample):
                self._rise = True
            self._on_meter(previous, sample)

    async def read_charger(self, pid: str) -> None:
        """Read one charger once, take the outcome and schedule its next read."""
        started = self._tick
        result = await guarded(self._chargers[pid].read, device=pid)
        reading = self._readings[pid]
        previous = reading.sample
        now = self._clock.monotonic()
        reading.update(result, now, now - started)
        if not self._idle_s:
            return
        if reading.sample is result and self._settled(pid, previous, reading.sample, started):
            self._due[pid] = started + self._idle_s
            reading.vouch(started + self._idle_s)
        else:
            self._due[pid] = -math.inf

    def _settled(
        self, pid: str, previous: ChargerSample | None, sample: ChargerSample, read_at: float
    ) -> bool:
        """The read shows the charger steady and following its last setpoint change (for a
        charger that reports late or applies a limit late: measured after the change took
        effect, the write plus its ``limit_delay_s``): at most its setpoint, or within STEADY_A
        above it once the car has had ``decrease_grace_s`` to come down. (Within the grace a
        draw above the setpoint is a car still coming down: a read taken before it followed a
        decrease of up to STEADY_A looked steady, and its sample was vouched for while the car
        drew less: the meter split's non-EV load too low by that much, an overload of 0.96 A
        for 2 s in the soak's seed 20.)"""
        if not charger_steady(previous, sample):
            return False
        if self._setpoint_of is None:
            return True
        written_a, changed_at = self._setpoint_of(pid)
        if written_a is None:
            return True
        age_s = sample.measured_age_s
        late = 0.0 < age_s < math.inf
        delay_s = self._limit_delay_s.get(pid, 0.0)
        if (late or delay_s > 0.0) and read_at - (age_s if late else 0.0) < changed_at + delay_s:
            # not measured since its setpoint took effect (the write plus the charger's limit
            # delay): a measurement taken in between shows the draw under the OLD limit. Read
            # every period until it is, so a measurement it was asked for (TriggerMessage) ends
            # the start window at once (docs/safety.md, "Start window"); before round 11 a
            # measurement newer than the write settled an OCPP charger whose raise was pending,
            # its old sample was vouched for 10 s (bench/ocpp.py: a first step of ~10 s)
            return False
        draw_a = sample.current_a.max
        if draw_a <= written_a:
            return True
        following_s = read_at - changed_at
        return draw_a <= written_a + STEADY_A and following_s >= self._config.decrease_grace_s

    def _rise_candidates(self, now: float, skip: Collection[str | None]) -> set[str]:
        """The chargers a meter rise reads: those whose setpoint changed within RISE_FOLLOW_S
        and whose last sample draws less than it allows (they may be taking it now, unseen),
        at most RISE_READS_MAX, the most recently changed first. (A car that has drawn less than
        its offer for longer is not read on every rise, and a rise never reads a whole large
        site: with many such cars every building load step would read them all.)"""
        if self._setpoint_of is None:
            return set()
        found: list[tuple[float, str]] = []
        for pid, reading in self._readings.items():
            if pid in skip:
                continue
            sample = reading.sample
            written_a, changed_at = self._setpoint_of(pid)
            if (
                sample is not None
                and written_a is not None
                and now - changed_at <= RISE_FOLLOW_S
                and sample.current_a.max < written_a - STEADY_A
            ):
                found.append((changed_at, pid))
        found.sort(reverse=True)
        return {pid for _, pid in found[:RISE_READS_MAX]}

    def _due_chargers(self, now: float, skip: Collection[str | None] = ()) -> list[str]:
        """The chargers to read in the poll at ``now`` (all of them without an idle cadence),
        leaving out ``skip`` (read in this poll already)."""
        if not self._idle_s:
            return list(self._chargers)
        sweep, self._sweep = self._sweep, False
        rising = self._rise_candidates(now, skip) if self._rise else set()
        self._rise = False
        slack = self._config.meter_period_s / 4.0  # scheduling jitter
        due: list[str] = []
        for pid in self._chargers:
            if pid in skip:
                continue
            early = now + slack < self._due[pid]
            quiet = self._readings[pid].error is None and not self._changed_since_read(pid)
            if early and not sweep and quiet and pid not in rising:
                continue
            if early:
                self._readings[pid].doubt(now)
            elif self._due[pid] > -math.inf and quiet:
                self._readings[pid].vouch(now)  # its read is due: the sample stands until it lands
            self._read_at[pid] = now
            if self._setpoint_of is not None:
                self._read_sp[pid] = self._setpoint_of(pid)[0]
            due.append(pid)
        return due

    def _changed_since_read(self, pid: str) -> bool:
        """The setpoint was raised, or lowered below the draw, since the last read started."""
        if self._setpoint_of is None:
            return False
        written_a, changed_at = self._setpoint_of(pid)
        if changed_at < self._read_at[pid]:
            return False
        before = self._read_sp[pid]
        sample = self._readings[pid].sample
        if written_a is None or before is None or written_a > before or sample is None:
            return True
        return written_a < sample.current_a.max + STEADY_A

    def _read(self, key: str | None, kind: PollKind) -> Coroutine[Any, Any, None]:
        return self.read_meter(kind) if key is None else self.read_charger(key)

    def _plan(self, now: float, last_at: float, chargers_at: float) -> tuple[float, PollKind]:
        """The next meter poll: on the phase lock's schedule, or every half period. While the
        lock's schedule is disturbed (a probe, a chase, a skipped EXPECT poll), a poll that
        would leave the chargers waiting past their due time gives way to a PLAIN poll (meter
        and chargers) when they are due: the chargers stay read once per period."""
        if self.phase is None:
            return last_at + self._config.meter_period_s / 2.0, PollKind.PLAIN
        at, kind = self.phase.next_poll(now, last_at)
        late = at > chargers_at + CHARGERS_LATE_S
        if late and kind is not PollKind.EXPECT and self.phase.locked():
            return max(chargers_at, now), PollKind.PLAIN
        return at, kind

    def _chargers_due_now(self, now: float, kind: PollKind, chargers_at: float) -> bool:
        """The chargers are read once per period: with the EXPECT poll while the meter's phase
        is locked (a fresh telegram and fresh charger samples of the same instant), else with
        every other poll; never more than 1.5 periods apart. A PLAIN poll while locked stands
        in for an EXPECT poll that could not be planned in time (the planning waited for a slow
        meter answer, or the lock moved): it reads them once they are due, not half a period
        later."""
        period = self._config.meter_period_s
        if kind is PollKind.EXPECT:
            return now >= chargers_at - 0.75 * period
        locked = self.phase is not None and self.phase.locked()
        if locked and kind is PollKind.PLAIN:
            return now >= chargers_at - MIN_EARLY_S
        if locked and now < chargers_at + period / 4.0:
            return False  # (a probe that caught the telegram early moves them to HALF once)
        return now >= chargers_at - period / 4.0

    async def run(self) -> None:
        """Poll until cancelled (key ``None`` is the meter).

        After a poll with the chargers the decision wakes (``on_polled``) once their answers
        are in or ``poll_wait_s`` has passed; while the meter's telegram is being chased (late
        at its EXPECT poll) it waits for the telegram too, at most until the chase ends."""
        inflight: dict[str | None, tuple[asyncio.Task[None], float]] = {}
        chargers_at = -math.inf  # when the chargers are due next
        polled: tuple[float, list[str | None]] | None = None  # decision pending
        at, kind = self._clock.monotonic(), PollKind.PLAIN
        wait_s = self._config.poll_wait_s
        try:
            while True:
                await self._clock.sleep(at - self._clock.monotonic())
                started = self._clock.monotonic()
                self._tick = started
                full = self._chargers_due_now(started, kind, chargers_at)
                keys: list[str | None] = [None]
                if full:
                    chargers_at = started + self._config.meter_period_s
                    keys.extend(self._due_chargers(started))
                if self.phase is not None:
                    self.phase.issued(kind)
                self._start(keys, kind, started, inflight)
                if full:
                    polled = (started, keys)
                meter = inflight.get(None)
                if meter is not None and meter[1] == started:  # plan on the meter's answer
                    await self._wait_for([meter[0]], wait_s)
                at, kind = self._plan(self._clock.monotonic(), started, chargers_at)
                if polled is not None and kind is not PollKind.CHASE:
                    since, polled_keys = polled
                    polled = None
                    # the chargers' answers are waited for until the next meter poll at most
                    until = min(since + wait_s, at)
                    tasks = [inflight[k][0] for k in polled_keys if k in inflight]
                    await self._wait_for(tasks, max(0.0, until - self._clock.monotonic()))
                    if self._rise:  # the meter rose with this poll: read what may explain it
                        await self._read_rise_causes(since, polled_keys, inflight, until)
                    self._on_polled()  # meter and chargers read at the same instant
        finally:
            for task, _ in inflight.values():
                task.cancel()

    def _start(
        self,
        keys: list[str | None],
        kind: PollKind,
        started: float,
        inflight: dict[str | None, tuple[asyncio.Task[None], float]],
    ) -> None:
        """Start a read of every key (``None``: the meter) not still in flight."""
        for key in keys:
            running = inflight.get(key)
            if running is not None and not running[0].done():
                self._abandon_if_late(key, running, started)
                continue
            inflight[key] = (asyncio.create_task(self._read(key, kind)), started)

    async def _read_rise_causes(
        self,
        started: float,
        polled: list[str | None],
        inflight: dict[str | None, tuple[asyncio.Task[None], float]],
        until: float,
    ) -> None:
        """Read, by ``until``, the chargers that may explain a rise this poll's meter read saw."""
        extra: list[str | None] = list(self._due_chargers(started, skip=polled))
        self._start(extra, PollKind.PLAIN, started, inflight)
        left_s = until - self._clock.monotonic()
        if extra and left_s > 0:
            await self._wait_for([inflight[k][0] for k in extra if k in inflight], left_s)

    def _abandon_if_late(
        self, key: str | None, running: tuple[asyncio.Task[None], float], now: float
    ) -> None:
        """Cancel a read that has been waiting longer than its device's timeout."""
        task, since = running
        cfg = self._config
        timeout = cfg.meter_timeout_s if key is None else cfg.charger_timeout_s
        if now - since < timeout:
            return
        task.cancel()
        reason = f"no answer within {timeout:g} s"
        if key is None:
            self._meter_reading.failed(reason)
        else:
            self._readings[key].failed(reason)

    async def _wait_for(self, tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
        """Wait until every task is done or ``timeout_s`` of clock time has passed (the loop
        passes of ``asyncio.wait`` over two helper tasks, without the tasks: :mod:`.waiting`)."""
        await wait_all(self._clock, tasks, timeout_s)


async def _read_within(
    clock: Clock, meter: GridMeter, name: str, timeout_s: float
) -> MeterSample | Failed:
    """One guarded read bounded by ``timeout_s`` of clock time (virtual time too)."""
    read = asyncio.ensure_future(guarded(meter.read, device=name))
    timer = asyncio.ensure_future(clock.sleep(timeout_s))
    try:
        await asyncio.wait({read, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        answered = read.done()
        if not answered:
            read.cancel()
    return read.result() if answered else Failed(f"no answer within {timeout_s:g} s")


async def poll_meter(
    *,
    clock: Clock,
    meter: GridMeter,
    reading: MeterReading,
    timeout_s: float,
    on_sample: MeterCallback,
) -> None:
    """Poll one further meter (a circuit's, the PV meter) until cancelled: twice per its period,
    each read bounded by ``timeout_s``, so a hanging meter only goes stale and holds up nothing."""
    half = reading.period_s / 2.0
    while True:
        started = clock.monotonic()
        result = await _read_within(clock, meter, reading.name, timeout_s)
        previous = reading.sample
        sample = reading.update(result, clock.monotonic())
        if sample is not None:
            on_sample(previous, sample)
        await clock.sleep(max(0.0, half - (clock.monotonic() - started)))


__all__ = ["Poller", "poll_meter"]
