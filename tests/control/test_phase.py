"""The meter poll's phase lock (control/phase.py): poll just after the meter publishes, never
later than plain half-period polling, and a missed or frozen telegram still goes stale."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import timedelta

from fuseguard.control.phase import MARGIN_S, MeterPhase, PollKind
from fuseguard.control.polling import Poller
from fuseguard.control.reading import ChargerReading, MeterReading
from fuseguard.control.types import ChargerSpec
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample
from fuseguard.model.status import CpState

from .doubles import ScriptedDevice, charger_sample, config, run_poller_for

PERIOD_S = 1.0


@dataclass
class Telegrams:
    """A meter's telegrams: (publication on our clock, own timestamp), oldest first."""

    items: list[tuple[float, float]]

    def newest_at(self, t: float) -> float | None:
        """The timestamp of the newest telegram published by ``t`` (our clock)."""
        newest = None
        for pub, ts in self.items:
            if pub > t:
                break
            newest = ts
        return newest


@dataclass
class Drive:
    """MeterPhase driven against a meter: every poll, its kind and what it saw."""

    polls: list[tuple[float, PollKind]] = field(default_factory=list)
    first_seen: dict[float, float] = field(default_factory=dict)  # ts -> answer time


def drive(phase: MeterPhase, meter: Telegrams, until: float, latency_s: float = 0.004) -> Drive:
    """Poll as the phase lock says; the meter answers at mid round trip."""
    out = Drive()
    last_at, now = 0.0, 0.0
    at, kind = 0.0, PollKind.PLAIN
    seen: float | None = None
    while at < until:
        phase.issued(kind)
        out.polls.append((at, kind))
        ts = meter.newest_at(at + latency_s / 2.0)
        now = at + latency_s
        if ts is None:
            phase.nothing(kind)
        elif seen is not None and ts <= seen:
            phase.repeated(kind, at)
        else:
            phase.observe(kind, at, now, ts)
            out.first_seen[ts] = now
            seen = ts
        last_at = at
        at, kind = phase.next_poll(now, last_at)
        assert at > now
    return out


def regular(theta_s: float, phase_s: float, until: float) -> Telegrams:
    """A meter publishing every period at ``phase_s``; timestamps ``theta_s`` behind our clock."""
    n = int(until / PERIOD_S) + 2
    return Telegrams([(phase_s + k * PERIOD_S, phase_s + k * PERIOD_S - theta_s) for k in range(n)])


def waits(meter: Telegrams, d: Drive, after: float) -> list[float]:
    """Publication -> first answer with that telegram, for telegrams published after ``after``."""
    return [d.first_seen[ts] - pub for pub, ts in meter.items if after < pub and ts in d.first_seen]


def gaps(d: Drive) -> list[float]:
    return [b[0] - a[0] for a, b in zip(d.polls, d.polls[1:], strict=False)]


def test_a_regular_meter_is_locked_and_seen_just_after_it_publishes() -> None:
    meter = regular(theta_s=-1234.5678, phase_s=0.3719, until=60.0)
    phase = MeterPhase(PERIOD_S)
    d = drive(phase, meter, 60.0)
    assert phase.locked()
    assert phase.width_s <= 0.03
    late = waits(meter, d, after=10.0)
    assert len(late) >= 45
    # plain polling would wait up to half a period; locked, the margin plus the round trip
    assert max(late) <= MARGIN_S + phase.width_s + 0.01
    assert max(gaps(d)) <= PERIOD_S / 2.0 + 1e-9
    kinds = [k for _, k in d.polls if _ > 10.0]
    # two polls per period once locked (EXPECT and HALF), no chasing, no more probing
    assert kinds.count(PollKind.EXPECT) >= 45 and kinds.count(PollKind.CHASE) == 0
    assert len(kinds) <= 2 * 50 + 10  # a probe every few seconds as the interval ages


def test_the_lock_is_found_within_a_few_periods() -> None:
    meter = regular(theta_s=7.0, phase_s=0.8123, until=12.0)
    phase = MeterPhase(PERIOD_S)
    d = drive(phase, meter, 12.0)
    assert phase.locked()
    assert max(waits(meter, d, after=8.0)) <= 0.05


def test_a_meter_that_stamps_on_arrival_keeps_plain_polling() -> None:
    """A Modbus meter's timestamp is the read itself: no lower bound, no lock, every half period."""
    phase = MeterPhase(PERIOD_S)
    polls = []
    at, kind = 0.0, PollKind.PLAIN
    for _ in range(40):
        phase.issued(kind)
        polls.append((at, kind))
        phase.observe(kind, at, at + 0.004, at + 0.002)
        at, kind = phase.next_poll(at + 0.004, at)
    assert not phase.locked()
    assert {k for _, k in polls} == {PollKind.PLAIN}
    assert all(math.isclose(b - a, 0.5) for (a, _), (b, _) in itertools.pairwise(polls))


