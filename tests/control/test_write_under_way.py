"""A write under way to a slow charger (docs/safety.md, "A write under way"): the soak's seed 7
(round 16)."""

from __future__ import annotations

import functools

from fuseguard.model.clock import Clock, VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.sim.request import delayed

from ..logkit import errors_only_logging
from .fakes import FakeCharger, fake_site


class SlowWrites(FakeCharger):
    """Every write takes ``write_s`` to land (the soak's ``charger:slow``); reads are quick. A
    write given up on the way (the writer's ``write_timeout_s``) lands all the same, at its
    time (round 18: a request on the wire is not taken back, ``sim/request.py``)."""

    def __init__(self, clock: Clock, write_s: float) -> None:
        super().__init__()
        self._clock = clock
        self._write_s = write_s

    async def set_current_limit(self, current_a: int) -> None:
        await delayed(self._clock, self._write_s, functools.partial(self._land, current_a))
        self._land(current_a)

    def _land(self, current_a: int) -> None:
        self.limit_a = current_a
        self.writes.append(current_a)


async def test_a_decrease_under_way_to_a_slow_charger_is_made_room_for_by_the_others() -> None:
    """The soak's seed 7: the EMS lowered its limit 55 -> 43 A; the slow charger's decrease
    took seconds to land, and the other cars were lowered as if it had landed at once: 1.4 A
    over the limit for 8 s. While a write is under way the charger is counted at the most it
    may draw (here its old 10 A) and held at its decided setpoint: the others make room at
    once, and nothing is over the limit beyond the first meter period."""
    errors_only_logging()
    clock = VirtualClock()
    slow = SlowWrites(clock, 2.5)
    chargers = {"cp1": slow, "cp2": FakeCharger(), "cp3": FakeCharger()}
    site = fake_site(clock, chargers, 40, Phases(10, 10, 10))
    flex = site.flex
    async with site.running():
        await clock.advance(120)
        assert [ch.limit_a for ch in chargers.values()] == [10, 10, 10]
        flex.update(activation=True, current_limit_a=31)  # 21 A for the three cars
        assert await site.over(31, 10.0, 1.0) == []  # none beyond the first second
        assert sum(ch.limit_a for ch in chargers.values()) <= 21
        assert slow.limit_a >= 6  # lowered, not paused: it was held, not cut


async def test_a_car_paused_through_a_slow_write_still_owes_its_minimum_pause() -> None:
    """While the pause's write is under way the plug is held, out of the allocation; its
    run/pause timers must outlive that. Before the session kept them, the held plug's timers
    started anew, the paused car owed no minimum pause, and it started again at once when
    room came back (a contactor cycle ``min_pause_s`` exists to prevent)."""
    errors_only_logging()
    clock = VirtualClock()
    slow = SlowWrites(clock, 2.5)
    site = fake_site(clock, {"cp1": slow}, 40, Phases(10, 10, 10))
    flex = site.flex
    async with site.running():
        await clock.advance(120)
        assert slow.limit_a >= 6
        flex.update(activation=True, current_limit_a=14)  # 4 A beside the building: a pause
        await clock.advance(10)
        assert slow.limit_a == 0
        flex.update(activation=True, current_limit_a=40)  # room again, 10 s after the pause
        await clock.advance(60)
        assert slow.limit_a == 0, slow.writes  # the minimum pause (900 s) holds it
        await clock.advance(900)
        assert slow.limit_a >= 6, slow.writes  # and then it runs again


async def test_a_raise_under_way_is_not_taken_back_before_it_lands() -> None:
    """The soak's seed 3 (round 16): while a write to a slow charger was under way, break
    before make and the ramp ran again on the held plug against the value still in force, and
    the ramp's hold timer started anew: the raise under way was taken back, and as a rewrite was
    due the old value went out as soon as the raise landed. A write per flip (here 6 <-> 20 A,
    and the other car paused for it). A raise under way passed both when it was decided: the
    decision holds it until it lands."""
    errors_only_logging()
    clock = VirtualClock()
    slow = SlowWrites(clock, 2.5)
    chargers = {"cp1": slow, "cp2": FakeCharger()}
    # a rewrite is due during most writes
    site = fake_site(clock, chargers, 63, Phases(10, 10, 10), rewrite_interval_s=5.0)
    meter, flex = site.meter, site.flex
    async with site.running():
        flex.update(activation=True, current_limit_a=30)  # 20 A for the two cars
        await clock.advance(120)
        assert [ch.limit_a for ch in chargers.values()] == [10, 10], slow.writes
        flex.update(activation=True, current_limit_a=50)  # room: both raised to 20 A
        await clock.advance(30)
        meter.base_a = Phases(14, 14, 14)  # then both come down to 18 A
        await clock.advance(60)
        values = [w for i, w in enumerate(slow.writes) if i == 0 or w != slow.writes[i - 1]]
        assert values == [6, 10, 20, 18], slow.writes  # each value once (a start at 6 A): no flip
        assert min(chargers["cp2"].writes) >= 6  # the other car never paused
