"""The EMS's keep-alive watchdog expiring over a slow charger (docs/safety.md, "A write under
way", the expiry lead): the soak's seed 69 (round 17)."""

from __future__ import annotations

import asyncio

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.flex import FlexManagement
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases

from ..logkit import errors_only_logging
from .fakes import FakeMeter
from .test_write_under_way import SlowWrites

KEEPALIVE_S = 30.0
TIMEOUT_S = 120.0


async def _expiry_over_a_slow_charger(base_drop_before_s: float | None) -> list[float]:
    """One car behind a charger whose writes take 5 s; the EMS's limit is 40 A, its fallback
    35 A, the building 25 A (18 A from ``base_drop_before_s`` before the watchdog expires:
    room for a raise). The EMS stops its keep-alives; returns the times (seconds after the
    expiry) at which the grid was over the limit in force, on the 0.25 s grid."""
    errors_only_logging()
    clock = VirtualClock()
    slow = SlowWrites(clock, 5.0)
    meter = FakeMeter(clock, [slow], base_a=Phases(25, 25, 25))
    flex = FlexManagement(clock, fuse_a=63, timeout_s=TIMEOUT_S)
    # writes that take 5 s and land, within a write timeout that lets them (with the default
    # 3 s every write fails on the injected clock since round 18: tests/control/test_write_timeout.py)
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, 63)],
        chargers=[ChargerSpec(id="cp1")],
        write_timeout_s=6.0,
    )
    ctl = Controller(clock=clock, config=config, meter=meter, chargers={"cp1": slow}, flex=flex)
    task = asyncio.create_task(ctl.run())
    over: list[float] = []
    try:
        flex.update(activation=True, current_limit_a=40, fallback_current_limit_a=35)
        for _ in range(8):  # 4 minutes with keep-alives: the car at 15 A
            await clock.advance(KEEPALIVE_S)
            flex.keep_alive()
        assert slow.limit_a == 15, slow.writes
        expiry = clock.monotonic() + TIMEOUT_S  # no keep-alive from now on
        while clock.monotonic() < expiry + 30.0:
            await clock.advance(0.25)
            t = clock.monotonic() - expiry
            if base_drop_before_s is not None and abs(t + base_drop_before_s) < 1e-9:
                meter.base_a = Phases(18, 18, 18)
            limit = flex.limit_a()
            if t < -20.0:
                assert slow.limit_a >= 15, (t, slow.writes)  # not lowered long before
            if not meter.grid_a().all_le(Phases.uniform(limit), tolerance=1e-6):
                over.append(t)
        assert flex.in_fallback
        assert slow.limit_a == 35 - meter.base_a.max  # the fallback's room, all of it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return over


async def test_a_slow_charger_is_down_to_the_ems_fallback_when_its_watchdog_expires() -> None:
    """The EMS's watchdog expires at a time fuseguard knows (its own timer). A decrease to a
    charger whose writes take 5 s, decided at the expiry, is in force 5 s (10 s behind a
    rewrite under way) after it: over the fallback limit for that long. Decided that long
    before the expiry, it is in force when the fallback is."""
    over = await _expiry_over_a_slow_charger(None)
    assert over == [], over


async def test_a_raise_to_a_slow_charger_does_not_land_into_the_ems_fallback() -> None:
    """The soak's seed 69: the building load fell 5 s before the EMS's watchdog expired, a
    slow charger was raised 7 -> 14 A, the raise landed with the fallback (57 -> 40 A) and the
    decrease that followed took 5 s more: 2.1 A over the limit for 5 s. Here the building falls
    8 s before the expiry, the raise (15 -> 22 A) is decided 5 s later (the ramp's hold) and
    lands 3 s after the expiry, the decrease to 17 A 5 s after that."""
    over = await _expiry_over_a_slow_charger(8.0)
    assert over == [], over