def test_an_irregular_meter_is_never_seen_later_than_with_plain_polling() -> None:
    rng = random.Random(7)
    items, t = [], 0.25
    while t < 80.0:
        items.append((t, t + 100.0))
        t += rng.choice([1.0, 1.0, 1.0, rng.uniform(0.3, 2.5)])  # mostly regular, then not
    meter = Telegrams(items)
    phase = MeterPhase(PERIOD_S)
    d = drive(phase, meter, 80.0)
    assert max(gaps(d)) <= PERIOD_S / 2.0 + 1e-9
    # every telegram that stood for at least half a period was seen within half a period
    for (pub, ts), (nxt, _) in itertools.pairwise(items):
        if nxt - pub >= 0.5 + 0.01:
            assert d.first_seen[ts] - pub <= PERIOD_S / 2.0 + 0.005


def test_a_late_telegram_is_chased_then_the_grid_resumes() -> None:
    items = [(0.4 + k, 0.4 + k) for k in range(30)]
    items[20] = (20.4 + 0.12, 20.4 + 0.12)  # one tick 120 ms late (stamped when published)
    items[10] = (10.4 + 0.02, 10.4 + 0.02)  # one tick 20 ms late: jitter
    meter = Telegrams(items)
    phase = MeterPhase(PERIOD_S)
    d = drive(phase, meter, 29.0)
    assert d.first_seen[20.52] - 20.52 <= 0.03 + 0.005  # within one chase interval
    assert any(k is PollKind.CHASE for t, k in d.polls if 20.4 < t < 20.6)
    # jitter hardly moves the schedule; a tick further off re-anchors it (a meter that was
    # re-phased), so the next telegram is seen at most that much late, then as before
    assert max(waits(meter, d, after=10.5)[:9]) <= MARGIN_S + 0.04 + 0.02 * 0.25
    assert d.first_seen[21.4] - 21.4 <= 0.12 + MARGIN_S + 0.04
    assert max(waits(meter, d, after=22.0)) <= MARGIN_S + 0.04


def test_a_meter_re_phased_now_and_then_is_followed_at_once() -> None:
    items, t, rng = [], 0.3, random.Random(3)
    while t < 60.0:
        items.append((t, t + 50.0))
        t += rng.uniform(1.0, 2.0) if len(items) % 3 == 0 else 1.0  # re-phased every 3rd
    meter = Telegrams(items)
    phase = MeterPhase(PERIOD_S)
    d = drive(phase, meter, 60.0)
    regular_after = [
        b for a, b in itertools.pairwise(items) if abs(b[0] - a[0] - 1.0) < 1e-9 and b[0] > 10
    ]
    assert len(regular_after) >= 20
    for pub, ts in regular_after:
        assert d.first_seen[ts] - pub <= MARGIN_S + 0.04


def test_a_stepped_meter_clock_resets_and_relocks() -> None:
    first = regular(theta_s=0.0, phase_s=0.3, until=20.0).items[:20]
    second = [(pub, ts + 3.7) for pub, ts in regular(0.0, 0.65, 60.0).items[20:]]
    meter = Telegrams(first + second)
    phase = MeterPhase(PERIOD_S)
    d = drive(phase, meter, 60.0)
    assert phase.resets >= 1
    assert phase.locked()
    assert max(waits(meter, d, after=35.0)) <= 0.05
    assert max(gaps(d)) <= PERIOD_S / 2.0 + 1e-9


# --- the poller with the phase lock, in virtual time -----------------------------------------


class PublishingMeter:
    """A CEMM-like meter: a telegram every period at ``phase_s``, stamped with the (virtual)
    wall clock; ``stop_at`` freezes it (the same telegram from then on)."""

    def __init__(
        self,
        clock: VirtualClock,
        phase_s: float,
        stop_at: float = math.inf,
        hang_at: float = math.inf,
    ) -> None:
        self.clock = clock
        self.hang_at = hang_at
        self.phase_s = phase_s
        self.stop_at = stop_at
        self.reads: list[float] = []
        self.last: float | None = None

    async def read(self) -> MeterSample:
        t = self.clock.monotonic()
        self.reads.append(t)
        if t >= self.hang_at:  # never answers (until cancelled)
            await asyncio.get_running_loop().create_future()
        k = math.floor((min(t, self.stop_at) - self.phase_s) / PERIOD_S)
        pub = self.phase_s + k * PERIOD_S
        stale = self.last is not None and pub <= self.last
        self.last = pub if self.last is None else max(self.last, pub)
        await self.clock.sleep(0.003)
        start = self.clock.now() - timedelta(seconds=self.clock.monotonic())
        return MeterSample(
            timestamp=start + timedelta(seconds=pub), power_w=1000.0, current_a=None, stale=stale
        )


