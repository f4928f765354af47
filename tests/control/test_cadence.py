"""The charger cadence (issue 18): fast while something moves, every ``charger_idle_poll_s``
when steady, the meter every half period as the fast safety signal (virtual time)."""

from __future__ import annotations

import asyncio
import math

from fuseguard.config.models import ControlConfig
from fuseguard.control.polling import Poller
from fuseguard.control.ports import DeviceConnectionError
from fuseguard.control.reading import ChargerReading, MeterReading, charger_steady
from fuseguard.control.types import ChargerSpec
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState

from .doubles import ScriptedDevice, charger_sample, config, meter_sample

DRAW = Phases(10, 10, 10)


class CadenceRig:
    """Two charging chargers, a meter, a 10 s idle cadence and scripted setpoints."""

    def __init__(self, *, idle_s: float = 10.0, chargers: int = 2) -> None:
        self.clock = VirtualClock()
        specs = [ChargerSpec(id=f"cp{i + 1}") for i in range(chargers)]
        self.config = config(
            specs,
            meter_period_s=1.0,
            poll_wait_s=0.5,
            charger_timeout_s=10.0,
            charger_idle_poll_s=idle_s,
        )
        self.meter = ScriptedDevice(answers=[meter_sample(Phases(30, 30, 30))])
        self.chargers = {
            s.id: ScriptedDevice(answers=[charger_sample(CpState.C, DRAW)]) for s in specs
        }
        self.readings = {s.id: ChargerReading(s, self.config) for s in specs}
        self.setpoints: dict[str, tuple[int | None, float]] = {s.id: (16, -math.inf) for s in specs}
        self.polls: list[float] = []
        self.poller = Poller(
            clock=self.clock,
            config=self.config,
            meter=self.meter,  # type: ignore[arg-type]
            meter_reading=MeterReading(self.config),
            chargers=self.chargers,  # type: ignore[arg-type]
            readings=self.readings,
            on_meter=lambda prev, s: None,
            on_polled=lambda: self.polls.append(self.clock.monotonic()),
            setpoint_of=lambda pid: self.setpoints[pid],
        )
        self.task: asyncio.Task[None] | None = None

    async def run_until(self, t_s: float) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self.poller.run())
        await self.clock.run_until(t_s)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def reads(self, pid: str) -> int:
        return self.chargers[pid].reads


async def test_a_steady_charger_is_read_every_idle_period_the_meter_every_half_period() -> None:
    rig = CadenceRig()
    await rig.run_until(29.9)
    # read at 0 (nothing to compare), 1 (steady: next at 11), 11, 21
    assert rig.reads("cp1") == rig.reads("cp2") == 4
    assert rig.meter.reads == 60
    assert rig.polls == [float(t) for t in range(30)]  # the decision still wakes every period
    await rig.stop()


async def test_a_steady_charger_stays_online_and_fresh_between_its_reads() -> None:
    rig = CadenceRig()
    for t in [x / 10 for x in range(5, 300, 3)]:
        await rig.run_until(t)
        r = rig.readings["cp1"]
        assert r.online(t) and r.fresh(t), t
    await rig.stop()


async def test_without_an_idle_cadence_every_charger_is_read_every_period() -> None:
    rig = CadenceRig(idle_s=1.0)  # not above the meter period: off
    await rig.run_until(9.9)
    assert rig.reads("cp1") == rig.reads("cp2") == 10
    await rig.stop()


async def test_a_setpoint_raise_reads_the_charger_at_the_next_period() -> None:
    rig = CadenceRig()
    await rig.run_until(5.2)
    assert rig.reads("cp1") == 2
    rig.setpoints["cp1"] = (20, 5.2)  # the car may take more now
    await rig.run_until(6.1)
    assert rig.reads("cp1") == 3 and rig.reads("cp2") == 2
    assert rig.readings["cp1"].fresh(15.0)  # steady and following: idle again until 16
    await rig.run_until(15.9)
    assert rig.reads("cp1") == 3
    await rig.run_until(16.1)
    assert rig.reads("cp1") == 4
    await rig.stop()


