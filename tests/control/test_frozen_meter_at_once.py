"""A frozen grid meter is a lost meter as soon as it is flagged (docs/safety.md, "A frozen meter
is lost at once"): the soak's seed 117 (round 17)."""

from __future__ import annotations

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import FakeCharger, fake_site


async def test_a_frozen_meter_runs_on_the_fallback_once_flagged_not_when_stale() -> None:
    """The soak's seed 117: the meter froze (its telegram repeated), was flagged frozen two
    periods later, and was believed until its last telegram was ``stale_after_s`` (10 s) old; a
    base step 2.4 s into the freeze met the EVs set on the frozen sample: 7.1 A over for 8 s.
    Flagged frozen, the meter is lost: the EVs are held at the fallback's due at once, and the
    step fits (the building's 18 A is under the 20 A the fallback assumes)."""
    errors_only_logging()
    clock = VirtualClock()
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    site = fake_site(clock, chargers, 40, Phases(10, 10, 10))
    meter, ctl = site.meter, site.ctl
    site.flex.update(fallback_current_limit_a=20)
    async with site.running():
        await clock.advance(120)
        assert [ch.limit_a for ch in chargers.values()] == [15, 15]
        meter.frozen = True
        await clock.advance(3.0)  # flagged frozen after two periods without a new telegram
        meter.base_a = Phases(18, 18, 18)  # unseen: the meter repeats its old telegram
        assert await site.over(40, 8.0, 1.5) == []  # none beyond the first 1.5 s after the step
        assert ctl.status().meter_fallback
        assert sum(ch.limit_a for ch in chargers.values()) <= 20
