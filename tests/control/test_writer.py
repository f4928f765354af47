"""The writer on its own: setpoints, writer tasks, rewrite cadence, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fuseguard.control.ports import DeviceConnectionError
from fuseguard.control.types import ChargerSpec
from fuseguard.control.writer import Writer
from fuseguard.model.clock import VirtualClock

from .doubles import ScriptedDevice, config


class WriteRig:
    def __init__(self, write_timeout_s: float = 3.0) -> None:
        self.clock = VirtualClock()
        specs = [ChargerSpec(id="cp1"), ChargerSpec(id="cp2")]
        self.chargers = {"cp1": ScriptedDevice(), "cp2": ScriptedDevice()}
        self.offline: set[str] = set()
        self.failures: list[tuple[str, str]] = []
        self.writer = Writer(
            clock=self.clock,
            config=config(specs, rewrite_interval_s=20.0, write_timeout_s=write_timeout_s),
            chargers=self.chargers,  # type: ignore[arg-type]
            online=lambda pid, now: pid not in self.offline,
            on_failure=lambda pid, reason: self.failures.append((pid, reason)),
        )

    def decide(self, **setpoints: int) -> None:
        for pid, value in setpoints.items():
            self.writer.decide(pid, value, f"{pid} gets {value} A")
        self.writer.flush(self.clock.monotonic())

    async def run_for(self, seconds: float) -> None:
        await self.clock.advance(seconds)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[WriteRig]:
    r = WriteRig(**getattr(request, "param", {}))
    tasks = [asyncio.create_task(r.writer.serve(pid)) for pid in r.chargers]
    yield r
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_changed_setpoint_is_written_once(rig: WriteRig) -> None:
    rig.decide(cp1=16, cp2=0)
    await rig.run_for(0.1)
    assert rig.chargers["cp1"].writes == [16]
    assert rig.chargers["cp2"].writes == [0]
    sp = rig.writer["cp1"]
    assert (sp.setpoint_a, sp.written_a, sp.written_at, sp.changed_at) == (16, 16, 0.0, 0.0)
    rig.decide(cp1=16, cp2=0)  # nothing changed, no rewrite due: nothing written
    await rig.run_for(1.0)
    assert rig.chargers["cp1"].writes == [16]


async def test_every_setpoint_is_rewritten_within_the_rewrite_interval(rig: WriteRig) -> None:
    rig.decide(cp1=16, cp2=10)
    for _ in range(45):
        await rig.run_for(1.0)
        rig.decide()  # a decision every second with the same setpoints
    assert rig.chargers["cp1"].writes == [16, 16, 16]  # at 0, 20 and 40 s
    sp = rig.writer["cp1"]
    assert sp.written_at == 40.0
    assert sp.changed_at == 0.0  # a rewrite is not a change


async def test_only_the_newest_setpoint_is_written(rig: WriteRig) -> None:
    rig.writer.decide("cp1", 16, "first")
    rig.writer.decide("cp1", 8, "second")
    rig.writer.flush(0.0)
    await rig.run_for(0.1)
    assert rig.chargers["cp1"].writes == [8]
    assert rig.writer["cp1"].reason == "second"


@pytest.mark.parametrize("rig", [{"write_timeout_s": 0.05}], indirect=True)
async def test_a_slow_charger_holds_up_no_other(rig: WriteRig) -> None:
    rig.chargers["cp2"].write_hang = True
    rig.decide(cp1=16, cp2=16)
    await rig.run_for(0.1)
    rig.decide(cp1=6)
    await rig.run_for(0.1)
    assert rig.chargers["cp1"].writes == [16, 6]
    # the write timeout runs on the injected clock (round 18): given up at 0.05 s of it, and the
    # retry the second decision woke at 0.1 s at 0.15 s
    assert rig.failures == [("cp2", "write failed: no answer within 0.05 s")] * 2
    assert rig.writer["cp2"].written_a is None


async def test_nothing_is_written_to_an_offline_charger(rig: WriteRig) -> None:
    rig.offline.add("cp1")
    rig.decide(cp1=16)
    await rig.run_for(0.1)
    assert rig.chargers["cp1"].writes == []
    rig.offline.clear()
    rig.decide()
    await rig.run_for(0.1)
    assert rig.chargers["cp1"].writes == [16]


async def test_a_failed_write_is_reported_and_retried_on_the_next_decision(
    rig: WriteRig,
) -> None:
    rig.chargers["cp1"].write_error = DeviceConnectionError("cp1: connection refused")
    rig.decide(cp1=16)
    await rig.run_for(0.1)
    assert rig.failures == [("cp1", "write failed: cp1: connection refused")]
    assert rig.writer["cp1"].written_a is None
    rig.chargers["cp1"].write_error = RuntimeError("bug")
    rig.decide()
    await rig.run_for(0.1)
    assert rig.failures[-1] == ("cp1", "write failed: driver error: RuntimeError('bug')")
    rig.chargers["cp1"].write_error = None
    rig.decide()
    await rig.run_for(0.1)
    assert rig.chargers["cp1"].writes == [16]


async def test_the_last_raise_is_remembered(rig: WriteRig) -> None:
    rig.decide(cp1=16)
    await rig.run_for(5.0)
    assert rig.writer.last_raise_at == 0.0
    rig.decide(cp1=10)  # a decrease is no raise
    await rig.run_for(1.0)
    assert rig.writer.last_raise_at == 0.0
    rig.decide(cp1=12)
    await rig.run_for(0.1)
    assert rig.writer.last_raise_at == 6.0


async def test_hold_never_raises_a_setpoint(rig: WriteRig) -> None:
    rig.decide(cp1=16, cp2=10)
    await rig.run_for(0.1)
    rig.writer.decide("cp1", 20, "a raise not yet written")
    rig.writer.decide("cp2", 6, "a decrease not yet written")
    rig.writer.hold("decision failed: holding")
    assert rig.writer["cp1"].setpoint_a == 16
    assert rig.writer["cp2"].setpoint_a == 6  # the lower value stays
    assert rig.writer["cp1"].reason == "decision failed: holding"
    rig.writer.flush(rig.clock.monotonic())
    await rig.run_for(0.1)
    assert rig.chargers["cp1"].writes == [16]
    assert rig.chargers["cp2"].writes == [10, 6]


class WatchdogDevice(ScriptedDevice):
    """A charger whose own watchdog needs a write every 5 s (a Bender with a 15 s timeout)."""

    watchdog_refresh_s = 5.0


async def test_a_charger_watchdog_shorter_than_the_rewrite_interval_is_kept_quiet() -> None:
    """A Bender with ``safe_timeout_s = 15`` would fall back to its safe current between two
    20 s rewrites, above a paused setpoint: its unchanged limit is re-written every 5 s, the
    other charger's still every 20 s."""
    clock = VirtualClock()
    chargers = {"cp1": WatchdogDevice(), "cp2": ScriptedDevice()}
    writer = Writer(
        clock=clock,
        config=config([ChargerSpec(id="cp1"), ChargerSpec(id="cp2")], rewrite_interval_s=20.0),
        chargers=chargers,  # type: ignore[arg-type]
        online=lambda pid, now: True,
        on_failure=lambda pid, reason: None,
    )
    tasks = [asyncio.create_task(writer.serve(pid)) for pid in chargers]
    try:
        for pid in chargers:
            writer.decide(pid, 0, "paused")
        for _ in range(21):
            writer.flush(clock.monotonic())
            await clock.advance(1.0)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert chargers["cp1"].writes == [0] * 5  # at 0, 5, 10, 15 and 20 s
    assert chargers["cp2"].writes == [0, 0]  # at 0 and 20 s


