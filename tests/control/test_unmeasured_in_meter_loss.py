"""A charger not measured while the meter is lost (docs/safety.md, "A charger not measured
while the meter is lost"): the soak's seed 36 (round 17)."""

from __future__ import annotations

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import FakeCharger, fake_site


async def test_a_charger_failing_its_reads_in_meter_loss_is_counted_at_its_written_setpoint() -> (
    None
):
    """The soak's seed 36: the meter was lost (slow), then cp4 answered garbage. Until it was
    reported offline (10 s without a good read) it was neither measured (its sample older than
    the fresh window) nor reserved, and no fresh meter saw its draw: it counted nowhere. The
    decision lowered it (the write failed: it kept drawing 7 A) and gave its share to another
    car: 0.35 A over the limit for 3 s. While a circuit's meter is lost, a charger below it that
    is not measured this cycle counts at the most it may draw (its written setpoint, at least
    its own fallback), as the offline reserve does, so the others make room.

    Here: base 10 A, EVs held at the 20 A fallback, 10 A each; cp1 stops answering (reads and
    writes), and 3 s later the EMS lowers the limit to 24 A (14 A for the EVs). Without the rule
    cp1 was decided 7 A (not written: it draws 10 A) and cp2 7 A: 27 A for 7 s, until cp1 is
    offline."""
    errors_only_logging()
    clock = VirtualClock()
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    site = fake_site(clock, chargers, 40, Phases(10, 10, 10))
    meter, flex, ctl = site.meter, site.flex, site.ctl
    flex.update(activation=True, current_limit_a=40, fallback_current_limit_a=20)
    async with site.running():
        await clock.advance(120)
        meter.offline = True
        await clock.advance(60)
        assert ctl.status().meter_fallback
        assert [ch.limit_a for ch in chargers.values()] == [10, 10]
        chargers["cp1"].offline = True  # garbage: no read, no write gets through
        await clock.advance(3)
        flex.update(activation=True, current_limit_a=24)
        assert await site.over(24, 15.0, 1.0) == []  # none beyond the first second
        assert chargers["cp1"].limit_a == 10  # it never took a write
