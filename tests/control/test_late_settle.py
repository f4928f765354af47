"""A late-reporting charger is settled only by a measurement taken with its new limit in force.

An OCPP charge point applies a limit ``limit_delay_s`` after the write and reports its currents
late (MeterValues, ``measured_age_s`` > 0). A measurement taken between the write and the apply
shows the draw under the OLD limit: before round 11 the poller took it for the charger following
its setpoint, put it on the idle cadence (``charger_idle_poll_s``, 10 s) and vouched for the old
sample, so a building load step right after a raise waited for that 10 s read
(``bench/ocpp.py --chargers 100``: a first step of ~10 s). Virtual time, the whole control loop.
"""

from __future__ import annotations

import asyncio

import pytest

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState

from .fakes import FakeMeter

DELAY_S = 2.0  # the profile delay
REPORT_AGE_S = 0.2  # every read answers with a measurement this old (a triggered MeterValues)
IDLE_POLL_S = 10.0
CAR_A = 6.0  # the car draws 6 A whatever it is offered (as in bench/ocpp.py)
FUSE_A = 40.0


pytestmark = pytest.mark.usefixtures("errors_only_logs")


class DelayedCharger:
    """A charge point applying every limit DELAY_S after its write, measured REPORT_AGE_S
    before each read; its car draws min(limit in force, CAR_A) (nothing below 6 A)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.writes: list[tuple[float, int]] = []
        self.reads: list[float] = []
        self.rotation = None

    def limit_at(self, t: float) -> int:
        value = 0
        for at, amps in self.writes:
            if at + DELAY_S <= t:
                value = amps
        return value

    def draw_at(self, t: float) -> float:
        limit = self.limit_at(t)
        return min(float(limit), CAR_A) if limit >= 6 else 0.0

    def draw_grid(self) -> Phases:
        return Phases.uniform(self.draw_at(self.clock.monotonic()))

    async def read(self) -> ChargerSample:
        now = self.clock.monotonic()
        self.reads.append(now)
        amps = self.draw_at(now - REPORT_AGE_S)
        return ChargerSample(
            cp_state=CpState.C if amps > 0 else CpState.B,
            ocpp_state=OcppState.CHARGING if amps > 0 else OcppState.SUSPENDEDEVSE,
            current_a=Phases.uniform(amps) if amps > 0 else ZERO,
            power_w=amps * 3 * 230.0,
            measured_age_s=REPORT_AGE_S,
            authorized=True,
        )

    async def set_current_limit(self, current_a: int) -> None:
        if not self.writes or self.writes[-1][1] != current_a:
            self.writes.append((self.clock.monotonic(), current_a))


async def _run_site(
    clock: VirtualClock, base_a: float
) -> tuple[DelayedCharger, FakeMeter, Controller, asyncio.Task[None]]:
    charger = DelayedCharger(clock)
    meter = FakeMeter(clock, [charger], base_a=Phases.uniform(base_a))  # type: ignore[list-item]
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, FUSE_A)],
        chargers=[ChargerSpec(id="cp", max_a=16, limit_delay_s=DELAY_S, reports_late=True)],
        charger_idle_poll_s=IDLE_POLL_S,
    )
    controller = Controller(clock=clock, config=config, meter=meter, chargers={"cp": charger})  # type: ignore[dict-item]
    return charger, meter, controller, asyncio.create_task(controller.run())


async def test_a_raise_read_before_it_applies_keeps_the_charger_on_the_fast_cadence() -> None:
    clock = VirtualClock()
    charger, _meter, _controller, task = await _run_site(clock, base_a=30.0)
    try:
        await clock.advance(40.0)  # 6 A at once, then raised to the 10 A of room
        raises = [
            (at, a)
            for (at, a), (_, before) in zip(charger.writes[1:], charger.writes[:-1], strict=True)
            if a > before
        ]
        assert raises, charger.writes
        for raised_at, _ in raises:
            applied_at = raised_at + DELAY_S
            # reads measured the old limit before the apply (the car draws 6 A either way)
            assert any(raised_at < t < applied_at + REPORT_AGE_S for t in charger.reads)
            # read (and measured) with the raise in force within two meter periods of its
            # apply, not IDLE_POLL_S after a read that measured the old limit
            after = [t for t in charger.reads if t - REPORT_AGE_S >= applied_at]
            assert after, charger.reads
            assert after[0] <= applied_at + REPORT_AGE_S + 2.0, (raised_at, charger.reads)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class SyncedMeterValues(DelayedCharger):
    """As bench/ocpp.py's charge points: a car drawing CAR_A whatever its limit, MeterValues
    every 10 s in a round that (here) lands ROUND_AFTER_WRITE_S after the raise's write, i.e.
    before the raise applies, and a triggered MeterValues TRIGGER_S after each write."""

    ROUND_AFTER_WRITE_S = 0.5
    TRIGGER_S = 3.0

    def _measured_at(self, now: float) -> float:
        times = [0.0]
        for at, _ in self.writes:
            times += [at + self.ROUND_AFTER_WRITE_S, at + self.TRIGGER_S]
        if self.writes:
            last = self.writes[-1][0] + self.ROUND_AFTER_WRITE_S
            times += [last + 10.0 * k for k in range(1, 100)]
        return max(t for t in times if t <= now)

    async def read(self) -> ChargerSample:
        now = self.clock.monotonic()
        self.reads.append(now)
        at = self._measured_at(now)
        amps = self.draw_at(at)
        return ChargerSample(
            cp_state=CpState.C,
            ocpp_state=OcppState.CHARGING,
            current_a=Phases.uniform(amps),
            power_w=amps * 3 * 230.0,
            measured_age_s=max(1e-3, now - at),
            authorized=True,
        )


async def test_a_step_after_a_raise_that_a_meter_round_read_before_it_applied() -> None:
    """The bench's ~10 s first step in virtual time: ten charge points raised 6 -> 16 A while
    their cars keep drawing 6 A; the MeterValues round lands between the write and the apply;
    2.9 s after the write the building load steps up. Before round 11 the round settled every
    charger, the triggered MeterValues (3 s) went unread until the next idle read (10 s): the
    step was lowered 8.1 s later (main 58b5ab7). Now with the triggered measurement (0.1 s
    here: the step comes 0.1 s before it)."""
    clock = VirtualClock()
    cars = 10
    chargers = {f"cp{i}": SyncedMeterValues(clock) for i in range(cars)}
    meter = FakeMeter(clock, list(chargers.values()), base_a=Phases.uniform(115.0))  # type: ignore[arg-type]
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, 16.0 * cars + 20.5)],
        chargers=[
            ChargerSpec(id=cid, max_a=16, limit_delay_s=DELAY_S, reports_late=True)
            for cid in chargers
        ],
        charger_idle_poll_s=IDLE_POLL_S,
    )
    controller = Controller(clock=clock, config=config, meter=meter, chargers=chargers)  # type: ignore[arg-type]
    task = asyncio.create_task(controller.run())
    try:
        await clock.advance(60.0)  # room for 6.5 A each: 6 A
        meter.base_a = Phases.uniform(20.0)  # room for 16 A each
        for _ in range(300):
            await clock.advance(0.1)
            if all(ch.writes and ch.writes[-1][1] == 16 for ch in chargers.values()):
                break
        raised_at = max(ch.writes[-1][0] for ch in chargers.values())
        # raised to 16 A from a limit the car drew in full (6 or 7 A): the raise is pending
        assert all(ch.writes[-1][1] == 16 and ch.writes[-2][1] <= 7 for ch in chargers.values())
        await clock.advance(raised_at + 2.9 - clock.monotonic())
        meter.base_a = Phases.uniform(20.0 + cars)  # +1 A per car: every car to 15 A
        step_at = clock.monotonic()
        lowered: list[float] = []
        for _ in range(150):
            await clock.advance(0.1)
            lowered = [ch.writes[-1][0] for ch in chargers.values() if ch.writes[-1][1] < 16]
            if len(lowered) == cars:
                break
        assert len(lowered) == cars, [ch.writes[-3:] for ch in chargers.values()]
        assert max(lowered) - step_at <= 2.5, (step_at, max(lowered))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
