"""The phase-locked meter poll against meters that could confuse it, in virtual time.

Each case runs the real :class:`~fuseguard.control.polling.Poller` with ``meter_phase_lock`` on
against a meter on the poller's clock (telegrams published at given instants with their own
timestamps, repeats flagged ``stale`` as the CEMM driver does) and checks what the safety
argument needs (``docs/safety.md``): the meter is polled at least every half period, every
telegram is seen no later than plain half-period polling would see it, the decision wakes every
period, an outage still makes the reading unavailable and stale; and what the lock is for: once
the meter is regular again, its telegrams are seen just after publication.
"""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from fuseguard.control.phase import MARGIN_S
from fuseguard.control.polling import Poller
from fuseguard.control.ports import DeviceConnectionError
from fuseguard.control.reading import ChargerReading, MeterReading
from fuseguard.control.types import ChargerSpec
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample
from fuseguard.model.status import CpState

from .doubles import ScriptedDevice, charger_sample, config, run_poller_for

LATENCY_S = 0.003  # the meter's answer
HALF_S = 0.5  # plain polling: every half period
LOCKED_S = MARGIN_S + 0.03  # publication -> seen, once locked


class QuirkyMeter:
    """A meter publishing ``telegrams`` ((publication on our clock, own timestamp), in order).

    ``arrival``: it stamps every answer with the read's own instant (a Modbus meter); ``down``:
    windows (start, end) in which it refuses the connection; ``slow``: windows in which it
    answers after ``slow_s`` with the telegram of the instant it was asked."""

    def __init__(
        self,
        clock: VirtualClock,
        telegrams: list[tuple[float, float]],
        *,
        arrival: bool = False,
        down: tuple[tuple[float, float], ...] = (),
        slow: tuple[tuple[float, float], ...] = (),
        slow_s: float = 5.0,
    ) -> None:
        self.clock = clock
        self.telegrams = telegrams
        self.arrival = arrival
        self.down = down
        self.slow = slow
        self.slow_s = slow_s
        self.reads: list[float] = []
        self.first_seen: dict[float, float] = {}  # own timestamp -> first answer with it
        self._last: float | None = None
        self._start = clock.now() - timedelta(seconds=clock.monotonic())

    def _newest(self, t: float) -> float | None:
        newest = None
        for pub, ts in self.telegrams:
            if pub > t:
                break
            newest = ts
        return newest

    async def read(self) -> MeterSample:
        t = self.clock.monotonic()
        self.reads.append(t)
        if any(a <= t < b for a, b in self.down):
            await self.clock.sleep(LATENCY_S)
            msg = "meter restarting"
            raise DeviceConnectionError(msg)
        ts = self._newest(t + LATENCY_S / 2.0)
        slow = any(a <= t < b for a, b in self.slow)
        await self.clock.sleep(self.slow_s if slow else LATENCY_S)
        now = self.clock.monotonic()
        if self.arrival:
            ts = now - LATENCY_S / 2.0
        if ts is None:
            msg = "no telegram yet"
            raise DeviceConnectionError(msg)
        stale = self._last is not None and ts <= self._last
        if not stale:
            self._last = ts
            self.first_seen.setdefault(ts, now)
        return MeterSample(
            timestamp=self._start + timedelta(seconds=ts), power_w=1000.0, stale=stale
        )


