"""A grid meter failing but not stale yet (docs/safety.md, "Meter-loss fallback"): decreases
only (round 17)."""

from __future__ import annotations

import pytest

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from .fakes import FakeCharger, fake_site

pytestmark = pytest.mark.usefixtures("errors_only_logs")


async def test_no_car_is_raised_on_the_last_sample_of_a_failing_meter() -> None:
    """The meter stops answering; for ``stale_after_s`` (10 s) its last sample still stands, and
    a raise decided on it would meet any step those seconds hide (the soak's seed 117, round 17,
    with a frozen meter). While it fails, no setpoint goes above what was written; a decrease
    (here a lower EMS limit) still goes through, and the raise comes once the meter answers."""
    clock = VirtualClock()
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    site = fake_site(clock, chargers, 63, Phases(10, 10, 10))
    site.flex.update(activation=True, current_limit_a=30)  # 20 A for the two cars
    async with site.running():
        await clock.advance(120)
        assert [ch.limit_a for ch in chargers.values()] == [10, 10]
        site.meter.offline = True
        site.flex.update(activation=True, current_limit_a=50)  # room: a raise would follow
        await clock.advance(8)  # failing, not stale: nobody raised
        assert [ch.limit_a for ch in chargers.values()] == [10, 10]
        site.flex.update(activation=True, current_limit_a=26)  # a decrease goes through
        await clock.advance(1.5)
        assert [ch.limit_a for ch in chargers.values()] == [8, 8]
        site.meter.offline = False
        site.flex.update(activation=True, current_limit_a=50)
        await clock.advance(30)
        assert [ch.limit_a for ch in chargers.values()] == [20, 20]  # raised once it answers
