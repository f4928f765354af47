"""The CEMM test rig (a helper module with a unique name; test dirs have no __init__)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.sim.cemm import CemmModel
from fuseguard.sim.site import BaseLoad, PiecewiseLinear, PvPlant, SiteModel

# Tuesday 2026-04-21 08:00 UTC = 10:00 CEST.
START = datetime(2026, 4, 21, 8, 0, tzinfo=UTC)


class Rig:
    """A VirtualClock site with base load (about 2.3 kW) and PV, metered by a CEMM."""

    def __init__(self) -> None:
        self.clock = VirtualClock(START)
        self.site = SiteModel(self.clock)
        self.load = BaseLoad(PiecewiseLinear([(0.0, Phases(4.0, 3.0, 3.0))]))
        self.site.add(self.load)
        # Sun over the first 10 h of site time (peak 4 kW at 5 h): net export from about 2 h.
        self.pv = PvPlant(peak_w=4000.0, sunrise_s=0.0, sunset_s=36000.0)
        self.site.add(self.pv)
        # The pre-issue-16 set (PV on mb5, no pulse meter); tests/wire16 covers the default set.
        self.model = CemmModel.for_site(
            self.site, pv=self.pv, gas_m3_per_h=0.1, connections="p1,mb5,usage"
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.site.run())
        await self.clock.settle()

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
