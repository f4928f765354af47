"""A charger whose every write times out still takes decreases (round 18, the soak's seed 69).

Every write to a charger slower than ``write_timeout_s`` fails on the clock (and lands later):
the plug was held at its decided setpoint for a write that failed, so no decision could lower
it; seed 69 (EMS fallback 40 A, cp1 alone at 7 A, every write timing out, a base step +6.3 A)
was up to 4.4 A over the limit for 794 s, until the slow fault ended."""

from __future__ import annotations

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import fake_site
from .test_write_under_way import SlowWrites


async def test_a_charger_whose_writes_all_time_out_is_lowered_when_the_site_needs_it() -> None:
    errors_only_logging()
    clock = VirtualClock()
    slow = SlowWrites(clock, 0.0)
    site = fake_site(clock, {"cp1": slow}, 40, Phases(25, 25, 25))
    async with site.running():
        await clock.advance(120)
        assert slow.limit_a == 15
        slow._write_s = 5.0  # from now on every write lands 5 s late, after its 3 s timeout
        await clock.advance(60)
        site.meter.base_a = Phases(31, 31, 31)  # 9 A left: the car must come down
        over = await site.over(40, 60.0, 12.0)
        assert over == [], over[:3]
        assert slow.limit_a <= 9, slow.writes
