"""A frozen grid meter is a lost meter as soon as it is flagged (docs/safety.md, "A frozen meter
is lost at once"): the soak's seed 117 (round 17)."""

from __future__ import annotations

import asyncio

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.flex import FlexManagement
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import FakeCharger, FakeMeter


async def test_a_frozen_meter_runs_on_the_fallback_once_flagged_not_when_stale() -> None:
    """The soak's seed 117: the meter froze (its telegram repeated), was flagged frozen two
    periods later, and was believed until its last telegram was ``stale_after_s`` (10 s) old; a
    base step 2.4 s into the freeze met the EVs set on the frozen sample: 7.1 A over for 8 s.
    Flagged frozen, the meter is lost: the EVs are held at the fallback's due at once, and the
    step fits (the building's 18 A is under the 20 A the fallback assumes)."""
    errors_only_logging()
    clock = VirtualClock()
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    meter = FakeMeter(clock, list(chargers.values()), base_a=Phases(10, 10, 10))
    flex = FlexManagement(clock, fuse_a=40, timeout_s=1e9)
    flex.update(fallback_current_limit_a=20)
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, 40)],
        chargers=[ChargerSpec(id=cid) for cid in chargers],
    )
    ctl = Controller(clock=clock, config=config, meter=meter, chargers=chargers, flex=flex)
    task = asyncio.create_task(ctl.run())
    try:
        await clock.advance(120)
        assert [ch.limit_a for ch in chargers.values()] == [15, 15]
        meter.frozen = True
        await clock.advance(3.0)  # flagged frozen after two periods without a new telegram
        meter.base_a = Phases(18, 18, 18)  # unseen: the meter repeats its old telegram
        over: list[tuple[float, Phases]] = []
        for tick in range(1, 33):
            await clock.advance(0.25)
            if tick > 6 and not meter.grid_a().all_le(Phases.uniform(40), tolerance=1e-6):
                over.append((tick * 0.25, meter.grid_a()))
        assert over == []  # none beyond the first 1.5 s after the step
        assert ctl.status().meter_fallback
        assert sum(ch.limit_a for ch in chargers.values()) <= 20
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
