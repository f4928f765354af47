"""A lost meter under an EMS limit below the fuse (docs/safety.md, "Meter-loss fallback"): the
soak's seeds 57 and 60 (round 17)."""

from __future__ import annotations

import pytest

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import FakeCharger, fake_site


@pytest.mark.parametrize(
    ("ems_silent", "limit_a"),
    [(True, 40.0), (False, 55.0)],
    ids=["ems-silent-limit-is-the-fallback", "ems-limit-55"],
)
async def test_a_lost_meter_keeps_the_evs_under_an_ems_limit_below_the_fuse(
    ems_silent: bool, limit_a: float
) -> None:
    """A 63 A fuse, `FallbackCurrentLimit` 40 A: the installer's choice says the building
    draws at most 63 - 40 = 23 A per phase. The grid meter answers garbage and, unseen, the
    building load on L2 rises from 10 to 20 A (an appliance on for the first time: no history
    shows it). Seed 57: the EMS was silent, the limit was its 40 A fallback, and the
    fallback's least load (limit - 40 = 0) said nothing: the EVs kept 26 A, 3.95 A over the
    40 A for 382 s. Seed 60: the EMS's 55 A, least load 15 A, the EVs got their 40 A: 6 A over.
    Assuming at least the 23 A the fallback allows for, the EVs get the limit minus 23 A and
    the grid stays under the limit in force."""
    errors_only_logging()
    clock = VirtualClock()
    cp1, cp2 = FakeCharger(), FakeCharger()
    site = fake_site(clock, {"cp1": cp1, "cp2": cp2}, 63, Phases(14, 10, 7), flex_timeout_s=120)
    meter, flex, ctl = site.meter, site.flex, site.ctl
    flex.update(activation=True, current_limit_a=limit_a, fallback_current_limit_a=40)
    async with site.running():
        for _ in range(4):  # the EMS alive, or silent from the start (its limit: 40 A)
            await clock.advance(60)
            if not ems_silent:
                flex.keep_alive()
        assert flex.limit_a() == limit_a
        assert meter.grid_a().all_le(Phases.uniform(limit_a), tolerance=1e-6)
        meter.garbage = True
        await clock.advance(15)
        st = ctl.status()
        assert st.meter_fallback
        assert "meter fallback" in st.plugs[0].reason
        meter.base_a = Phases(14, 20, 7)  # on for the first time, unseen
        over: list[tuple[int, Phases]] = []
        for second in range(60):
            await clock.advance(1)
            if not ems_silent:
                flex.keep_alive()
            if not meter.grid_a().all_le(Phases.uniform(limit_a), tolerance=1e-6):
                over.append((second, meter.grid_a()))
        assert over == []
        # the EVs together: the limit minus the 23 A the fallback limit leaves the building
        assert cp1.limit_a + cp2.limit_a <= limit_a - 23
        assert f"EVs held at {limit_a - 23:.0f} A" in ctl.status().plugs[0].reason
        meter.garbage = False
        await clock.advance(5)
        assert not ctl.status().meter_fallback
