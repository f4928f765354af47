"""A write bounded by ``write_timeout_s`` of the injected clock (round 18): a charger whose
writes take 5 s fails them at 3 s in virtual time as at the edge, and a write given up may
still land (docs/safety.md, "A write that timed out")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fuseguard.control.reading import Failed, guarded
from fuseguard.control.types import ChargerSpec
from fuseguard.control.writer import Writer
from fuseguard.model.clock import Clock, VirtualClock

from .doubles import ScriptedDevice, config, plug


class LandsLate(ScriptedDevice):
    """A charger whose every write takes ``write_s`` of the clock and lands then, whether or not
    the caller still waits (a Modbus request on the wire is not taken back)."""

    def __init__(self, clock: Clock, write_s: float) -> None:
        super().__init__()
        self.clock = clock
        self.write_s = write_s
        self.landed: list[tuple[float, int]] = []  # (clock time, value)

    async def set_current_limit(self, current_a: int) -> None:
        def land() -> None:
            self.landed.append((self.clock.monotonic(), current_a))

        self.clock.call_later(self.write_s, land)
        await self.clock.sleep(self.write_s)


async def test_guarded_times_out_on_the_injected_clock() -> None:
    """The timeout counts the clock's time (virtual here): the call is given up at 3 s."""
    clock = VirtualClock()
    cancelled: list[float] = []

    async def five_seconds() -> int:
        try:
            await clock.sleep(5.0)
        except asyncio.CancelledError:
            cancelled.append(clock.monotonic())
            raise
        return 1

    task = asyncio.create_task(guarded(five_seconds, device="cp1", timeout_s=3.0, clock=clock))
    await clock.advance(2.9)
    assert not task.done()
    await clock.advance(0.1)
    assert task.done()
    assert task.result() == Failed("no answer within 3 s")
    assert cancelled == [3.0]


async def test_guarded_with_a_clock_timeout_returns_an_answer_in_time_and_leaves_no_timer() -> None:
    clock = VirtualClock()

    async def two_seconds() -> int:
        await clock.sleep(2.0)
        return 7

    task = asyncio.create_task(guarded(two_seconds, device="cp1", timeout_s=3.0, clock=clock))
    await clock.advance(2.0)
    assert task.result() == 7
    assert clock.pending() == []  # the timeout's timer went with the call


async def test_a_cancel_from_outside_is_not_a_timeout() -> None:
    """Cancelling the caller within the timeout propagates (stopping is not a failed write)."""
    clock = VirtualClock()
    dev = ScriptedDevice(answers=[1], hang=True)
    task = asyncio.create_task(guarded(dev.read, device="cp1", timeout_s=3.0, clock=clock))
    await clock.advance(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending() == []


async def test_a_timeout_needs_its_clock() -> None:
    dev = ScriptedDevice(answers=[1])
    with pytest.raises(TypeError):
        await guarded(dev.read, device="cp1", timeout_s=3.0)


class Rig:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.slow = LandsLate(self.clock, 5.0)
        self.failures: list[tuple[float, str, str]] = []
        self.writer = Writer(
            clock=self.clock,
            config=config([ChargerSpec(id="cp1")], rewrite_interval_s=20.0, write_timeout_s=3.0),
            chargers={"cp1": self.slow},  # type: ignore[dict-item]
            online=lambda _pid, _now: True,
            on_failure=lambda pid, why: self.failures.append((self.clock.monotonic(), pid, why)),
        )

    def decide(self, value_a: int) -> None:
        self.writer.decide("cp1", value_a, "test")
        self.writer.flush(self.clock.monotonic())


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    task = asyncio.create_task(r.writer.serve("cp1"))
    yield r
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_write_slower_than_its_timeout_fails_at_the_timeout_of_the_clock(rig: Rig) -> None:
    """The soak's ``charger:slow`` (5 s writes), ``write_timeout_s`` = 3 s: the write is
    reported failed at 3 s of the (virtual) clock, as the edge would; before round 18 the
    timeout ran on the event loop's time and the write 'landed' at 5 s."""
    rig.decide(16)
    await rig.clock.advance(3.0)
    assert rig.failures == [(3.0, "cp1", "write failed: no answer within 3 s")]
    sp = rig.writer["cp1"]
    assert (sp.written_a, sp.failed_a, sp.in_flight_a) == (None, 16, None)
    assert sp.last_write_s == 3.0
    await rig.clock.advance(2.0)
    assert rig.slow.landed == [(5.0, 16)]  # given up, it landed all the same


async def test_a_write_that_timed_out_is_settled_by_one_that_lands(rig: Rig) -> None:
    """After a timed-out write the charger may be at either value: a write is due until one
    lands (also when the value decided is back at the one written), and that one settles it."""
    rig.slow.write_s = 0.5
    rig.decide(10)
    await rig.clock.advance(1.0)
    sp = rig.writer["cp1"]
    assert (sp.written_a, sp.failed_a) == (10, None)
    rig.slow.write_s = 5.0
    rig.decide(20)  # a raise; its write times out
    await rig.clock.advance(3.0)
    assert (sp.written_a, sp.failed_a) == (10, 20)
    rig.slow.write_s = 0.5
    rig.decide(10)  # back to the value written: still written again, 20 may have landed
    await rig.clock.advance(1.0)
    assert (sp.written_a, sp.failed_a) == (10, None)
    assert rig.slow.landed == [(0.5, 10), (4.5, 10)]  # 10 A again, as soon as it was due


def test_a_plug_whose_raise_timed_out_is_counted_at_the_raise() -> None:
    """A raise 10 -> 20 A whose write timed out, the decision back at 10 A (the meter failing:
    no raise): the charger may be at 20 A (the request may land after it was given up). Before
    round 18 the plug counted as settled at 10 A (the failed value was not kept)."""
    p = plug()
    sp = p.setpoint
    sp.written_a, sp.setpoint_a, sp.failed_a = 10, 10, 20
    assert p.in_flight_a(100.0) == 20
    sp.failed_a = 6  # a failed decrease with the decision back at the value written: settled
    assert p.in_flight_a(100.0) is None
    sp.setpoint_a = 6  # the failed decrease still decided: counted at the value in force
    assert p.in_flight_a(100.0) == 10
