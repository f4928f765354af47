"""The highest load since start, recorded while a charger is unmeasured (docs/safety.md,
"Meter-loss fallback"): the soak's seed 4 (round 16)."""

from __future__ import annotations

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import FakeCharger, fake_site


async def test_a_load_seen_while_a_charger_was_unmeasured_counts_once_the_meter_is_lost() -> None:
    """The soak's seed 4: an empty charger answered garbage for 25 minutes, and in them a base
    step (+9.2 A on L1) came and went; with a charger unmeasured nothing was recorded as the
    highest load, so when the meter went offline half an hour later the fallback assumed 8 A on
    L1 and the same kind of step, on again unseen, put the EVs 7.2 A over the limit for 116 s.
    The sample less what the unmeasured charger may draw (its last setpoint, at least its
    fallback) is a bound from below of the building load: it is recorded."""
    errors_only_logging()
    clock = VirtualClock()
    cp1, cp2 = FakeCharger(), FakeCharger(plugged=False)
    site = fake_site(clock, {"cp1": cp1, "cp2": cp2}, 40, Phases(8, 8, 8), flex_timeout_s=120)
    meter, flex, ctl = site.meter, site.flex, site.ctl
    flex.update(activation=False, fallback_current_limit_a=40)  # no bound of its own
    async with site.running():
        await clock.advance(60)
        cp2.offline = True  # empty and unreachable: 0 A written, no fallback of its own
        await clock.advance(30)
        meter.base_a = Phases(17, 8, 8)  # on and off again while cp2 is not measured
        await clock.advance(60)
        meter.base_a = Phases(8, 8, 8)
        await clock.advance(60)
        cp2.offline = False
        await clock.advance(960)  # the step is out of the 15-minute peak window
        st = ctl.status()
        assert st.non_ev_load_a["main"] == Phases(8, 8, 8)
        assert {p.id: p.setpoint_a for p in st.plugs}["cp1"] == 32
        meter.offline = True
        await clock.advance(15)
        st = ctl.status()
        assert st.meter_fallback
        # the fallback assumes the 17 A seen on L1: cp1 gets 40 - 17 = 23 A at most
        assert {p.id: p.setpoint_a for p in st.plugs}["cp1"] <= 23
        meter.base_a = Phases(16, 8, 8)  # the step again, unseen
        await clock.advance(30)
        assert meter.grid_a().all_le(Phases.uniform(40), tolerance=1e-6)