async def test_a_lower_setpoint_still_above_the_draw_needs_no_read() -> None:
    rig = CadenceRig()
    await rig.run_until(5.2)
    rig.setpoints["cp1"] = (12, 5.2)  # the car draws 10 A <= 12 A: nothing to watch
    await rig.run_until(10.9)
    assert rig.reads("cp1") == 2
    assert rig.readings["cp1"].fresh(10.9)
    await rig.stop()


async def test_a_charger_above_its_new_setpoint_is_read_every_period_until_it_follows() -> None:
    rig = CadenceRig()
    await rig.run_until(5.2)
    rig.setpoints["cp1"] = (6, 5.2)  # the car still draws 10 A: it must come down
    await rig.run_until(9.1)
    assert rig.reads("cp1") == 2 + 4  # 6, 7, 8, 9
    rig.chargers["cp1"].answers = [charger_sample(CpState.C, Phases(6, 6, 6))]
    await rig.run_until(20.9)
    # 10 (moved), 11 (steady and following: next at 21)
    assert rig.reads("cp1") == 8
    await rig.stop()


async def test_a_read_before_the_car_followed_a_one_amp_decrease_is_not_vouched_for() -> None:
    """The soak's seed 20: a car at 10 A lowered to 9 A was read before it followed (10 A,
    unchanged, within 1 A of the new setpoint: "steady") and that sample was vouched for 10 s
    while the car drew 9 A: the meter split's non-EV load 1 A low, 0.96 A over the limit."""
    rig = CadenceRig()
    await rig.run_until(5.2)
    assert rig.reads("cp1") == 2
    rig.setpoints["cp1"] = (9, 5.2)  # 1 A below the 10 A draw
    await rig.run_until(6.1)
    assert rig.reads("cp1") == 3  # read at 6: still 10 A, the car has not followed yet
    assert not rig.readings["cp1"].fresh(9.0)  # not vouched for on that read
    rig.chargers["cp1"].answers = [charger_sample(CpState.C, Phases(9, 9, 9))]
    await rig.run_until(9.1)
    # 7 (moved: 10 -> 9 A), 8 (steady at its setpoint: next at 18)
    assert rig.reads("cp1") == 5
    assert rig.readings["cp1"].sample is not None
    assert rig.readings["cp1"].sample.current_a == Phases(9, 9, 9)
    await rig.run_until(17.9)
    assert rig.reads("cp1") == 5
    await rig.stop()


async def test_a_car_slightly_above_its_setpoint_settles_after_the_decrease_grace() -> None:
    rig = CadenceRig()
    await rig.run_until(5.2)
    rig.setpoints["cp1"] = (9, 5.2)  # the car keeps drawing 10 A (within 1 A of its setpoint)
    await rig.run_until(21.9)
    # read every period until a read 6 s after the decrease (6..12): steady then, next at 22
    assert rig.reads("cp1") == 2 + 7
    await rig.run_until(22.1)
    assert rig.reads("cp1") == 10
    await rig.stop()


async def test_a_state_change_is_followed_at_the_period_cadence() -> None:
    rig = CadenceRig()
    await rig.run_until(5.0)
    rig.chargers["cp1"].answers = [charger_sample(CpState.B)]  # the car stopped
    # the meter does not move in this rig: the slow read at 11 finds the change, 12 confirms
    await rig.run_until(21.9)
    assert rig.reads("cp1") == 2 + 2  # 11, 12, then 22 is next
    await rig.stop()


