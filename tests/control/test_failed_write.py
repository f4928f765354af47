"""A decrease whose write failed is not in force (docs/safety.md, "A write under way"): the
soak's seed 74 (round 17)."""

from __future__ import annotations

import asyncio

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.flex import FlexManagement
from fuseguard.control.ports import DeviceResponseError
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import FakeCharger, FakeMeter


class RefusesWrites(FakeCharger):
    """Answers reads; every write fails while ``refuse`` (the soak's ``charger:garbage`` on a
    write, a charge point that rejects the request)."""

    refuse = False

    async def set_current_limit(self, current_a: int) -> None:
        if self.refuse:
            raise DeviceResponseError("charger answered with invalid data")
        await super().set_current_limit(current_a)


async def test_a_decrease_whose_write_failed_is_made_room_for_by_the_others() -> None:
    """The soak's seed 74: a base step; the controller paused a charger whose writes failed
    (garbage) and counted it at 0 A; it went on drawing its 6 A and the other car was not
    lowered: 0.43 A over the limit for 4 s, until its draw counted as building load. A decrease
    whose write failed is not in force: the plug is counted at the highest of the value in
    force and the one decided until a write lands, and the others make room at once."""
    errors_only_logging()
    clock = VirtualClock()
    refusing = RefusesWrites()
    chargers = {"cp1": FakeCharger(), "cp2": refusing}
    meter = FakeMeter(clock, list(chargers.values()), base_a=Phases(10, 10, 10))
    flex = FlexManagement(clock, fuse_a=40, timeout_s=1e9)
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, 40)],
        chargers=[ChargerSpec(id=cid) for cid in chargers],
    )
    ctl = Controller(clock=clock, config=config, meter=meter, chargers=chargers, flex=flex)
    task = asyncio.create_task(ctl.run())
    try:
        await clock.advance(120)
        assert [ch.limit_a for ch in chargers.values()] == [15, 15]
        refusing.refuse = True
        meter.base_a = Phases(16, 16, 16)  # 24 A left for the two cars
        over: list[tuple[float, Phases]] = []
        for tick in range(1, 33):
            await clock.advance(0.25)
            if tick > 6 and not meter.grid_a().all_le(Phases.uniform(40), tolerance=1e-6):
                over.append((tick * 0.25, meter.grid_a()))
        assert over == []  # none beyond the first 1.5 s after the step
        assert refusing.limit_a == 15  # its decrease never landed
        assert chargers["cp1"].limit_a <= 9
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