class LockRig:
    def __init__(self, meter_stop_at: float = math.inf, hang_at: float = math.inf) -> None:
        self.clock = VirtualClock()
        specs = [ChargerSpec(id="cp1")]
        self.config = config(specs, meter_period_s=1.0, poll_wait_s=0.5, meter_phase_lock=True)
        self.meter = PublishingMeter(
            self.clock, phase_s=0.437, stop_at=meter_stop_at, hang_at=hang_at
        )
        self.charger = ScriptedDevice(answers=[charger_sample(CpState.C, Phases(6, 6, 6))])
        self.meter_reading = MeterReading(self.config)
        self.samples: list[float] = []
        self.polls: list[float] = []
        self.poller = Poller(
            clock=self.clock,
            config=self.config,
            meter=self.meter,  # type: ignore[arg-type]
            meter_reading=self.meter_reading,
            chargers={"cp1": self.charger},  # type: ignore[dict-item]
            readings={"cp1": ChargerReading(specs[0], self.config)},
            on_meter=lambda prev, s: self.samples.append(self.clock.monotonic()),
            on_polled=lambda: self.polls.append(self.clock.monotonic()),
        )

    async def run_for(self, seconds: float) -> None:
        await run_poller_for(self.poller, self.clock, seconds)


async def test_the_poller_sees_each_telegram_just_after_it_is_published() -> None:
    rig = LockRig()
    await rig.run_for(30.0)
    assert rig.poller.phase is not None and rig.poller.phase.locked()
    late = [t - (0.437 + math.floor(t - 0.437)) for t in rig.samples if t > 10.0]
    assert len(late) >= 19 and max(late) <= 0.04
    gaps_s = [b - a for a, b in zip(rig.meter.reads, rig.meter.reads[1:], strict=False)]
    assert max(gaps_s) <= 0.5 + 1e-6
    # the chargers still once per period, with the decision after them
    polls = [t for t in rig.polls if t > 10.0]
    assert all(0.9 <= b - a <= 1.1 for a, b in itertools.pairwise(polls))
    assert rig.charger.reads >= 29


async def test_a_frozen_meter_still_goes_stale_with_the_phase_lock() -> None:
    rig = LockRig(meter_stop_at=20.0)
    await rig.run_for(20.0)
    assert rig.meter_reading.fresh(rig.clock.monotonic())
    await rig.run_for(2.6)  # more than two periods without a new telegram
    assert rig.meter_reading.error == "meter timestamp did not advance (frozen)"
    await rig.run_for(8.0)
    assert not rig.meter_reading.fresh(rig.clock.monotonic())
    gaps_s = [b - a for a, b in zip(rig.meter.reads, rig.meter.reads[1:], strict=False)]
    assert max(gaps_s) <= 0.5 + 1e-6  # the meter is polled at least every half period


async def test_a_meter_that_stops_answering_while_locked_ends_the_chase() -> None:
    """The decision still wakes every period (falls back on the stale meter), the meter read is
    abandoned after its timeout and tried again."""
    rig = LockRig(hang_at=20.0)
    await rig.run_for(20.0)
    assert rig.poller.phase is not None and rig.poller.phase.locked()
    await rig.run_for(15.0)
    assert rig.meter_reading.error == "no answer within 2 s"
    assert not rig.meter_reading.fresh(rig.clock.monotonic())
    polls = [t for t in rig.polls if t > 20.0]
    assert len(polls) >= 13
    assert all(b - a <= 1.5 for a, b in itertools.pairwise(polls))


def test_a_telegram_published_late_with_an_on_time_stamp_does_not_move_the_lock() -> None:
    """A meter that stamps whole seconds and publishes one telegram 150 ms late (its loop
    lagged): the lock stays on its phase; the next telegrams are seen just after publication."""
    items = [(0.37 + k, float(k)) for k in range(40)]
    items[20] = (20.37 + 0.15, 20.0)
    meter = Telegrams(items)
    phase = MeterPhase(PERIOD_S)
    d = drive(phase, meter, 39.0)
    assert phase.resets == 0
    assert d.first_seen[20.0] - 20.52 <= 0.03 + 0.005  # chased
    assert max(waits(meter, d, after=21.0)) <= MARGIN_S + 0.04