@pytest.mark.parametrize("rig", [{"write_timeout_s": 0.05}], indirect=True)
async def test_a_write_is_under_way_until_it_returns_landed_or_failed(rig: WriteRig) -> None:
    """``in_flight_a``: the value being written while the call is under way (the plug is held
    and counted at it meanwhile, docs/safety.md "A write under way"), cleared when the call
    returns, whether it landed or failed."""
    rig.chargers["cp2"].write_hang = True
    rig.decide(cp1=16, cp2=12)
    await rig.run_for(0.04)
    assert rig.writer["cp1"].in_flight_a is None  # landed at once
    assert rig.writer["cp1"].written_a == 16
    assert rig.writer["cp2"].in_flight_a == 12  # hanging
    await rig.run_for(0.01)  # its timeout, on the injected clock (round 18)
    assert rig.failures == [("cp2", "write failed: no answer within 0.05 s")]
    assert rig.writer["cp2"].in_flight_a is None
    assert rig.writer["cp2"].written_a is None


async def test_a_charger_becoming_a_slow_writer_is_reported_once() -> None:
    """A write taking a meter period or more makes the charger a slow writer (others make room
    for its writes under way): one warning when it becomes slow, one line when it is quick
    again, and how long the last write took on its setpoint (``last_write_s``)."""
    from structlog.testing import capture_logs

    from tests.control.test_write_under_way import SlowWrites

    r = WriteRig()
    slow = SlowWrites(r.clock, 2.5)
    r.writer._chargers["cp1"] = slow  # the rig's charger, made slow
    with capture_logs() as logs:
        for value in (10, 11, 12):
            r.writer.decide("cp1", value, "test")
            write = asyncio.create_task(r.writer.write("cp1"))
            await r.clock.advance(3.0)
            await write
        assert r.writer["cp1"].last_write_s == 2.5
        assert r.writer["cp1"].written_a == 12
        slow._write_s = 0.0  # quick again
        # (its zero sleep is a timer of the virtual clock: until round 18 this write ended
        # only by the write timeout running on the event loop's time, 3 s of wall time)
        write = asyncio.create_task(r.writer.write("cp1"))
        await r.clock.advance(0.0)
        await write
    assert r.writer["cp1"].last_write_s == 0.0
    events = [(e["event"], e["charger"]) for e in logs if e["event"].startswith("charger_")]
    assert events == [("charger_slow_writes", "cp1"), ("charger_quick_writes", "cp1")]