async def test_a_meter_drop_reads_every_charger_at_the_next_period() -> None:
    rig = CadenceRig()
    rig.setpoints = dict.fromkeys(rig.setpoints, (10, -math.inf))  # both at their setpoint
    await rig.run_until(5.2)
    rig.meter.answers = [meter_sample(Phases(28.5, 30, 30))]  # below METER_DROP_A: no sweep
    await rig.run_until(7.9)
    assert rig.reads("cp1") == rig.reads("cp2") == 2
    rig.meter.answers = [meter_sample(Phases(30, 45, 30))]  # a rise no car can have made
    await rig.run_until(8.9)
    assert rig.reads("cp1") == rig.reads("cp2") == 2
    rig.meter.answers = [meter_sample(Phases(30, 35, 30))]  # 10 A below the high: a car?
    await rig.run_until(9.2)
    assert rig.reads("cp1") == rig.reads("cp2") == 2
    await rig.run_until(10.1)
    assert rig.reads("cp1") == rig.reads("cp2") == 3  # swept at 10
    await rig.stop()


async def test_a_meter_rise_reads_the_chargers_below_their_setpoint_in_the_same_poll() -> None:
    # cp1 draws 10 A of its 16 A and may ramp unseen; cp2 draws its setpoint and cannot rise
    rig = CadenceRig()
    rig.setpoints = {"cp1": (16, 0.0), "cp2": (10, -math.inf)}  # cp1 offered 16 A at 0 s
    await rig.run_until(5.2)
    assert rig.reads("cp1") == rig.reads("cp2") == 2
    rig.meter.answers = [meter_sample(Phases(30, 31.5, 30))]  # below METER_DROP_A: no read
    await rig.run_until(6.9)
    assert rig.reads("cp1") == 2
    # the rise lands in the meter read of the full poll at 7: cp1 is read before that poll's
    # decision (on_polled), so the decision does not take the ramp for building load
    rig.meter.answers = [meter_sample(Phases(36, 36, 36))]
    rig.chargers["cp1"].answers = [charger_sample(CpState.C, Phases(16, 16, 16))]
    await rig.run_until(6.999)
    seen: list[int] = []
    rig.poller._on_polled = lambda: seen.append(rig.reads("cp1"))
    await rig.run_until(7.2)
    assert seen == [3] and rig.reads("cp2") == 2
    assert rig.readings["cp1"].sample is not None
    assert rig.readings["cp1"].sample.current_a == Phases(16, 16, 16)
    await rig.stop()


async def test_a_meter_rise_between_polls_reads_the_chargers_below_setpoint_next_period() -> None:
    rig = CadenceRig()
    rig.setpoints = dict.fromkeys(rig.setpoints, (16, 0.0))  # offered 16 A at 0 s, drawing 10
    await rig.run_until(5.2)
    rig.meter.answers = [meter_sample(Phases(33, 33, 33))]  # seen by the meter-only read at 5.5
    await rig.run_until(5.9)
    assert rig.reads("cp1") == rig.reads("cp2") == 2
    await rig.run_until(6.1)
    assert rig.reads("cp1") == rig.reads("cp2") == 3  # both draw 10 of 16 A
    await rig.run_until(9.9)  # no further rise: back to the idle cadence
    assert rig.reads("cp1") == rig.reads("cp2") == 3
    await rig.stop()


async def test_a_car_long_below_its_offer_is_not_read_on_every_rise() -> None:
    # both were offered 16 A long ago and draw 10 A (the car's own limit): a building load step
    # does not read them (with a hundred such cars every step would read them all)
    rig = CadenceRig()
    await rig.run_until(5.2)
    rig.meter.answers = [meter_sample(Phases(36, 36, 36))]
    await rig.run_until(9.9)
    assert rig.reads("cp1") == rig.reads("cp2") == 2
    await rig.stop()


async def test_one_rise_reads_at_most_the_eight_most_recently_changed_chargers() -> None:
    from fuseguard.control.polling import RISE_READS_MAX

    rig = CadenceRig(chargers=12)
    rig.setpoints = {f"cp{i + 1}": (16, float(i) / 10) for i in range(12)}  # cp12 changed last
    await rig.run_until(5.2)
    assert all(rig.reads(pid) == 2 for pid in rig.chargers)
    rig.meter.answers = [meter_sample(Phases(36, 36, 36))]
    await rig.run_until(6.1)
    read = sorted(pid for pid in rig.chargers if rig.reads(pid) == 3)
    assert read == sorted(f"cp{i + 1}" for i in range(12 - RISE_READS_MAX, 12))
    await rig.stop()


