"""The OCPP start-up stall in virtual time (round 12): a car starts under the charge point's own
limit between fuseguard's first write and the moment that write takes effect.

At start-up every car is connected and waits under its charge point's own limit (its safe
profile, or its maximum). The edge's first write offers each car 6 A, applied
``PROFILE_DELAY_S`` later; meanwhile the cars start at the charge point's own limit, and the
grid meter shows it before the charge points say so (as in ``test_start_race``: the state
later, the currents only with MeterValues every 10 s). Before round 12 the rise counted as
building load (the start window opened only when the offer was in force) and every car was
paused for ``min_pause_s``: the stall of ``bench/ocpp.py`` at 100 charge points (4 of 24 runs)
and once in 5 ``make test`` smoke runs.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import ZERO, Phases

from .fakes import FakeMeter
from .test_start_race import LateOcppCharger

pytestmark = pytest.mark.usefixtures("errors_only_logs")

PROFILE_DELAY_S = 1.0
START_AFTER_WRITE_S = 0.4  # the car starts (on its own) this long after the first write
OWN_A = 10.0  # the charge point's own limit before anything of fuseguard's is in force
FUSE_A = 100.0
CARS = 8


class OwnLimitCharger(LateOcppCharger):
    """A late-reporting charge point (as in ``test_start_race``) whose car starts at the charge
    point's own limit START_AFTER_WRITE_S after fuseguard's first write (before it is in force),
    then follows the limit in force (the last write, PROFILE_DELAY_S after it; the own limit
    before)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.start_at = math.inf

    def _limit_at(self, t: float) -> int:
        value = int(OWN_A)
        for at, amps in self.writes:
            if at + PROFILE_DELAY_S <= t:
                value = amps
        return value

    def _drawing_since(self, t: float) -> float | None:
        return self.start_at if self.start_at <= t and self._limit_at(t) >= 6 else None

    async def set_current_limit(self, current_a: int) -> None:
        if not self.writes:
            self.start_at = self.clock.monotonic() + START_AFTER_WRITE_S
        await super().set_current_limit(current_a)


async def test_cars_starting_under_the_charge_points_own_limit_are_not_paused() -> None:
    clock = VirtualClock()
    chargers = {f"cp{i + 1}": OwnLimitCharger(clock) for i in range(CARS)}
    # 40 A of building load: 60 A for 8 cars; at the own limit they draw 80 A, which read as
    # building load leaves less than 6 A each
    meter = FakeMeter(clock, list(chargers.values()), base_a=Phases.uniform(40.0))  # type: ignore[arg-type]
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, FUSE_A)],
        chargers=[
            ChargerSpec(id=cid, max_a=16, limit_delay_s=PROFILE_DELAY_S, reports_late=True)
            for cid in chargers
        ],
    )
    controller = Controller(clock=clock, config=config, meter=meter, chargers=chargers)  # type: ignore[arg-type]
    task = asyncio.create_task(controller.run())
    try:
        worst_after = ZERO  # once fuseguard's limits are in force everywhere
        for _ in range(180):
            await clock.advance(1.0)
            now = clock.monotonic()
            if all(ch.writes and ch.writes[0][0] + PROFILE_DELAY_S + 5.0 <= now
                   for ch in chargers.values()):  # fmt: skip
                worst_after = worst_after.maximum(meter.grid_a())
        now = clock.monotonic()
        first = {cid: ch.writes[0][1] for cid, ch in chargers.items()}
        assert min(first.values()) >= 6, first  # the first write offered every car current
        paused = {cid: ch.writes for cid, ch in chargers.items()
                  if any(a < 6 for _, a in ch.writes)}  # fmt: skip
        assert not paused, paused
        assert all(ch._draw_at(now) >= 6.0 for ch in chargers.values())
        assert worst_after.all_le(Phases.uniform(FUSE_A), tolerance=1e-6), worst_after
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
