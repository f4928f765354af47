"""The reading part on its own: the one guarded call, device state, and the poll cadence."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from fuseguard.control.polling import Poller
from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.control.reading import (
    ChargerReading,
    Failed,
    MeterReading,
    guarded,
)
from fuseguard.control.types import ChargerSpec
from fuseguard.model.clock import RealClock, VirtualClock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.samples import MeterSample
from fuseguard.model.status import CpState, PlugStatus

from .doubles import ScriptedDevice, charger_sample, config, meter_sample, run_poller_for

# --- the one guarded call -------------------------------------------------------------------


async def test_guarded_passes_the_answer_through() -> None:
    dev = ScriptedDevice(answers=[42])
    assert await guarded(dev.read, device="x") == 42


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (DeviceConnectionError("cp1: connection refused"), "cp1: connection refused"),
        (DeviceResponseError(), "DeviceResponseError"),
        (TimeoutError("socket read timed out"), "socket read timed out"),
    ],
)
async def test_guarded_maps_device_errors_and_timeouts_to_failed(
    error: Exception, reason: str
) -> None:
    dev = ScriptedDevice(answers=[error])
    assert await guarded(dev.read, device="cp1") == Failed(reason)


async def test_guarded_maps_a_driver_bug_to_failed_loudly() -> None:
    dev = ScriptedDevice(answers=[IndexError("register 122 out of range")])
    with capture_logs() as logs:
        result = await guarded(dev.read, device="cp1")
    assert result == Failed("driver error: IndexError('register 122 out of range')")
    assert logs[0]["event"] == "device_driver_error"
    assert logs[0]["device"] == "cp1"
    assert "IndexError" in logs[0]["reason"]


async def test_guarded_gives_up_after_its_timeout() -> None:
    dev = ScriptedDevice(answers=[1], hang=True)
    result = await guarded(dev.read, device="cp1", timeout_s=0.01, clock=RealClock())
    assert result == Failed("no answer within 0.01 s")
    assert dev.cancelled == 1


async def test_guarded_lets_cancellation_through() -> None:
    dev = ScriptedDevice(answers=[1], hang=True)
    task = asyncio.create_task(guarded(dev.read, device="cp1"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- the meter's state ----------------------------------------------------------------------


def test_meter_reading_takes_good_samples_and_logs_a_failure_once() -> None:
    m = MeterReading(config())
    good = meter_sample(Phases(10, 5, 8))
    assert m.update(good, 1.0) is good
    assert m.fresh(11.0) and not m.fresh(11.1)
    with capture_logs() as logs:
        assert m.update(Failed("connection refused"), 2.0) is None
        assert m.update(Failed("connection refused"), 3.0) is None
        m.update(later(good, 3.0), 4.0)
    assert [e["event"] for e in logs] == ["meter_unavailable", "meter_recovered"]
    assert logs[0]["reason"] == "connection refused" and logs[0]["device"] == "meter"
    assert m.error is None and m.ok_at == 4.0


def later(sample: MeterSample, seconds: float) -> MeterSample:
    """The same reading stamped ``seconds`` later by the meter's own clock."""
    return dataclasses.replace(sample, timestamp=sample.timestamp + timedelta(seconds=seconds))


def test_a_slow_answer_is_as_old_as_its_own_timestamp() -> None:
    """A reading that arrives late stands for the instant it was taken, whatever the meter's
    clock says in absolute terms (only its advance counts)."""
    m = MeterReading(config(meter_stale_after_s=10.0))
    first = meter_sample(Phases(10, 5, 8))  # the meter's clock is far from ours: no matter
    m.update(first, 100.0)
    m.update(later(first, 1.0), 101.0)
    assert m.ok_at == 101.0  # on time
    slow = later(first, 2.0)
    assert m.update(slow, 106.0) is slow  # taken at 102 by its stamp, arrived 4 s late
    assert m.ok_at == 102.0
    assert m.fresh(112.0) and not m.fresh(112.5)  # by its age, not by its arrival (116)
    # a stamp that does not advance with the clock ages the reading like a slow answer
    m.update(later(first, 3.0), 120.0)
    assert m.ok_at == 103.0 and not m.fresh(120.0)


@pytest.mark.parametrize(
    "bad",
    [
        meter_sample(Phases(math.nan, 0, 0)),
        meter_sample(None, power_w=math.inf),
        meter_sample(Phases(1, 1, 1), power_w=math.nan),
    ],
)
def test_meter_reading_refuses_non_finite_numbers(bad: MeterSample) -> None:
    m = MeterReading(config())
    assert m.update(bad, 1.0) is None
    assert m.error == "meter sample has non-finite values"
    assert m.sample is None