async def test_a_power_only_meter_drop_reads_every_charger() -> None:
    rig = CadenceRig()
    rig.meter.answers = [meter_sample(None, power_w=20_000.0)]
    await rig.run_until(5.2)
    rig.meter.answers = [meter_sample(None, power_w=19_000.0)]  # 4.3 A at 230 V
    await rig.run_until(6.1)
    assert rig.reads("cp1") == rig.reads("cp2") == 3
    await rig.stop()


async def test_a_failed_read_keeps_the_period_cadence_and_the_charger_times_out() -> None:
    rig = CadenceRig()
    await rig.run_until(5.0)
    rig.chargers["cp1"].answers = [DeviceConnectionError("cp1: connection refused")]
    await rig.run_until(11.1)
    assert rig.readings["cp1"].error == "cp1: connection refused"
    assert rig.readings["cp1"].online(11.1)
    await rig.run_until(14.9)
    assert rig.reads("cp1") == 2 + 4  # 11, 12, 13, 14: every period while it fails
    # vouched for until the read due at 11 started: offline 10 s later
    assert rig.readings["cp1"].online(21.0) and not rig.readings["cp1"].online(21.1)
    await rig.stop()


async def test_a_failed_write_reads_the_charger_every_period() -> None:
    rig = CadenceRig()
    await rig.run_until(3.2)
    rig.readings["cp1"].note_error("write failed: connection refused")
    rig.chargers["cp1"].answers = [DeviceConnectionError("cp1: connection refused")]
    await rig.run_until(6.1)
    assert rig.reads("cp1") == 2 + 3  # 4, 5, 6
    assert rig.readings["cp1"].error == "cp1: connection refused"
    await rig.stop()


def test_a_doubted_sample_stands_no_longer_than_the_doubt() -> None:
    spec = ChargerSpec(id="cp1")
    r = ChargerReading(spec, config([spec], meter_period_s=1.0, poll_wait_s=0.5))
    r.update(charger_sample(CpState.C, DRAW), 1.0)
    r.vouch(10.0)
    assert r.fresh(12.0) and not r.fresh(12.1)  # 1.5 periods + poll wait after 10
    r.doubt(5.0)
    assert r.fresh(7.0) and not r.fresh(7.1)
    r.vouch(0.0)  # never before the read itself
    assert r.vouched_at == 1.0


def test_steady_means_same_state_and_draw_within_a_tolerance() -> None:
    a = charger_sample(CpState.C, DRAW)
    assert not charger_steady(None, a)
    assert charger_steady(a, charger_sample(CpState.C, Phases(10.9, 10, 9.1)))
    assert not charger_steady(a, charger_sample(CpState.C, Phases(11, 10, 10)))
    assert not charger_steady(a, charger_sample(CpState.B, DRAW))
    assert not charger_steady(a, charger_sample(CpState.C, DRAW, errors=("E1",)))


def test_the_setting_defaults_to_ten_seconds_at_the_config_edge() -> None:
    assert ControlConfig().charger_idle_poll_s == 10.0


async def test_a_steady_chargers_sample_stands_until_its_slow_scheduled_read_lands() -> None:
    # the failure of the first benchmark run: a lagging loop must not turn every steady
    # charger's sample stale at once (its draw would count as non-EV load and pause every car)
    rig = CadenceRig()
    await rig.run_until(5.0)
    device = rig.chargers["cp1"]
    plain_read = device.read

    async def slow_read() -> object:
        await rig.clock.sleep(1.9)  # lands long after poll_wait_s
        return await plain_read()

    device.read = slow_read  # type: ignore[method-assign]
    for t in [x / 10 for x in range(50, 150)]:
        await rig.run_until(t)
        assert rig.readings["cp1"].fresh(t), t
    await rig.stop()
