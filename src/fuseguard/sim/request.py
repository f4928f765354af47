"""A slow request on the wire: it reaches the device after its delay, whether or not the caller
still waits for the answer.

A Modbus write (or an OCPP ``SetChargingProfile``) that is on its way is not taken back when the
caller gives up on it (its timeout, ``control/reading.py`` ``guarded``): the charger applies it
when it arrives, the caller just never hears so. :func:`delayed` is that for the virtual devices
(the in-process adapters' ``slow`` fault, ``scenario/adapters.py``): the caller waits
``delay_s`` of the injected clock and then applies the request itself, as before; a caller
cancelled on the way leaves the request to land at its time by a clock callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fuseguard.model.clock import Clock


async def delayed(clock: Clock, delay_s: float, land: Callable[[], None]) -> None:
    """Wait ``delay_s`` of ``clock``; if the wait is cancelled (the caller gave up), ``land``
    still runs at the instant the request arrives, and the cancellation propagates. Otherwise
    the caller applies the request after the wait (``land`` is not called here: the answer
    comes in the caller's own step, as it did before round 18)."""
    arrives_at = clock.monotonic() + delay_s
    try:
        await clock.sleep(delay_s)
    except asyncio.CancelledError:
        clock.call_later(arrives_at - clock.monotonic(), land)
        raise


__all__ = ["delayed"]