class TimedCharger(ScriptedDevice):
    """A charger that notes when it is read."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(answers=[charger_sample(CpState.C, Phases(6, 6, 6))])
        self.clock = clock
        self.read_at: list[float] = []

    async def read(self) -> object:
        self.read_at.append(self.clock.monotonic())
        return await super().read()


class Rig:
    """The poller with the phase lock on, one charger, against ``meter``."""

    def __init__(self, clock: VirtualClock, meter: QuirkyMeter) -> None:
        self.clock = clock
        self.meter = meter
        specs = [ChargerSpec(id="cp1")]
        cfg = config(specs, meter_period_s=1.0, poll_wait_s=0.5, meter_phase_lock=True)
        self.meter_reading = MeterReading(cfg)
        self.decisions: list[float] = []
        self.fresh_at: list[tuple[float, bool]] = []
        self.charger = TimedCharger(clock)
        self.poller = Poller(
            clock=clock,
            config=cfg,
            meter=meter,
            meter_reading=self.meter_reading,
            chargers={"cp1": self.charger},  # type: ignore[dict-item]
            readings={"cp1": ChargerReading(specs[0], cfg)},
            on_meter=lambda prev, s: None,
            on_polled=self._decided,
        )

    def _decided(self) -> None:
        now = self.clock.monotonic()
        self.decisions.append(now)
        self.fresh_at.append((now, self.meter_reading.fresh(now)))

    async def run_for(self, seconds: float) -> None:
        await run_poller_for(self.poller, self.clock, seconds)

    def locked(self) -> bool:
        return self.poller.phase is not None and self.poller.phase.locked()

    def waits(self, after: float, until: float = float("inf")) -> list[float]:
        """Publication -> first answer, for the telegrams published in (after, until)."""
        seen = self.meter.first_seen
        return [
            seen[ts] - pub for pub, ts in self.meter.telegrams if after < pub < until and ts in seen
        ]


def never_later_than_plain(rig: Rig, after: float, until: float) -> None:
    """Every telegram that stood for more than half a period was seen within half a period
    (plus the answer's latency), the meter was polled at least every half period, the chargers
    about once per period (plain polling: exactly; here at most a quarter period late) and the
    decision woke at least every 1.5 periods (plain polling's bound)."""
    items = rig.meter.telegrams
    seen = rig.meter.first_seen
    checked = 0
    for (pub, ts), (nxt, _) in itertools.pairwise(items):
        if after < pub < until and nxt - pub > HALF_S + 0.01:
            assert seen[ts] - pub <= HALF_S + LATENCY_S + 1e-6, (pub, ts, seen.get(ts))
            checked += 1
    assert checked >= (until - after) / 4.0
    reads = [t for t in rig.meter.reads if after < t < until]
    assert max(b - a for a, b in itertools.pairwise(reads)) <= HALF_S + 1e-6
    charger = [t for t in rig.charger.read_at if after < t < until]
    assert max(b - a for a, b in itertools.pairwise(charger)) <= 1.25
    decisions = [t for t in rig.decisions if after < t < until]
    assert max(b - a for a, b in itertools.pairwise(decisions)) <= 1.5 + 1e-6


def regular(phase_s: float, offset_s: float, start: float, end: float) -> list[tuple[float, float]]:
    """A telegram every period at ``phase_s`` from ``start`` to ``end``, its timestamp
    ``offset_s`` off our clock (the meter's clock and its publishing delay)."""
    k0 = int(start)
    return [(k + phase_s, k + phase_s + offset_s) for k in range(k0, int(end) + 1)]


def rig_for(telegrams: list[tuple[float, float]], **kw: object) -> Rig:
    clock = VirtualClock()
    return Rig(clock, QuirkyMeter(clock, telegrams, **kw))  # type: ignore[arg-type]


async def test_a_meter_that_stamps_on_arrival_is_polled_plainly() -> None:
    rig = rig_for(regular(0.41, -7.0, 0.0, 60.0), arrival=True)
    await rig.run_for(60.0)
    assert not rig.locked()
    gaps = [b - a for a, b in itertools.pairwise(rig.meter.reads)]
    assert all(abs(g - HALF_S) < 0.01 for g in gaps[2:])  # every half period, nothing else
    assert all(fresh for t, fresh in rig.fresh_at if t > 2.0)
    decisions = rig.decisions[2:]
    assert all(0.9 <= b - a <= 1.1 for a, b in itertools.pairwise(decisions))


async def test_jittery_publication_is_never_seen_later_than_plain_polling() -> None:
    rng = random.Random(11)
    items = [(k + 0.3 + rng.uniform(0.0, 0.25), k + 1000.0) for k in range(200)]
    rig = rig_for(items)
    await rig.run_for(200.0)
    never_later_than_plain(rig, 5.0, 199.0)
    waits = sorted(rig.waits(after=20.0))
    # locked onto the latest publication (+ jitter): well under plain polling's 250 ms median
    assert waits[len(waits) // 2] <= 0.2


async def test_late_telegrams_are_chased_and_do_not_move_the_lock() -> None:
    rng = random.Random(5)
    items = []
    for k in range(200):
        late = rng.uniform(0.15, 0.6) if rng.random() < 0.05 else 0.0
        items.append((k + 0.62 + late, k + 40.0))
    rig = rig_for(items)
    await rig.run_for(200.0)
    never_later_than_plain(rig, 5.0, 199.0)
    assert rig.locked()
    assert rig.poller.phase is not None and rig.poller.phase.resets == 0
    seen = rig.meter.first_seen
    on_time = [seen[ts] - pub for pub, ts in items if pub > 20.0 and (pub - 0.62) % 1.0 < 1e-6]
    assert len(on_time) >= 150
    assert max(on_time) <= LOCKED_S


async def test_a_meter_that_restarts_with_another_phase_and_clock_is_relocked() -> None:
    """Off for 20 s (connection refused), then publishing at another phase with its clock 2.3 s
    off: unavailable and stale meanwhile, locked again within a few periods after."""
    items = regular(0.2, 0.0, 0.0, 40.0) + regular(0.77, 2.3, 61.0, 150.0)
    rig = rig_for(items, down=((40.5, 60.5),))
    await rig.run_for(150.0)
    assert rig.meter_reading.error is None
    assert any(not fresh for t, fresh in rig.fresh_at if 50.5 < t < 60.5)  # went stale
    never_later_than_plain(rig, 2.0, 40.0)
    never_later_than_plain(rig, 61.0, 149.0)
    assert rig.locked()
    assert max(rig.waits(after=75.0)) <= LOCKED_S


async def test_a_meter_clock_stepped_forward_or_back_is_relocked() -> None:
    """NTP steps the meter's clock +3.7 s at 40 s and -2.2 s at 100 s: the step back repeats
    timestamps (flagged stale) for two periods; the telegrams after each step are seen no later
    than plain polling and, within a few periods, just after publication again."""
    items = (
        regular(0.35, 0.0, 0.0, 39.0)
        + regular(0.35, 3.7, 40.0, 99.0)
        + regular(0.35, 3.7 - 2.2, 100.0, 200.0)
    )
    rig = rig_for(items)
    await rig.run_for(200.0)
    never_later_than_plain(rig, 2.0, 99.0)
    never_later_than_plain(rig, 103.0, 199.0)  # the first telegrams after the step back repeat
    assert rig.locked()
    assert max(rig.waits(after=55.0, until=99.0)) <= LOCKED_S
    assert max(rig.waits(after=120.0)) <= LOCKED_S
    # the meter never went stale (MeterReading judges the step back's samples 2.2 s old for a
    # while, with or without the lock; that is its rule, not the lock's)
    assert all(fresh for t, fresh in rig.fresh_at if t > 5.0)


async def test_a_slow_meter_is_abandoned_and_relocked_after() -> None:
    """The meter answers after 5 s from 30 s to 45 s: each read is abandoned after
    ``meter_timeout_s`` (2 s) and the reading goes unavailable; the decision still wakes every
    period; after it the lock is back."""
    rig = rig_for(regular(0.55, -3.0, 0.0, 120.0), slow=((30.0, 45.0),))
    await rig.run_for(38.0)
    assert rig.meter_reading.error == "no answer within 2 s"
    await rig.run_for(82.0)
    decisions = [t for t in rig.decisions if t > 25.0]
    assert max(b - a for a, b in itertools.pairwise(decisions)) <= 1.5 + 1e-6  # as plain polling
    charger = [t for t in rig.charger.read_at if t > 25.0]
    assert max(b - a for a, b in itertools.pairwise(charger)) <= 1.0 + 0.01
    never_later_than_plain(rig, 52.0, 119.0)
    assert rig.locked()
    assert max(rig.waits(after=65.0)) <= LOCKED_S