def test_a_repeated_telegram_is_tolerated_a_lasting_one_is_a_frozen_meter() -> None:
    m = MeterReading(config(meter_period_s=1.0))
    m.update(meter_sample(Phases(1, 1, 1)), 10.0)
    stale = meter_sample(Phases(1, 1, 1), stale=True)
    assert m.update(stale, 11.5) is None
    assert m.error is None  # one repeat: polled faster than the meter sends
    assert m.update(stale, 12.5) is None
    assert m.error == "meter timestamp did not advance (frozen)"
    assert m.ok_at == 10.0


def test_after_a_step_back_of_the_meters_clock_its_repeats_are_no_frozen_meter() -> None:
    """The meter's clock stepped 3 s back: for a minute its telegrams stand 3 s earlier than
    they arrive (stands_for), and a repeat between two of them (polled twice per period) is
    more than 2 periods after the instant the last one stands for. It is still sending: the
    reading neither flips to "frozen" nor logs a recovery every second (bench/notes/edge.md)."""
    m = MeterReading(config(meter_period_s=1.0, meter_stale_after_s=10.0))
    first = meter_sample(Phases(10, 10, 10))
    for k in range(5):
        m.update(later(first, float(k)), 100.0 + k)
    with capture_logs() as logs:
        for k in range(5, 65):  # 3 s back from t = 105: the telegrams' stamps trail by 3 s
            sample = later(first, k - 3.0 + 0.001)
            assert m.update(sample, 100.0 + k) is sample
            assert m.ok_at is not None and m.ok_at < 100.0 + k - 2.9  # 3 s old by its stamp
            assert m.update(dataclasses.replace(sample, stale=True), 100.5 + k) is None
            assert m.error is None
    assert [e["event"] for e in logs] == []
    # a meter that really stops sending is still frozen 2 periods after its last telegram
    assert m.update(dataclasses.replace(sample, stale=True), 166.1) is None
    assert m.error == "meter timestamp did not advance (frozen)"


def test_a_frozen_meter_is_lost_at_once_a_stepped_back_clock_only_when_stale() -> None:
    """Round 17 (the soak's seed 117): the last telegram repeated for two periods is a frozen
    meter, lost at once (not fresh) although its sample is not ``meter_stale_after_s`` old. A
    clock stepped back sends new telegrams below the last timestamp: flagged, but lost only
    when stale, as before (a step of the meter's clock pauses no car)."""
    m = MeterReading(config(meter_period_s=1.0, meter_stale_after_s=10.0))
    good = meter_sample(Phases(1, 1, 1))
    m.update(good, 10.0)
    m.update(dataclasses.replace(good, stale=True), 12.5)
    assert m.error == "meter timestamp did not advance (frozen)"
    assert not m.fresh(12.5)  # 2.5 s old: fresh by age, lost as frozen
    assert m.update(later(good, 1.0), 13.0) is not None
    assert m.fresh(13.0)  # a new telegram: back at once
    back = later(good, -2.0)  # the meter's clock stepped 3 s back: stale, not the same telegram
    m.update(dataclasses.replace(back, stale=True), 15.5)
    assert m.error == "meter timestamp did not advance (frozen)"
    assert m.fresh(15.5)  # lost only when stale, as before


# --- a charger's state ----------------------------------------------------------------------


def test_charger_reading_maps_to_grid_phases_and_clips_negative_currents() -> None:
    spec = ChargerSpec(id="cp1", rotation=Rotation.L2L3L1)
    r = ChargerReading(spec, config([spec]))
    r.update(charger_sample(CpState.C, Phases(16, -0.3, 0)), 5.0)
    assert r.grid_a == Phases(0, 16, 0)  # terminal L1 sits on grid L2
    assert r.charging_since == 5.0
    r.update(charger_sample(CpState.C, Phases(16, 0, 0)), 6.0)
    assert r.charging_since == 5.0
    r.update(charger_sample(CpState.B), 7.0)
    assert r.charging_since is None


def test_charger_reading_online_fresh_and_status() -> None:
    spec = ChargerSpec(id="cp1")
    cfg = config([spec], meter_period_s=1.0, poll_wait_s=0.5, recently_started_window_s=5.0)
    r = ChargerReading(spec, cfg)
    assert not r.online(0.0) and r.status(0.0, None) is PlugStatus.OFFLINE
    r.update(charger_sample(CpState.C, Phases(16, 16, 16)), 10.0)
    assert r.fresh(12.0) and not r.fresh(12.1)  # 1.5 periods + poll wait
    assert r.online(20.0) and not r.online(20.1)  # charger_timeout_s
    assert r.status(10.0, 16) is PlugStatus.RECENTLY_STARTED_CHARGING
    assert r.status(15.0, 16) is PlugStatus.CHARGING


