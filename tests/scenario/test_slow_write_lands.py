"""The virtual charger's ``slow`` write given up by its caller still lands at its time (round
18, ``sim/request.py``): a request on the wire is not taken back."""

from __future__ import annotations

import asyncio

from fuseguard.control.reading import Failed, guarded
from fuseguard.model.clock import VirtualClock
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Rotation
from fuseguard.scenario.adapters import ConnectorCharger
from fuseguard.sim.chargepoint import ChargePoint


def _slow_charger() -> tuple[VirtualClock, ConnectorCharger, ChargePoint]:
    clock = VirtualClock()
    cp = ChargePoint(name="cp1", rotation=Rotation.L1L2L3, max_current_a=32, limit_a=0.0)
    charger = ConnectorCharger(cp, clock=clock, slow_delay_s=5.0)
    charger.set_fault(DeviceFault.SLOW)
    return clock, charger, cp


async def test_a_slow_write_given_up_at_its_timeout_lands_at_its_time() -> None:
    clock, charger, cp = _slow_charger()
    call = asyncio.create_task(
        guarded(lambda: charger.set_current_limit(16), device="cp1", timeout_s=3.0, clock=clock)
    )
    await clock.advance(3.0)
    assert call.result() == Failed("no answer within 3 s")  # given up at 3 s of the clock
    assert cp.limit_a == 0.0
    await clock.advance(1.9)
    assert cp.limit_a == 0.0
    await clock.advance(0.1)
    assert cp.limit_a == 16.0  # landed all the same, 5 s after it was sent
    assert (charger.writes, charger.last_written_a) == (1, 16)


async def test_a_write_given_up_does_not_land_over_a_later_one() -> None:
    """The charger quick again meanwhile: the later write reached it first; the earlier one
    is overtaken (requests are taken in the order sent), not applied over it at 5 s."""
    clock, charger, cp = _slow_charger()
    call = asyncio.create_task(charger.set_current_limit(16))
    await clock.advance(1.0)
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    charger.set_fault(None)
    await charger.set_current_limit(8)
    assert cp.limit_a == 8.0
    await clock.advance(10.0)
    assert cp.limit_a == 8.0
    assert (charger.writes, charger.last_written_a) == (1, 8)