def test_charger_reading_refuses_non_finite_numbers_and_keeps_the_last_good_sample() -> None:
    spec = ChargerSpec(id="cp1")
    r = ChargerReading(spec, config([spec]))
    r.update(charger_sample(CpState.C, Phases(10, 10, 10)), 1.0)
    for bad in (
        charger_sample(CpState.C, Phases(math.nan, 0, 0)),
        charger_sample(CpState.C, power_w=math.inf),
        charger_sample(CpState.C, max_current_a=math.inf),
        charger_sample(CpState.C, power_w="1200"),  # not a number at all
    ):
        r.update(bad, 2.0)
        assert r.error == "charger sample has non-finite values"
        assert r.grid_a == Phases(10, 10, 10) and r.sample_at == 1.0


def test_a_write_failure_shows_until_the_next_good_read() -> None:
    spec = ChargerSpec(id="cp1")
    r = ChargerReading(spec, config([spec]))
    r.note_error("write failed: connection refused")
    assert r.error == "write failed: connection refused"
    r.update(charger_sample(CpState.B), 1.0)
    assert r.error is None


# --- the poll loop --------------------------------------------------------------------------


class PollRig:
    def __init__(self, *, hang_charger: bool = False) -> None:
        self.clock = VirtualClock()
        specs = [ChargerSpec(id="cp1"), ChargerSpec(id="cp2")]
        self.config = config(specs, meter_period_s=1.0, poll_wait_s=0.5, charger_timeout_s=10.0)
        self.meter = ScriptedDevice(answers=[meter_sample(Phases(1, 2, 3))])
        self.chargers = {
            "cp1": ScriptedDevice(answers=[charger_sample(CpState.B)]),
            "cp2": ScriptedDevice(answers=[charger_sample(CpState.B)], hang=hang_charger),
        }
        self.meter_reading = MeterReading(self.config)
        self.readings = {s.id: ChargerReading(s, self.config) for s in specs}
        self.meter_samples: list[float] = []
        self.polls: list[float] = []
        self.poller = Poller(
            clock=self.clock,
            config=self.config,
            meter=self.meter,  # type: ignore[arg-type]
            meter_reading=self.meter_reading,
            chargers=self.chargers,  # type: ignore[arg-type]
            readings=self.readings,
            on_meter=lambda prev, s: self.meter_samples.append(self.clock.monotonic()),
            on_polled=lambda: self.polls.append(self.clock.monotonic()),
        )

    async def run_for(self, seconds: float) -> None:
        await run_poller_for(self.poller, self.clock, seconds)


async def test_meter_twice_per_period_chargers_once() -> None:
    rig = PollRig()
    await rig.run_for(9.9)
    assert rig.meter.reads == 20
    assert rig.chargers["cp1"].reads == rig.chargers["cp2"].reads == 10
    assert rig.polls == [float(t) for t in range(10)]  # the decision wakes once per period
    assert len(rig.meter_samples) == 20


async def test_a_hanging_charger_holds_up_neither_the_meter_nor_the_decision() -> None:
    rig = PollRig(hang_charger=True)
    await rig.run_for(9.9)
    # the decision wakes at most poll_wait_s after each poll, the meter keeps its cadence
    assert rig.polls == [t + 0.5 for t in range(10)]
    assert rig.meter.reads == 20
    assert rig.chargers["cp1"].reads == 10
    assert rig.readings["cp1"].online(rig.clock.monotonic())
    # the hanging read is not started again while it is still in flight
    assert rig.chargers["cp2"].reads == 1
    assert rig.readings["cp2"].error is None


async def test_a_hanging_read_is_abandoned_after_the_device_timeout() -> None:
    rig = PollRig(hang_charger=True)
    with capture_logs() as logs:
        await rig.run_for(10.5)
    assert rig.chargers["cp2"].cancelled == 1
    assert rig.readings["cp2"].error == "no answer within 10 s"
    events = [e for e in logs if e["event"] == "charger_unavailable"]
    assert events[0]["charger"] == "cp2" and events[0]["reason"] == "no answer within 10 s"
    rig.chargers["cp2"].hang = False
    await rig.run_for(1.0)
    assert rig.readings["cp2"].error is None


async def test_every_device_failure_becomes_a_reason() -> None:
    rig = PollRig()
    rig.meter.answers = [DeviceConnectionError("meter: connection refused")]
    rig.chargers["cp1"].answers = [RuntimeError("bug")]
    await rig.run_for(1.0)
    assert rig.meter_reading.error == "meter: connection refused"
    assert rig.readings["cp1"].error == "driver error: RuntimeError('bug')"
    assert rig.readings["cp2"].error is None
